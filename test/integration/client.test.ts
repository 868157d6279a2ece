import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { jobCallbackToken } from '../../src/callbacks/tokens.js';
import { type Job, type JobStatus, LONGEST_WAIT_S, RelayApiError, RelayClient } from '../../src/client/index.js';
import { MAX_WAIT_S } from '../../src/jobs/wait.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let fake: FakeAivideoapi;
let relay: TestRelay;
let client: RelayClient;
let taskSeq = 0;

/** The client over the in-process relay: `fetch` hands each request to the app. */
const toApp = (url: string, init: RequestInit) => Promise.resolve(relay.app.request(url, init));
const clientWith = (apiKey: string, fetch = toApp) => new RelayClient({ baseUrl: 'http://relay.test', apiKey, fetch });

beforeAll(async () => {
  fake = await startFakeAivideoapi();
  relay = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, verify_by_fetch: false } });
  client = clientWith(ADMIN_KEY);
});
afterAll(async () => {
  await relay?.close();
  await fake?.close();
});

async function track(metadata: Record<string, string> = {}): Promise<Job> {
  const taskId = `client-${++taskSeq}`;
  fake.tasks.set(taskId, aivideoapiDocs.processing(taskId));
  return client.trackJob({ provider: 'veo', provider_task_id: taskId, metadata });
}

