import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveries, jobEvents, jobs } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { applyObservation, applyObservations, JobNotFoundError } from '../../src/jobs/transition.js';
import { createTestDatabase, dbKind, type TestDatabase } from '../helpers/db.js';

describe(`applyObservations: many observations, one write per table (${dbKind})`, () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.cleanup());

  async function newJob(status: 'submitted' | 'processing' = 'submitted') {
    const id = newId('job');
    await t.database.db.insert(jobs).values({ id, provider: 'p', providerTaskId: id, status, dueAt: new Date() });
    return id;
  }

  it('several observations of one job apply in order, each with its event and sequence', async () => {
    const id = await newJob();
    const results = await t.database.db.transaction((tx) =>
      applyObservations(tx, [
        { jobId: id, obs: { status: 'processing', progress: 10 } },
        { jobId: id, obs: { status: 'processing', progress: 40 } },
        { jobId: id, obs: { status: 'processing', progress: 20 } },
        { jobId: id, obs: { status: 'succeeded', videoUrls: ['https://cdn.example/v.mp4'] } },
        { jobId: id, obs: { status: 'failed' } },
      ]),
    );
    expect(results.map((r) => r.decision.kind)).toEqual(['advance', 'progress', 'duplicate', 'advance', 'stale']);
    const [job] = await t.database.db.select().from(jobs).where(eq(jobs.id, id));
    expect(job).toMatchObject({ status: 'succeeded', progress: 100, eventSeq: 2, dueAt: null, leaseUntil: null });
    expect(job!.result).toEqual({ video_urls: ['https://cdn.example/v.mp4'], raw: null });
    const events = await t.database.db.select().from(jobEvents).where(eq(jobEvents.jobId, id)).orderBy(asc(jobEvents.sequence));
    expect(events.map((e) => [e.sequence, e.type, (e.data as any).status])).toEqual([
      [1, 'job.processing', 'processing'],
      [2, 'job.succeeded', 'succeeded'],
    ]);
    expect(results[3]!.event!.id).toBe(events[1]!.id);
  });

  it('a batch over many jobs gives the same rows as applying one at a time', async () => {
    const batch = await Promise.all(Array.from({ length: 20 }, () => newJob()));
    const single = await Promise.all(Array.from({ length: 20 }, () => newJob()));
    const obs = (i: number) =>
      i % 3 === 0
        ? ({ status: 'failed', error: { code: 'bad', message: `no ${i}`, source: 'provider' } } as const)
        : ({ status: 'processing', progress: i } as const);
    await t.database.db.transaction((tx) => applyObservations(tx, batch.map((jobId, i) => ({ jobId, obs: obs(i) }))));
    for (const [i, jobId] of single.entries()) await t.database.db.transaction((tx) => applyObservation(tx, jobId, obs(i)));
    const view = async (id: string) => {
      const [j] = await t.database.db.select().from(jobs).where(eq(jobs.id, id));
      return { status: j!.status, progress: j!.progress, error: j!.error, eventSeq: j!.eventSeq, due: j!.dueAt === null, done: j!.completedAt !== null };
    };
    for (let i = 0; i < 20; i++) expect(await view(batch[i]!)).toEqual(await view(single[i]!));
  });

  it('an unknown job fails the whole batch, which writes nothing', async () => {
    const id = await newJob();
    await expect(
      t.database.db.transaction((tx) =>
        applyObservations(tx, [
          { jobId: id, obs: { status: 'processing' } },
          { jobId: 'job_missing', obs: { status: 'processing' } },
        ]),
      ),
    ).rejects.toBeInstanceOf(JobNotFoundError);
    const [job] = await t.database.db.select().from(jobs).where(eq(jobs.id, id));
    expect(job!.status).toBe('submitted');
    const [{ n }] = (await t.database.db.select({ n: sql<number>`count(*)::int` }).from(deliveries)) as [{ n: number }];
    expect(n).toBe(0);
  });
});
