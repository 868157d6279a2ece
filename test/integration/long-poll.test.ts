import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCallbackToken } from '../../src/callbacks/tokens.js';
import { waitingRequests } from '../../src/jobs/wait.js';
import { createScratchDatabase, dbKind } from '../helpers/db.js';
import { aivideoapiDocs, type FakeAivideoapi, startFakeAivideoapi } from '../helpers/fake-aivideoapi.js';
import { startRealRelay } from '../helpers/real-relay.js';
import { ADMIN_KEY, SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let fake: FakeAivideoapi;
let relay: TestRelay;
let taskSeq = 0;

// Callbacks are taken without asking the provider back: the waiters only care that the job ended,
// and fifty confirmations at once are slow on a loaded machine.
const providers = () => ({ veo: { kind: 'aivideoapi', base_url: fake.baseUrl, api_key: fake.apiKey, verify_by_fetch: false } });
const jobUrl = (jobId: string) => `/callbacks/veo/${jobId}/${jobCallbackToken(SECRET, 'veo', jobId)}`;

beforeAll(async () => {
  fake = await startFakeAivideoapi();
  relay = await startTestRelay(providers());
});
afterAll(async () => {
  await relay?.close();
  await fake?.close();
});

/** A tracked job at the fake provider, still processing there. */
async function track(api: (method: string, path: string, body?: unknown) => Promise<Response>) {
  const taskId = `lp-${++taskSeq}-${Date.now()}`;
  fake.tasks.set(taskId, aivideoapiDocs.processing(taskId));
  const res = await api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: taskId });
  expect(res.status).toBe(201);
  return { taskId, id: ((await res.json()) as { id: string }).id };
}

/** The provider finishes the task and calls back; resolves when the callback was answered (committed). */
async function complete(base: string, job: { taskId: string; id: string }) {
  fake.tasks.set(job.taskId, aivideoapiDocs.completed(job.taskId));
  const res = await fetchOrApp(base, jobUrl(job.id), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(aivideoapiDocs.completed(job.taskId)),
  });
  expect(res.status).toBe(200);
  return performance.now();
}

/** A request to a real relay at `base`, or to the in-process app when `base` is empty. */
function fetchOrApp(base: string, path: string, init: RequestInit) {
  return base ? fetch(`${base}${path}`, init) : Promise.resolve(relay.app.request(path, init));
}

/** Starts a long-poll; resolves with when it answered and what. */
function longPoll(base: string, id: string, waitS: number) {
  return fetchOrApp(base, `/v1/jobs/${id}?wait=${waitS}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }).then(async (res) => ({
    at: performance.now(),
    status: res.status,
    job: (await res.json()) as { status: string },
  }));
}

async function until(cond: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe(`long-poll GET /v1/jobs/{id}?wait= (${dbKind})`, () => {
  it('a waiter returns within 100 ms of the terminal callback', async () => {
    const notifier = relay.deps.database.notifier;
    const job = await track(relay.api);
    const waiting = longPoll('', job.id, 10);
    await until(() => waitingRequests(notifier) === 1);
    await new Promise((r) => setTimeout(r, 50));
    const calledBack = await complete('', job);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.job.status).toBe('succeeded');
    expect(answer.at - calledBack).toBeLessThan(100);
    expect(waitingRequests(notifier)).toBe(0);
  });

  it('answers at once for a terminal job, and after N s with the job as it is otherwise', async () => {
    const done = await track(relay.api);
    await complete('', done);
    let started = performance.now();
    expect((await longPoll('', done.id, 30)).job.status).toBe('succeeded');
    expect(performance.now() - started).toBeLessThan(500);

    const pending = await track(relay.api);
    started = performance.now();
    const answer = await longPoll('', pending.id, 1);
    expect(answer.job.status).toBe('submitted');
    expect(answer.at - started).toBeGreaterThanOrEqual(990);
    expect(answer.at - started).toBeLessThan(1500);

    expect((await relay.api('GET', `/v1/jobs/${pending.id}?wait=61`)).status).toBe(400);
    expect((await relay.api('GET', '/v1/jobs/job_missing?wait=5')).status).toBe(404);
  });

  it('500 simultaneous waiters cost little memory and are all released', async () => {
    const notifier = relay.deps.database.notifier;
    const jobs = [];
    for (let i = 0; i < 50; i++) jobs.push(await track(relay.api));
    gc();
    const before = process.memoryUsage();
    const waits = jobs.flatMap((job) => Array.from({ length: 10 }, () => longPoll('', job.id, 30)));
    await until(() => waitingRequests(notifier) === 500, 15_000);
    gc();
    const during = process.memoryUsage();
    const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
    const heapDelta = during.heapUsed - before.heapUsed;
    // RSS is not asserted: in a test process it moves with GC and, on PGlite, the database's own memory.
    const rss = dbKind === 'pglite' ? '' : `, rss +${mb(during.rss - before.rss)} MB`;
    console.log(`500 waiters (${dbKind}): heap +${mb(heapDelta)} MB (${Math.round(heapDelta / 500 / 102.4) / 10} KB each)${rss}`);
    expect(heapDelta).toBeLessThan(25 * 2 ** 20);

    const released = performance.now();
    await Promise.all(jobs.map((job) => complete('', job)));
    const answers = await Promise.all(waits);
    expect(answers.every((a) => a.status === 200 && a.job.status === 'succeeded')).toBe(true);
    expect(Math.max(...answers.map((a) => a.at)) - released).toBeLessThan(10_000);
    expect(waitingRequests(notifier)).toBe(0);
  });
});

describe.skipIf(dbKind === 'pglite')('long-poll across two relays over one Postgres', () => {
  it('a waiter on one relay returns within 100 ms of the terminal callback on the other', async () => {
    const scratch = await createScratchDatabase();
    const a = await startRealRelay(providers(), { databaseUrl: scratch.url });
    const b = await startRealRelay(providers(), { databaseUrl: scratch.url });
    try {
      const job = await track(a.api);
      const waiting = longPoll(b.url, job.id, 10);
      await until(() => waitingRequests(b.deps.database.notifier) === 1);
      await new Promise((r) => setTimeout(r, 50));
      const calledBack = await complete(a.url, job);
      const answer = await waiting;
      expect(answer.job.status).toBe('succeeded');
      expect(answer.at - calledBack).toBeLessThan(100);
    } finally {
      await a.close();
      await b.close();
      await scratch.drop();
    }
  });
});

describe(`long-poll and shutdown (${dbKind})`, () => {
  it('stopping the relay answers open long-polls at once with the current state', async () => {
    const real = await startRealRelay(providers());
    const api = (method: string, path: string, body?: unknown) => real.api(method, path, body);
    const job = await track(api);
    const waiting = longPoll(real.url, job.id, 60);
    await until(() => waitingRequests(real.deps.database.notifier) > 0);
    const stopping = performance.now();
    await real.close();
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.job.status).toBe('submitted');
    // Far sooner than the 60 s the client asked to wait.
    expect(answer.at - stopping).toBeLessThan(10_000);
  });
});
