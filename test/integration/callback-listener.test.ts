import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { createApp } from '../../src/app.js';
import { callbackListener, createCallbackServices } from '../../src/callbacks/listener.js';
import { jobCallbackToken, jobCallbackUrl, providerCallbackUrl } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { type RealRelay, startRealRelay } from '../helpers/real-relay.js';
import { SECRET } from '../helpers/relay.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** A POST over a real socket with a declared length: what the server's direct callback listener takes. */
function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const bytes = Buffer.from(body);
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(bytes);
  });
}

const doc = (task: string, status = 'completed') => JSON.stringify({ id: task, status, output: { urls: ['https://x.example/v.mp4'] } });

describe(`callbacks served directly by the server answer as the app would (${dbKind})`, () => {
  let relay: RealRelay;
  let app: ReturnType<typeof createApp>;
  beforeAll(async () => {
    relay = await startRealRelay({ veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } });
    app = createApp(relay.deps);
  });
  afterAll(async () => relay?.close());

  async function track(task: string): Promise<string> {
    const res = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: task });
    return ((await res.json()) as { id: string }).id;
  }

  /** The same request through the app in-process (the Hono route), for comparison. */
  async function viaApp(path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
    const res = await app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.json() };
  }

  it('stores and applies a callback, with a request id and a JSON answer', async () => {
    const id = await track('direct-1');
    const res = await post(jobCallbackUrl(relay.url, SECRET, 'veo', id), doc('direct-1'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, verdict: 'applied', job_id: id, status: 'succeeded' });
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // The same callback again, through the app: a duplicate, answered the same way.
    const again = await viaApp(new URL(jobCallbackUrl(relay.url, SECRET, 'veo', id)).pathname, doc('direct-1'));
    expect(again.body).toEqual({ ok: true, verdict: 'duplicate', job_id: id, status: 'succeeded' });
  });

  it('keeps a well-formed X-Request-Id and replaces one that is not', async () => {
    const id = await track('direct-2');
    const url = jobCallbackUrl(relay.url, SECRET, 'veo', id);
    expect((await post(url, doc('direct-2'), { 'x-request-id': 'trace-abc_123=' })).headers['x-request-id']).toBe('trace-abc_123=');
    const odd = await post(url, doc('direct-2'), { 'x-request-id': 'has spaces' });
    expect(odd.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses what the app refuses, with the same status and error code', async () => {
    const id = await track('direct-3');
    const good = new URL(jobCallbackUrl(relay.url, SECRET, 'veo', id)).pathname;
    const cases: { path: string; body: string; headers?: Record<string, string> }[] = [
      { path: `/callbacks/veo/${id}/${'A'.repeat(43)}`, body: doc('direct-3') }, // forged token
      { path: `/callbacks/nope/${id}/${jobCallbackToken(SECRET, 'nope', id)}`, body: doc('direct-3') }, // unknown provider
      { path: good, body: doc('direct-3'), headers: { 'content-type': 'text/plain' } },
      { path: good, body: '{not json' },
      { path: good, body: '[1, 2]' },
      { path: good, body: doc('someone-else') }, // another task than the job tracks
      { path: `/callbacks/veo/job_missing/${jobCallbackToken(SECRET, 'veo', 'job_missing')}`, body: doc('direct-3') },
      { path: new URL(providerCallbackUrl(relay.url, SECRET, 'veo')).pathname, body: doc('no-such-task') },
    ];
    for (const c of cases) {
      const direct = await post(`${relay.url}${c.path}`, c.body, c.headers);
      const expected = await viaApp(c.path, c.body, c.headers);
      expect({ path: c.path, status: direct.status, code: direct.body.error?.code }).toEqual({
        path: c.path,
        status: expected.status,
        code: expected.body.error?.code,
      });
      expect(direct.status).toBeGreaterThanOrEqual(400);
      expect(direct.body.error.request_id).toBe(direct.headers['x-request-id']);
    }
  });

  it('decodes escaped path segments as the app does', async () => {
    const id = await track('direct-4');
    const token = jobCallbackToken(SECRET, 'veo', id);
    const res = await post(`${relay.url}/callbacks/ve%6F/${id}/${token}`, doc('direct-4'));
    expect(res.status).toBe(200);
    expect(res.body.verdict).toBe('applied');
    // A malformed escape is left to the app, which answers as it does on its own.
    const odd = `/callbacks/veo/%E0%A4%A/${token}`;
    expect((await post(`${relay.url}${odd}`, doc('direct-4'))).status).toBe((await viaApp(odd, doc('direct-4'))).status);
  });

  it('counts what it serves in the HTTP and callback metrics', async () => {
    const labels = { method: 'POST', route: '/callbacks/:provider/:job_id/:token', status: '2xx' };
    const before = sampleValue(parseExposition(await (await relay.api('GET', '/metrics')).text()), 'relay_http_request_seconds_count', labels) ?? 0;
    const id = await track('direct-5');
    expect((await post(jobCallbackUrl(relay.url, SECRET, 'veo', id), doc('direct-5'))).status).toBe(200);
    const page = parseExposition(await (await relay.api('GET', '/metrics')).text());
    expect(sampleValue(page, 'relay_http_request_seconds_count', labels)).toBe(before + 1);
    expect(sampleValue(page, 'relay_http_requests_in_flight', {})).toBeGreaterThanOrEqual(0);
  });

  it('takes only POSTs to the two callback routes with a plain Content-Length within the limit', () => {
    const direct = callbackListener(relay.deps, createCallbackServices(relay.deps));
    const taken = (method: string, url: string, headers: Record<string, string>) => {
      const req = Object.assign(new PassThrough(), { method, url, headers, socket: { remoteAddress: '127.0.0.1' } });
      const res = { writeHead() {}, end() {} };
      // Whatever it takes is answered later (the body never comes here); only the decision matters.
      return direct(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse);
    };
    const len = { 'content-length': '10' };
    expect(taken('POST', '/callbacks/veo/job_1/tok', len)).toBe(true);
    expect(taken('POST', '/callbacks/veo/tok?x=1', len)).toBe(true);
    expect(taken('GET', '/callbacks/veo/job_1/tok', len)).toBe(false);
    expect(taken('POST', '/callbacks/veo/job_1/tok/extra', len)).toBe(false);
    expect(taken('POST', '/callbacks/veo//tok', len)).toBe(false);
    expect(taken('POST', '/v1/jobs', len)).toBe(false);
    expect(taken('POST', '/callbacks/veo/job_1/tok', {})).toBe(false); // chunked: the app reads it
    expect(taken('POST', '/callbacks/veo/job_1/tok', { 'content-length': String(2 * 1024 * 1024) })).toBe(false); // the app answers 413
    expect(taken('POST', '/callbacks/veo/job_1/tok', { 'content-length': '10', 'transfer-encoding': 'chunked' })).toBe(false);
  });
});
