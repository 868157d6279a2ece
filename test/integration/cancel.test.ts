import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCallbackToken } from '../../src/callbacks/tokens.js';
import { jobs } from '../../src/db/schema.js';
import { claimDueSubmissions } from '../../src/jobs/submit-worker.js';
import { dbKind } from '../helpers/db.js';
import { aivideoapiDocs } from '../helpers/fake-aivideoapi.js';
import { SECRET, startTestRelay, type TestRelay } from '../helpers/relay.js';

let relay: TestRelay;
let taskSeq = 0;

beforeAll(async () => {
  relay = await startTestRelay({ veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k', verify_by_fetch: false } });
});
afterAll(() => relay?.close());

type Job = { id: string; status: string; provider_task_id: string | null; error: { code: string; source: string } | null };

async function track(): Promise<Job> {
  const res = await relay.api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: `cancel-${++taskSeq}` });
  expect(res.status).toBe(201);
  return (await res.json()) as Job;
}

async function queue(): Promise<Job> {
  const res = await relay.api('POST', '/v1/jobs', { provider: 'veo', prompt: 'A lighthouse in a storm' });
  expect(res.status).toBe(202);
  return (await res.json()) as Job;
}

function callback(job: Job, doc: unknown) {
  return relay.app.request(`/callbacks/veo/${job.id}/${jobCallbackToken(SECRET, 'veo', job.id)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(doc),
  });
}

const cancel = (id: string) => relay.api('POST', `/v1/jobs/${id}/cancel`);

describe(`POST /v1/jobs/{id}/cancel (${dbKind})`, () => {
  it('a job at the provider becomes canceled with one event, and a later callback changes nothing', async () => {
    const job = await track();
    const res = await cancel(job.id);
    expect(res.status).toBe(200);
    const canceled = (await res.json()) as Job;
    expect(canceled).toMatchObject({ status: 'canceled', error: { code: 'canceled', source: 'relay' } });

    const late = await callback(job, aivideoapiDocs.completed(job.provider_task_id!));
    expect(late.status).toBe(200);
    const after = (await (await relay.api('GET', `/v1/jobs/${job.id}`)).json()) as Job;
    expect(after.status).toBe('canceled');
    const events = (await (await relay.api('GET', `/v1/jobs/${job.id}/events`)).json()) as { data: { type: string }[] };
    expect(events.data.map((e) => e.type)).toEqual(['job.submitted', 'job.canceled']);
    const [row] = await relay.deps.db.select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.dueAt).toBeNull();
  });

  it('canceling twice returns the canceled job unchanged', async () => {
    const job = await track();
    const first = (await (await cancel(job.id)).json()) as Job & { updated_at: string };
    const again = await cancel(job.id);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(first);
  });

  it('a job that already finished is a 409, an unknown one a 404', async () => {
    const job = await track();
    expect((await callback(job, aivideoapiDocs.completed(job.provider_task_id!))).status).toBe(200);
    const res = await cancel(job.id);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('conflict');
    expect((await cancel('job_nope')).status).toBe(404);
  });

  it('a queued job is never sent once canceled', async () => {
    const job = await queue();
    expect((await cancel(job.id)).status).toBe(200);
    await relay.deps.db.update(jobs).set({ dueAt: sql`now()` }).where(eq(jobs.id, job.id));
    const claimed = await claimDueSubmissions(relay.deps.db, ['veo'], 100, 60_000);
    expect(claimed.map((j) => j.id)).not.toContain(job.id);
  });

  it('a queued job whose submission may be on its way to the provider is a 409, so no paid task goes untracked', async () => {
    const job = await queue();
    await relay.deps.db.update(jobs).set({ submitInFlightSince: sql`now()` }).where(eq(jobs.id, job.id));
    const res = await cancel(job.id);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/being submitted/);
    const [row] = await relay.deps.db.select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.status).toBe('queued');
  });

  it('a long-poll waiting on the job answers with the canceled job', async () => {
    const job = await track();
    const waiting = relay.api('GET', `/v1/jobs/${job.id}?wait=20`);
    await new Promise((r) => setTimeout(r, 100));
    expect((await cancel(job.id)).status).toBe(200);
    const res = await waiting;
    expect(((await res.json()) as Job).status).toBe('canceled');
  });
});
