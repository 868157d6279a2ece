import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobCallbackUrl } from '../../src/callbacks/tokens.js';
import { freePort } from '../../src/http/free-port.js';
import { databaseEnv, MAIN, type Relay, startRelay, waitHealthy } from './process.js';
import { ADMIN_KEY, SECRET } from './relay.js';

/**
 * A relay process that can be killed and started again on the same database (a scratch database on
 * TEST_DATABASE_URL, or a PGlite directory), with a config file of its own.
 */
export interface RelayFixture {
  base: string;
  env: Record<string, string>;
  /** The relay running now, if any. */
  current: Relay | undefined;
  /** Starts a relay process and waits until it answers /healthz. */
  start(extraEnv?: Record<string, string>): Promise<Relay>;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
  /** A request with the admin key. */
  api(method: string, path: string, body?: unknown): Promise<Response>;
  cleanup(): Promise<void>;
}

/** `scratchUrl` rewrites the scratch database's URL the process is given (e.g. to go through a proxy). */
export async function relayFixture(
  config: { providers: Record<string, unknown>; delivery?: Record<string, unknown> },
  opts: { scratchUrl?: (url: string) => string } = {},
): Promise<RelayFixture> {
  if (!existsSync(MAIN)) throw new Error('dist/main.js is missing: run `npm run build` (npm test does it first)');
  const dir = mkdtempSync(join(tmpdir(), 'relay-reliability-'));
  const configPath = join(dir, 'relay.json');
  writeFileSync(configPath, JSON.stringify(config));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const data = await databaseEnv(dir);
  if (data.env.DATABASE_URL && opts.scratchUrl) data.env.DATABASE_URL = opts.scratchUrl(data.env.DATABASE_URL);
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: base,
    RELAY_CONFIG: configPath,
    RELAY_ADMIN_KEY: ADMIN_KEY,
    RELAY_SECRET: SECRET,
    ...data.env,
  };
  const running: Relay[] = [];
  const fixture: RelayFixture = {
    base,
    env,
    current: undefined,
    async start(extraEnv = {}) {
      const relay = startRelay({ ...env, ...extraEnv });
      running.push(relay);
      fixture.current = relay;
      await waitHealthy(base, relay);
      return relay;
    },
    async kill() {
      const relay = fixture.current;
      if (!relay) return;
      if (relay.proc.exitCode === null && relay.proc.signalCode === null) relay.proc.kill('SIGKILL');
      await relay.exited;
      fixture.current = undefined;
    },
    api: (method, path, body) =>
      fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    async cleanup() {
      for (const r of running) if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
      await Promise.all(running.map((r) => r.exited));
      await data.drop?.();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

export interface TrackedJob {
  id: string;
  taskId: string;
}

/** Tracks `n` jobs at `provider` through the API, `concurrency` at a time. */
export async function trackJobs(fixture: RelayFixture, provider: string, n: number, prefix: string, concurrency = 8): Promise<TrackedJob[]> {
  const out: TrackedJob[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const k = next++;
        const taskId = `${prefix}-${k}`;
        const res = await fixture.api('POST', '/v1/jobs/track', { provider, provider_task_id: taskId });
        if (res.status !== 201) throw new Error(`track ${taskId}: ${res.status} ${await res.text()}`);
        out[k] = { id: ((await res.json()) as { id: string }).id, taskId };
      }
    }),
  );
  return out;
}

/** An aivideoapi "completed" callback for a task, as the provider posts it. */
export function completedCallback(taskId: string): string {
  return JSON.stringify({ id: taskId, status: 'completed', output: { urls: [`https://x.example/${taskId}.mp4`] } });
}

export interface CallbackOutcome {
  job: TrackedJob;
  /** The HTTP status, or null when no answer came (reset, timed out). */
  status: number | null;
  body: string;
  error: string | null;
  sentAt: number;
  answeredAt: number;
}

export interface CallbackStream {
  /** One per callback that reached the relay's port (refused connections are not sent: see below). */
  outcomes: CallbackOutcome[];
  /** Callbacks whose connection was refused: nothing was sent, so their job went back in the queue. */
  refused(): number;
  /** Outcomes with this status so far. */
  count(status: number | null): number;
  /** Callbacks sent and not answered yet. */
  inFlight(): number;
  /** Resolves once `n` more answers with `status` have come in than when it was called. */
  waitForMore(status: number | null, n: number, timeoutMs?: number): Promise<void>;
  /** Stops sending and waits for the answers of the callbacks in flight. */
  stop(): Promise<void>;
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A steady stream of valid, distinct "completed" callbacks on each job's own URL, `perSecond` of
 * them, one per job, never retried once it may have reached the relay: every answer is recorded,
 * whatever it was. A callback whose connection is refused provably never arrived, so its job is
 * used again later (that keeps the number of jobs a test must track down while the relay is away).
 */
export function startCallbackStream(opts: {
  base: string;
  provider: string;
  jobs: readonly TrackedJob[];
  perSecond: number;
  requestTimeoutMs?: number;
}): CallbackStream {
  const outcomes: CallbackOutcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const again: TrackedJob[] = [];
  let next = 0;
  let refused = 0;
  const send = async (job: TrackedJob) => {
    const sentAt = Date.now();
    let status: number | null = null;
    let body = '';
    let error: string | null = null;
    try {
      const res = await fetch(jobCallbackUrl(opts.base, SECRET, opts.provider, job.id), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: completedCallback(job.taskId),
        signal: AbortSignal.timeout(opts.requestTimeoutMs ?? 10_000),
      });
      body = await res.text();
      status = res.status;
    } catch (err) {
      if (errorCode(err) === 'ECONNREFUSED') {
        refused++;
        again.push(job);
        return;
      }
      status = null;
      error = `${String(err)} (${errorCode(err) ?? 'no code'})`;
    }
    outcomes.push({ job, status, body, error, sentAt, answeredAt: Date.now() });
  };
  const timer = setInterval(() => {
    const job = again.length ? again.shift() : opts.jobs[next];
    if (!job) return;
    if (job === opts.jobs[next]) next++;
    const p = send(job).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1000 / opts.perSecond);
  const count = (status: number | null) => outcomes.filter((o) => o.status === status).length;
  return {
    outcomes,
    refused: () => refused,
    count,
    inFlight: () => inFlight.size,
    async waitForMore(status, n, timeoutMs = 30_000) {
      const target = count(status) + n;
      const deadline = Date.now() + timeoutMs;
      while (count(status) < target) {
        if (Date.now() > deadline) throw new Error(`only ${count(status)} of ${target} answers with status ${status} in ${timeoutMs} ms`);
        if (next >= opts.jobs.length && again.length === 0 && inFlight.size === 0) {
          throw new Error(`the stream ran out of jobs at ${count(status)} of ${target} answers with status ${status}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop() {
      clearInterval(timer);
      while (inFlight.size) await Promise.all([...inFlight]);
    },
  };
}

/** Polls `check` until it returns true or the timeout; throws with `describe()` on timeout. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, describe: () => string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs `fn` over `items`, `concurrency` at a time, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const k = next++;
        out[k] = await fn(items[k]!);
      }
    }),
  );
  return out;
}
