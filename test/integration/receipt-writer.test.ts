import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceiptInput, ReceiptWriter } from '../../src/callbacks/store.js';
import { jobReader, type VersionedJob } from '../../src/callbacks/job-loader.js';
import { callbackReceipts, jobEvents, type JobRow, jobs } from '../../src/db/schema.js';
import { readFeed } from '../../src/events/feed.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { newId } from '../../src/ids.js';
import { createTestDatabase, dbKind, type TestDatabase } from '../helpers/db.js';

// Unversioned inputs take the locking transaction; versioned ones (as the job loader reads them) the
// one-statement write, falling back to the transaction for jobs that changed since they were read.
describe.each([
  { path: 'locking transaction', versioned: false },
  { path: 'one statement', versioned: true },
])(`ReceiptWriter: callbacks share writes under load, $path (${dbKind})`, ({ versioned }) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.cleanup());

  async function newJob(status: JobRow['status'] = 'processing'): Promise<VersionedJob> {
    const [job] = await t.database.db
      .insert(jobs)
      .values({ id: newId('job'), provider: 'p', providerTaskId: newId('task'), status })
      .returning();
    if (!versioned) return job!;
    const [read] = await jobReader(t.database.db)([job!.id]);
    expect(read!.version).toMatch(/^\d+$/);
    return read!;
  }

  const input = (job: VersionedJob, over: Partial<ReceiptInput> = {}): ReceiptInput => ({
    provider: 'p',
    route: 'job',
    headers: {},
    raw: Buffer.from('{"status":"completed"}'),
    sourceAddress: '127.0.0.1',
    job,
    observation: { status: 'succeeded', videoUrls: ['https://cdn.example/v.mp4'] },
    deliveryId: null,
    contentUrl: undefined,
    learnedTaskId: null,
    taskId: job.providerTaskId!,
    ...over,
  });

  it('many concurrent callbacks are all stored and applied, each answered with its own outcome', async () => {
    const batch = await Promise.all(Array.from({ length: 60 }, () => newJob()));
    const writer = new ReceiptWriter(t.database.db, 25);
    const outcomes = await Promise.all(batch.map((job) => writer.store(input(job))));
    expect(outcomes.map((o) => o.jobId)).toEqual(batch.map((j) => j.id));
    expect(new Set(outcomes.map((o) => `${o.verdict}/${o.status}`))).toEqual(new Set(['applied/succeeded']));
    for (const job of batch) {
      const receipts = await t.database.db.select().from(callbackReceipts).where(eq(callbackReceipts.jobId, job.id));
      expect(receipts.map((r) => r.verdict)).toEqual(['applied']);
    }
  });

  it('a provider delivery id repeated at once is applied once and stored as duplicate otherwise', async () => {
    const job = await newJob();
    const writer = new ReceiptWriter(t.database.db);
    const [a, b, c] = await Promise.all([
      writer.store(input(job, { deliveryId: 'wh_1' })),
      writer.store(input(job, { deliveryId: 'wh_1' })),
      writer.store(input(job, { deliveryId: 'wh_1' })),
    ]);
    // Which one wins depends on which write commits first (two may be in flight); one does.
    expect([a!.verdict, b!.verdict, c!.verdict].sort()).toEqual(['applied', 'duplicate', 'duplicate']);
  });

  it('a callback about another task than the job tracks, once locked, is stored as malformed and changes nothing', async () => {
    const job = await newJob();
    const writer = new ReceiptWriter(t.database.db);
    const outcome = await writer.store(input(job, { taskId: 'task_someone_else' }));
    expect(outcome).toMatchObject({ verdict: 'malformed', status: 'processing' });
    expect(outcome.reason).toMatch(/task_someone_else/);
    const [row] = await t.database.db.select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.status).toBe('processing');
  });

  it('a NUL character anywhere in what is stored does not fail the write', async () => {
    const job = await newJob();
    const writer = new ReceiptWriter(t.database.db);
    const outcome = await writer.store(
      input(job, {
        reason: 'bad\u0000reason',
        headers: { 'x-odd': 'a\u0000b' },
        observation: { status: 'failed', error: { code: 'x\u0000', message: 'm\u0000', source: 'provider' }, raw: { k: '\u0000' } },
      }),
    );
    expect(outcome).toMatchObject({ verdict: 'applied', status: 'failed' });
    const [row] = await t.database.db.select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.error).toEqual({ code: 'x', message: 'm', source: 'provider' });
  });

  it('one callback that cannot be stored fails alone; the others of its batch are stored', async () => {
    const good = await Promise.all(Array.from({ length: 5 }, () => newJob()));
    const gone = await newJob();
    await t.database.db.delete(jobs).where(eq(jobs.id, gone.id));
    const writer = new ReceiptWriter(t.database.db);
    const results = await Promise.allSettled([...good.slice(0, 2), gone, ...good.slice(2)].map((job) => writer.store(input(job))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    for (const job of good) {
      const [row] = await t.database.db.select().from(jobs).where(eq(jobs.id, job.id));
      expect(row!.status).toBe('succeeded');
    }
  });

  it('a job changed after it was read is still ruled on as it is now: applied once, with the next sequence', async () => {
    const job = await newJob('submitted');
    // Meanwhile (say, a poll) the job moves on; the callback's copy of it is now out of date.
    await t.database.db.transaction((tx) => applyObservation(tx, job.id, { status: 'processing', progress: 40 }));
    const writer = new ReceiptWriter(t.database.db);
    const [a, b] = await Promise.all([writer.store(input(job)), writer.store(input(job))]);
    expect([a!.verdict, b!.verdict].sort()).toEqual(['applied', 'duplicate']);
    const events = await t.database.db.select().from(jobEvents).where(eq(jobEvents.jobId, job.id)).orderBy(jobEvents.sequence);
    expect(events.map((e) => `${e.sequence}:${e.type}`)).toEqual(['1:job.processing', '2:job.succeeded']);
    const receipts = await t.database.db.select().from(callbackReceipts).where(eq(callbackReceipts.jobId, job.id));
    expect(receipts.map((r) => r.verdict).sort()).toEqual(['applied', 'duplicate']);
  });

  it('events get their place in the feed in the order they happened, every one once', async () => {
    const batch = await Promise.all(Array.from({ length: 30 }, () => newJob('submitted')));
    const { events: before } = await readFeed(t.database.db, 0, 1_000_000);
    const after = before.at(-1)?.commitSeq ?? 0;
    // One write at a time, so a job's two callbacks land in order, in one batch or two in a row
    // (with writes side by side a later batch may commit first, and then `processing` is stale).
    const writer = new ReceiptWriter(t.database.db, 10, 1);
    // Two callbacks per job in one go: processing, then succeeded.
    await Promise.all(
      batch.flatMap((job) => [
        writer.store(input(job, { observation: { status: 'processing', progress: 10 } })),
        writer.store(input(job)),
      ]),
    );
    const { events } = await readFeed(t.database.db, after, 1000);
    expect(events).toHaveLength(60);
    for (const job of batch) {
      const mine = events.filter((e) => e.jobId === job.id);
      expect(mine.map((e) => e.type)).toEqual(['job.processing', 'job.succeeded']);
      expect(mine[0]!.commitSeq).toBeLessThan(mine[1]!.commitSeq);
    }
    expect(new Set(events.map((e) => e.commitSeq)).size).toBe(60);
  });

  it('reads the jobs of callbacks handed over unread, in the batch; one refused by its check fails alone', async () => {
    const jobs3 = await Promise.all([newJob(), newJob(), newJob()]);
    const writer = new ReceiptWriter(t.database.db);
    const seen: (string | undefined)[] = [];
    const unread = (id: string) => ({
      jobId: id,
      complete: (read: VersionedJob | undefined) => {
        seen.push(read?.version);
        if (!read) throw new Error(`job ${id} not found`);
        return input(read);
      },
    });
    const results = await Promise.allSettled([
      writer.store(unread(jobs3[0]!.id)),
      writer.store(unread('job_missing')),
      writer.store(input(jobs3[1]!)),
      writer.store(unread(jobs3[2]!.id)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toMatch(/job_missing not found/);
    // The jobs came with their row versions, so they could take the one-statement write.
    expect(seen.filter((v) => v !== undefined).every((v) => /^\d+$/.test(v!))).toBe(true);
    for (const job of jobs3) {
      const [row] = await t.database.db.select().from(jobs).where(eq(jobs.id, job.id));
      expect(row!.status).toBe('succeeded');
    }
  });

  // PostgreSQL only: the lock is held from a second connection, which PGlite does not have.
  it.skipIf(dbKind === 'pglite')('a callback waiting behind a stalled write gets a write of its own once it has waited', async () => {
    const [stalled, other] = [await newJob(), await newJob()];
    const writer = new ReceiptWriter(t.database.db, 200, 2, 16, 50);
    const holder = postgres(t.url!, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const locked = new Promise<void>((ready) => {
      void holder.begin(async (tx) => {
        await tx`select id from jobs where id = ${stalled.id} for update`;
        ready();
        await released;
      });
    });
    try {
      await locked;
      const first = writer.store(input(stalled));
      await new Promise((r) => setTimeout(r, 100)); // its write is now waiting for the lock
      const second = await Promise.race([writer.store(input(other)), new Promise((r) => setTimeout(() => r('still waiting'), 2000))]);
      expect(second).toMatchObject({ jobId: other.id, verdict: 'applied' });
      release();
      expect(await first).toMatchObject({ jobId: stalled.id, verdict: 'applied' });
    } finally {
      release();
      await holder.end();
    }
  });
});
