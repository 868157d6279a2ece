import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCallbackUrl } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { type RealRelay, startRealRelay } from '../helpers/real-relay.js';
import { SECRET } from '../helpers/relay.js';

/** A POST over a real socket, with the body sent in `parts` (chunked when `length` is not declared). */
function post(url: string, parts: Buffer[], headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

describe(`callbacks over a real socket: raw bytes read from Node's request (${dbKind})`, () => {
  let relay: RealRelay;
  beforeAll(async () => {
    relay = await startRealRelay({ veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } });
  });
  afterAll(async () => relay?.close());

  async function track(task: string): Promise<string> {
    const res = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: task });
    return ((await res.json()) as { id: string }).id;
  }
  const doc = (task: string) => Buffer.from(JSON.stringify({ id: task, status: 'completed', output: { urls: ['https://x.example/é.mp4'] } }));

  it('a callback with Content-Length is stored byte for byte and applied', async () => {
    const id = await track('http-1');
    const body = doc('http-1');
    const res = await post(jobCallbackUrl(relay.url, SECRET, 'veo', id), [body.subarray(0, 10), body.subarray(10)], {
      'content-type': 'application/json',
      'content-length': String(body.length),
      authorization: 'Bearer not-for-storing',
    });
    expect(res.status, res.body).toBe(200);
    const receipts = (await (await relay.api('GET', `/v1/jobs/${id}/callbacks`)).json()) as { data: any[] };
    expect(receipts.data[0].body).toBe(body.toString());
    expect(receipts.data[0].headers.authorization).toBe('[redacted]');
    expect(((await (await relay.api('GET', `/v1/jobs/${id}`)).json()) as any).status).toBe('succeeded');
  });

  it('a chunked callback (no Content-Length) is read too', async () => {
    const id = await track('http-2');
    const body = doc('http-2');
    const res = await post(jobCallbackUrl(relay.url, SECRET, 'veo', id), [body.subarray(0, 5), body.subarray(5)], {
      'content-type': 'application/json',
    });
    expect(res.status, res.body).toBe(200);
  });

  it('a declared length over 1 MiB is refused with 413 before it is read', async () => {
    const id = await track('http-3');
    const res = await post(jobCallbackUrl(relay.url, SECRET, 'veo', id), [Buffer.from('{}')], {
      'content-type': 'application/json',
      'content-length': String(2 * 1024 * 1024),
    });
    // The relay answers before the (never sent) rest of the body.
    expect(res.status, res.body).toBe(413);
    expect(((await (await relay.api('GET', `/v1/jobs/${id}`)).json()) as any).status).toBe('submitted');
  });
});