/** The provider finishes the job's task and calls back. */
async function complete(job: Job) {
  const doc = aivideoapiDocs.completed(job.provider_task_id!);
  fake.tasks.set(job.provider_task_id!, doc);
  const res = await relay.app.request(`/callbacks/veo/${job.id}/${jobCallbackToken(SECRET, 'veo', job.id)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(doc),
  });
  expect(res.status).toBe(200);
}

describe(`the typed client (${dbKind})`, () => {
  it('submits a job once per idempotency key, and cancels it', async () => {
    const request = { provider: 'veo', prompt: 'A drone shot over mountains', metadata: { order_id: 'C-1' } };
    const job = await client.createJob(request, { idempotencyKey: 'client-order-C-1' });
    expect(job).toMatchObject({ status: 'queued', provider: 'veo', metadata: { order_id: 'C-1' } });
    expect((await client.createJob(request, { idempotencyKey: 'client-order-C-1' })).id).toBe(job.id);
    expect((await client.createJob(request)).id).not.toBe(job.id);

    const canceled = await client.cancelJob(job.id);
    expect(canceled.status).toBe('canceled');
  });

  it('waitForJob returns as soon as the job is terminal', async () => {
    const job = await track();
    expect(job.status).toBe('submitted');
    const started = Date.now();
    const waiting = client.waitForJob(job.id, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    await complete(job);
    const done = await waiting;
    expect(done.status).toBe('succeeded');
    expect(done.result?.video_urls).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('waitForJob returns the job as it is when its deadline comes first', async () => {
    const job = await track();
    const started = Date.now();
    const still = await client.waitForJob(job.id, { timeoutMs: 1_500 });
    expect(still.status).toBe('submitted');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('waitForJob rides out a relay that is briefly unavailable', async () => {
    const job = await track();
    await complete(job);
    let refused = 0;
    const flaky = clientWith(ADMIN_KEY, async (url, init) => {
      if (refused < 2) {
        refused++;
        return new Response(JSON.stringify({ error: { code: 'unavailable', message: 'database down', request_id: 'r' } }), {
          status: 503,
        });
      }
      return toApp(url, init);
    });
    expect((await flaky.waitForJob(job.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
    expect(refused).toBe(2);
  });

  it('lists with filters, and pages through every matching job exactly once', async () => {
    const batch = `batch-${Date.now()}`;
    const made: Job[] = [];
    for (let i = 0; i < 7; i++) made.push(await track({ batch }));
    await complete(made[0]!);

    const first = await client.listJobs({ metadata: { batch }, limit: 3 });
    expect(first.data.map((j) => j.id)).toEqual(made.slice(-3).reverse().map((j) => j.id));
    expect(first.next_cursor).toEqual(expect.any(String));

    const pages = [];
    for await (const page of client.listJobPages({ metadata: { batch }, limit: 3 })) pages.push(page.data.length);
    expect(pages).toEqual([3, 3, 1]);
    const seen = [];
    for await (const job of client.iterateJobs({ metadata: { batch }, limit: 2 })) seen.push(job.id);
    expect(seen).toEqual(made.map((j) => j.id).reverse());

    const done = await client.listJobs({ metadata: { batch }, status: ['succeeded', 'failed'], provider: 'veo' });
    expect(done.data.map((j) => j.id)).toEqual([made[0]!.id]);
    expect(done.next_cursor).toBeNull();
  });

  it("reads a job's events, its callbacks and the event feed", async () => {
    const job = await track();
    await complete(job);
    const events = await client.jobEvents(job.id);
    expect(events.data.map((e) => [e.sequence, e.type])).toEqual([
      [1, 'job.submitted'],
      [2, 'job.succeeded'],
    ]);
    expect((await client.jobEvents(job.id, { after: 1 })).data.map((e) => e.type)).toEqual(['job.succeeded']);
    expect((await client.jobCallbacks(job.id)).data.map((r) => r.verdict)).toEqual(['applied']);

    const fromFeed = [];
    let after: string | undefined;
    for (;;) {
      const page = await client.listEvents({ limit: 50, ...(after ? { after } : {}) });
      fromFeed.push(...page.data.filter((e) => e.job_id === job.id).map((e) => e.type));
      after = page.next_cursor;
      if (!page.has_more) break;
    }
    expect(fromFeed).toEqual(['job.submitted', 'job.succeeded']);
  });

  it('refreshJob applies what the provider says now', async () => {
    const job = await track();
    fake.tasks.set(job.provider_task_id!, aivideoapiDocs.completed(job.provider_task_id!));
    expect((await client.refreshJob(job.id)).status).toBe('succeeded');
  });

  it('an error answer is a RelayApiError with its status, code, message and request id', async () => {
    const missing = await client.getJob('job_missing').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RelayApiError);
    expect(missing).toMatchObject({ status: 404, code: 'not_found', message: expect.stringContaining('job_missing') });
    expect((missing as RelayApiError).requestId).toEqual(expect.any(String));

    const noKey = await clientWith('crk_not-a-key').listJobs().catch((e: unknown) => e);
    expect(noKey).toMatchObject({ status: 401, code: 'unauthorized' });

    const readOnly = clientWith(await relay.keyWith('jobs:read'));
    const forbidden = await readOnly.cancelJob('job_missing').catch((e: unknown) => e);
    expect(forbidden).toMatchObject({ status: 403, code: 'forbidden' });

    const invalid = await client.createJob({ provider: 'veo', prompt: '' }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, code: 'invalid_request', details: [expect.objectContaining({ field: 'prompt' })] });

    const proxy = clientWith(ADMIN_KEY, async () => new Response('<html>Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }));
    const bad = await proxy.getJob('job_x').catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 502, code: 'unexpected_response', message: expect.stringContaining('Bad Gateway') });
  });

  it('the client never asks for a longer wait than the relay allows, and its types come from the schemas', async () => {
    expect(LONGEST_WAIT_S).toBe(MAX_WAIT_S);
    const job = await track();
    expectTypeOf(job.status).toEqualTypeOf<JobStatus>();
    expectTypeOf<JobStatus>().toEqualTypeOf<'queued' | 'submitted' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'expired'>();
    // @ts-expect-error: not a status, refused at compile time
    await client.listJobs({ status: ['finished'] }).catch(() => {});
    // @ts-expect-error: the request schema is strict, so an unknown field is a compile error too
    await client.createJob({ provider: 'veo', promt: 'typo' }).catch(() => {});
  });
});
