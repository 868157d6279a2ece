import http from 'node:http';
import https from 'node:https';
import type { GuardedAgents } from './guard.js';
import { TargetRefusedError } from './guard.js';
import { type AttemptResult, parseRetryAfter } from './policy.js';

/** How much of an answer is kept with the attempt. */
export const EXCERPT_BYTES = 1024;
/** Answers longer than this are not read to the end: the connection is dropped instead of reused. */
const DRAIN_LIMIT = 64 * 1024;

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  agents: GuardedAgents;
}

function describeError(err: unknown): string {
  if (err instanceof TargetRefusedError) return err.message;
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
}

/**
 * One delivery attempt: a POST through the guarded keep-alive agents, redirects not followed (a 3xx
 * is just a status), the whole exchange bounded by `timeoutMs`. Never throws: every way it can go
 * wrong ends as an `AttemptResult` the policy decides on.
 */
export async function postWebhook(opts: PostOptions): Promise<AttemptResult> {
  const first = await postOnce(opts);
  // A kept-alive socket the receiver closed just as it was reused: the request never reached it.
  // Sent again once on a fresh connection (the Node documentation's advice for this race).
  return first.staleSocket ? postOnce(opts) : first;
}

function postOnce(opts: PostOptions): Promise<AttemptResult & { staleSocket?: true }> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<AttemptResult, 'latencyMs'> & { staleSocket?: true }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, latencyMs: elapsed() });
    };
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      return resolve({ statusCode: null, error: 'invalid URL', excerpt: null, retryAfterMs: null, latencyMs: 0 });
    }
    const secure = url.protocol === 'https:';
    const body = Buffer.from(opts.body);
    const req = (secure ? https : http).request(url, {
      method: 'POST',
      agent: secure ? opts.agents.https : opts.agents.http,
      headers: { ...opts.headers, 'content-length': String(body.length) },
    });
    const timer = setTimeout(() => {
      finish({ statusCode: null, error: `timeout after ${opts.timeoutMs} ms`, excerpt: null, retryAfterMs: null });
      req.destroy();
    }, opts.timeoutMs);

    let answered = false;
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      const stale = req.reusedSocket && !answered && (code === 'ECONNRESET' || code === 'EPIPE');
      finish({ statusCode: null, error: describeError(err), excerpt: null, retryAfterMs: null, ...(stale ? { staleSocket: true as const } : {}) });
    });
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let kept = 0;
      let read = 0;
      const statusCode = res.statusCode ?? 0;
      const retryAfter = res.headers['retry-after'];
      const done = () =>
        finish({
          statusCode,
          error: null,
          excerpt: kept ? Buffer.concat(chunks).toString('utf8') : null,
          retryAfterMs: parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter),
        });
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (kept < EXCERPT_BYTES) {
          const part = chunk.subarray(0, EXCERPT_BYTES - kept);
          chunks.push(part);
          kept += part.length;
        }
        if (read > DRAIN_LIMIT) {
          // The status is known; the rest of a huge answer is not worth reading.
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', (err) => finish({ statusCode, error: describeError(err), excerpt: null, retryAfterMs: null }));
    });
    req.end(body);
  });
}
