import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { jobCallbackToken, providerCallbackToken } from '../../src/callbacks/tokens.js';
import { callbackReceipts } from '../../src/db/schema.js';
import { createLogger } from '../../src/ops/logger.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let fake: FakeAivideoapi;
let relay: TestRelay;
/** Every line the relay logs, at trace level, captured as written. */
const lines: string[] = [];
let app: ReturnType<typeof createApp>;

const PROVIDER_AUTH = 'Bearer provider-sent-credential-42';

beforeAll(async () => {
  fake = await startFakeAivideoapi();
  relay = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, timeout_s: 2 } });
  app = createApp({ ...relay.deps, log: createLogger('trace', { write: (line: string) => void lines.push(line) }) });
});
afterAll(async () => {
  await relay?.close();
  await fake?.close();
});

interface Sent {
  res: Response;
  body: string;
  /** The lines logged while this request was being handled. */
  logged: Record<string, unknown>[];
}

async function send(path: string, init: RequestInit = {}): Promise<Sent> {
  const from = lines.length;
  const res = await app.request(path, init);
  const body = await res.text();
  return { res, body, logged: lines.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

/** A job tracked with `key`, through the logging app. */
async function track(key: string) {
  const taskId = `task-redact-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const { res, body } = await send('/v1/jobs/track', json('POST', { provider: 'veo', provider_task_id: taskId }, { authorization: `Bearer ${key}` }));
  expect(res.status).toBe(201);
  return { taskId, jobId: (JSON.parse(body) as { id: string }).id };
}

describe(`request ids and redaction (${dbKind})`, () => {
  it('every log line of a request carries its request id, which is returned as X-Request-Id', async () => {
    const { res, logged } = await send('/v1/jobs?limit=1', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(line.request_id).toBe(id);

    // An error answer names the same id in its header, its body and its log lines.
    const refused = await send('/v1/jobs');
    expect(refused.res.status).toBe(401);
    const refusedId = refused.res.headers.get('x-request-id');
    expect((JSON.parse(refused.body) as { error: { request_id: string } }).error.request_id).toBe(refusedId);
    for (const line of refused.logged) expect(line.request_id).toBe(refusedId);

    // A caller's own id is kept, so a trace can follow one request across services.
    const mine = await send('/healthz', { headers: { 'x-request-id': 'checkout-7f3a' } });
    expect(mine.res.headers.get('x-request-id')).toBe('checkout-7f3a');
    for (const line of mine.logged) expect(line.request_id).toBe('checkout-7f3a');
  });

  it('a callback with credential headers is stored with them redacted, and the audit headers kept', async () => {
    const { taskId, jobId } = await track(await relay.keyWith('jobs:read', 'jobs:write'));
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));

    const token = jobCallbackToken(SECRET, 'veo', jobId);
    const { res, logged } = await send(
      `/callbacks/veo/${jobId}/${token}`,
      json('POST', aivideoapiDocs.completed(taskId), {
        authorization: PROVIDER_AUTH,
        cookie: 'session=abc123secret',
        'x-api-key': 'sk-live-provider-key',
        'x-webhook-secret': 'shh-its-a-secret',
        'x-event': 'task.completed',
        'x-task-id': taskId,
        'x-timestamp': '1774796529',
      }),
    );
    expect(res.status).toBe(200);
    for (const line of logged) expect(line.request_id).toBe(res.headers.get('x-request-id'));

    const receipts = (await (await relay.api('GET', `/v1/jobs/${jobId}/callbacks`)).json()) as { data: { headers: Record<string, string> }[] };
    expect(receipts.data[0]!.headers).toEqual({
      'content-type': 'application/json',
      'x-event': 'task.completed',
      'x-task-id': taskId,
      'x-timestamp': '1774796529',
      authorization: '[redacted]',
      cookie: '[redacted]',
      'x-api-key': '[redacted]',
      'x-webhook-secret': '[redacted]',
    });
    const stored = JSON.stringify(receipts);
    for (const secret of ['provider-sent-credential-42', 'abc123secret', 'sk-live-provider-key', 'shh-its-a-secret']) {
      expect(stored).not.toContain(secret);
    }
  });

  it('a rejected callback sample is stored with its credential headers redacted too', async () => {
    const jobId = 'job_not_really_there';
    const { res } = await send(`/callbacks/veo/${jobId}/forged-token`, json('POST', {}, { authorization: PROVIDER_AUTH }));
    expect(res.status).toBe(401);
    const [sample] = await relay.deps.db
      .select()
      .from(callbackReceipts)
      .where(and(eq(callbackReceipts.claimedJobId, jobId), eq(callbackReceipts.verdict, 'unauthorized')));
    expect(sample?.headers).toMatchObject({ authorization: '[redacted]' });
  });

  it('no log line ever holds an API key, a callback token or a credential, whatever the request does', async () => {
    const key = await relay.keyWith('jobs:read', 'jobs:write');
    const { taskId, jobId } = await track(key);
    const jobToken = jobCallbackToken(SECRET, 'veo', jobId);
    const providerToken = providerCallbackToken(SECRET, 'veo');
    const doc = aivideoapiDocs.completed(taskId);

    // The provider cannot confirm (a warning with the error is logged), then can; a forged token;
    // a path no route has; a revoked-looking key; a body the provider would never send.
    fake.failWith = 500;
    expect((await send(`/callbacks/veo/${jobId}/${jobToken}`, json('POST', doc, { authorization: PROVIDER_AUTH }))).res.status).toBe(503);
    fake.failWith = null;
    fake.tasks.set(taskId, doc);
    expect((await send(`/callbacks/veo/${providerToken}`, json('POST', doc, { 'x-task-id': taskId }))).res.status).toBe(200);
    expect((await send(`/callbacks/veo/${jobId}/${jobToken}x`, json('POST', doc))).res.status).toBe(401);
    expect((await send(`/callbacks/veo/${jobId}/${jobToken}/extra`, json('POST', doc))).res.status).toBe(404);
    expect((await send(`/callbacks/veo/${jobId}/${jobToken}`, json('POST', [1, 2]))).res.status).toBe(400);
    expect((await send('/v1/jobs', { headers: { authorization: `Bearer ${key}x` } })).res.status).toBe(401);
    expect((await send(`/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${key}` } })).res.status).toBe(200);

    const all = lines.join('');
    expect(all).toContain(jobId); // the job is named in the logs; its token is not
    for (const secret of [ADMIN_KEY, key, jobToken, providerToken, fake.apiKey, 'provider-sent-credential-42', SECRET]) {
      expect(all, `a log line contains ${secret}`).not.toContain(secret);
    }
    expect(all).toContain('/callbacks/veo/[token]');
    expect(lines.every((l) => (JSON.parse(l) as { request_id?: string }).request_id)).toBe(true);
  });
});
