import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jobCallbackToken, providerCallbackToken } from '../../src/callbacks/tokens.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let fake: FakeAivideoapi;
let relay: TestRelay;
let taskSeq = 0;

beforeAll(async () => {
  fake = await startFakeAivideoapi();
  relay = await startTestRelay({
    veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, timeout_s: 2 },
    trusting: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, verify_by_fetch: false },
  });
});
afterAll(async () => {
  await relay?.close();
  await fake?.close();
});
beforeEach(() => {
  fake.failWith = null;
});

async function track(provider = 'veo') {
  const taskId = `task-${++taskSeq}-${Date.now()}`;
  const res = await relay.api('POST', '/v1/jobs/track', { provider, provider_task_id: taskId, metadata: { order_id: 'A-17' } });
  expect(res.status).toBe(201);
  const job = (await res.json()) as { id: string; status: string };
  return { taskId, job };
}

function postRaw(path: string, body: string, headers: Record<string, string> = {}) {
  return relay.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

const providerUrl = (provider = 'veo') => `/callbacks/${provider}/${providerCallbackToken(SECRET, provider)}`;
const jobUrl = (jobId: string, provider = 'veo') => `/callbacks/${provider}/${jobId}/${jobCallbackToken(SECRET, provider, jobId)}`;

async function getJob(id: string) {
  return (await (await relay.api('GET', `/v1/jobs/${id}`)).json()) as Record<string, any>;
}
async function events(id: string) {
  return ((await (await relay.api('GET', `/v1/jobs/${id}/events`)).json()) as { data: any[] }).data;
}
async function receipts(id: string) {
  return ((await (await relay.api('GET', `/v1/jobs/${id}/callbacks`)).json()) as { data: any[] }).data;
}

describe(`inbound callbacks (${dbKind})`, () => {
  it('a tracked job becomes succeeded with its video URL after a confirmed callback', async () => {
    const { taskId, job } = await track();
    expect(job.status).toBe('submitted');
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));

    const res = await postRaw(providerUrl(), JSON.stringify(aivideoapiDocs.completed(taskId)), {
      'x-event': 'task.completed',
      'x-task-id': taskId,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, verdict: 'applied', job_id: job.id, status: 'succeeded' });

    const after = await getJob(job.id);
    expect(after.status).toBe('succeeded');
    expect(after.progress).toBe(100);
    expect(after.result.video_urls).toEqual(['https://file.aivideoapi.ai/videos/2026/04/02/abc123.mp4']);
    expect(after.completed_at).not.toBeNull();
    expect((await events(job.id)).map((e) => [e.sequence, e.type])).toEqual([
      [1, 'job.submitted'],
      [2, 'job.succeeded'],
    ]);
    const [receipt] = await receipts(job.id);
    expect(receipt).toMatchObject({ verdict: 'applied', route: 'provider', headers: { 'x-event': 'task.completed' } });
    expect(JSON.parse(receipt.body)).toEqual(aivideoapiDocs.completed(taskId));
  });

  it("a job's own callback URL works too, and a failure carries the provider's error", async () => {
    const { taskId, job } = await track();
    fake.tasks.set(taskId, aivideoapiDocs.failed(taskId));
    const res = await postRaw(jobUrl(job.id), JSON.stringify(aivideoapiDocs.failed(taskId)));
    expect(res.status).toBe(200);
    const after = await getJob(job.id);
    expect(after.status).toBe('failed');
    expect(after.error).toEqual({ code: 'upstream_error', message: 'Video generation failed', source: 'provider' });
  });

  it('a duplicate callback is stored and answered 200 but emits no second event', async () => {
    const { taskId, job } = await track();
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));
    const body = JSON.stringify(aivideoapiDocs.completed(taskId));
    expect((await postRaw(providerUrl(), body)).status).toBe(200);
    const second = await postRaw(providerUrl(), body);
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ verdict: 'duplicate' });
    expect((await events(job.id)).filter((e) => e.type === 'job.succeeded')).toHaveLength(1);
    expect((await receipts(job.id)).map((r) => r.verdict)).toEqual(['applied', 'duplicate']);
  });

  it('a processing callback after completion does not move the job back', async () => {
    const { taskId, job } = await track();
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));
    await postRaw(providerUrl(), JSON.stringify(aivideoapiDocs.completed(taskId)));
    const late = await postRaw(providerUrl(), JSON.stringify(aivideoapiDocs.processing(taskId)));
    expect(late.status).toBe(200);
    expect(await late.json()).toMatchObject({ verdict: 'stale', status: 'succeeded' });
    expect((await getJob(job.id)).status).toBe('succeeded');
    expect(await events(job.id)).toHaveLength(2);
  });

  it('a processing callback is applied without asking the provider', async () => {
    const { taskId, job } = await track();
    const before = fake.requests.length;
    const res = await postRaw(jobUrl(job.id), JSON.stringify({ ...aivideoapiDocs.processing(taskId), progress: 40 }));
    expect(res.status).toBe(200);
    expect(fake.requests.length).toBe(before);
    expect(await getJob(job.id)).toMatchObject({ status: 'processing', progress: 40 });
  });

  it('a bad token is refused with 401, the job is untouched and the rejection is recorded', async () => {
    const { taskId, job } = await track();
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));
    const forged = `/callbacks/veo/${job.id}/${'A'.repeat(32)}`;
    const res = await postRaw(forged, JSON.stringify(aivideoapiDocs.completed(taskId)));
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe('unauthorized');
    // Another job's valid token is no good for this one either.
    const { job: other } = await track();
    const crossed = `/callbacks/veo/${job.id}/${jobCallbackToken(SECRET, 'veo', other.id)}`;
    expect((await postRaw(crossed, JSON.stringify(aivideoapiDocs.completed(taskId)))).status).toBe(401);
    expect((await postRaw(`/callbacks/veo/not-the-token`, '{}')).status).toBe(401);

    expect((await getJob(job.id)).status).toBe('submitted');
    expect(await events(job.id)).toHaveLength(1);
    const { callbackReceipts } = await import('../../src/db/schema.js');
    const { eq } = await import('drizzle-orm');
    const rows = await relay.deps.db.select().from(callbackReceipts).where(eq(callbackReceipts.claimedJobId, job.id));
    expect(rows.map((r) => r.verdict)).toEqual(['unauthorized', 'unauthorized']);
    expect(rows[0]!.jobId).toBeNull();
  });

  it('a callback for a task nobody tracks is 404', async () => {
    const res = await postRaw(providerUrl(), JSON.stringify(aivideoapiDocs.completed('no-such-task')));
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe('not_found');
    const missingJob = 'job_00000000000000000000000000';
    expect((await postRaw(jobUrl(missingJob), JSON.stringify(aivideoapiDocs.completed('x')))).status).toBe(404);
    expect((await postRaw(providerUrl('nope'), '{}')).status).toBe(404);
  });

  it('a body that is not JSON is 415 by content type and 400 by content', async () => {
    const { job } = await track();
    const url = jobUrl(job.id);
    const asText = await postRaw(url, 'status=completed', { 'content-type': 'text/plain' });
    expect(asText.status).toBe(415);
    expect(((await asText.json()) as any).error.code).toBe('unsupported_media_type');
    for (const body of ['{not json', '[1,2,3]', '"completed"', '{"no_status":true}', '\u00ff\u00fe']) {
      const res = await postRaw(url, body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as any).error.code).toBe('invalid_request');
    }
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    expect((await postRaw(url, `{"a":${deep}}`)).status).toBe(400);
    expect((await getJob(job.id)).status).toBe('submitted');
  });

  it('a body over 1 MiB is 413, whether or not it declares its length', async () => {
    const { taskId, job } = await track();
    const big = JSON.stringify({ ...aivideoapiDocs.processing(taskId), pad: 'x'.repeat(1024 * 1024) });
    const res = await postRaw(jobUrl(job.id), big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe('payload_too_large');
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream({
      start(ctrl) {
        for (let i = 0; i < bytes.length; i += 65536) ctrl.enqueue(bytes.subarray(i, i + 65536));
        ctrl.close();
      },
    });
    const chunked = await relay.app.request(jobUrl(job.id), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await getJob(job.id)).status).toBe('submitted');
  });

  it("a terminal claim the provider's status endpoint contradicts is not applied", async () => {
    const { taskId, job } = await track();
    fake.tasks.set(taskId, aivideoapiDocs.processing(taskId));
    const res = await postRaw(jobUrl(job.id), JSON.stringify(aivideoapiDocs.completed(taskId, 'https://evil.example/v.mp4')));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ verdict: 'contradicted', status: 'processing' });
    const after = await getJob(job.id);
    expect(after.status).toBe('processing');
    expect(after.result).toBeNull();
    expect((await events(job.id)).map((e) => e.type)).toEqual(['job.submitted', 'job.processing']);
    const [receipt] = await receipts(job.id);
    expect(receipt.verdict).toBe('contradicted');
    expect(receipt.reason).toMatch(/claimed "succeeded"/);
  });

  it('a terminal claim that cannot be confirmed is stored and answered 503 so the provider retries', async () => {
    const { taskId, job } = await track();
    fake.failWith = 500;
    const body = JSON.stringify(aivideoapiDocs.completed(taskId));
    const res = await postRaw(jobUrl(job.id), body);
    expect(res.status).toBe(503);
    expect((await getJob(job.id)).status).toBe('submitted');
    expect((await receipts(job.id)).map((r) => r.verdict)).toEqual(['unverifiable']);

    fake.failWith = null;
    fake.tasks.set(taskId, aivideoapiDocs.completed(taskId));
    expect((await postRaw(jobUrl(job.id), body)).status).toBe(200);
    expect((await getJob(job.id)).status).toBe('succeeded');
  });

  it('a provider with verify_by_fetch off is believed without a fetch', async () => {
    const { taskId, job } = await track('trusting');
    const before = fake.requests.length;
    const res = await postRaw(jobUrl(job.id, 'trusting'), JSON.stringify(aivideoapiDocs.completed(taskId)));
    expect(res.status).toBe(200);
    expect(fake.requests.length).toBe(before);
    expect((await getJob(job.id)).status).toBe('succeeded');
  });

  it('a callback naming another task than its job is refused', async () => {
    const { job } = await track();
    const res = await postRaw(jobUrl(job.id), JSON.stringify(aivideoapiDocs.processing('someone-else')));
    expect(res.status).toBe(400);
    expect((await getJob(job.id)).status).toBe('submitted');
  });

  it('NUL characters in a provider document do not stop it being stored', async () => {
    const { taskId, job } = await track('trusting');
    const doc = { ...aivideoapiDocs.failed(taskId), error: { code: 'x\u0000y', message: 'bad\u0000byte' } };
    const res = await postRaw(jobUrl(job.id, 'trusting'), JSON.stringify(doc));
    expect(res.status).toBe(200);
    expect((await getJob(job.id)).error).toEqual({ code: 'xy', message: 'badbyte', source: 'provider' });
  });
});
