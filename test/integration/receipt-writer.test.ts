import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceiptInput, ReceiptWriter } from '../../src/callbacks/store.js';
import { callbackReceipts, type JobRow, jobs } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { createTestDatabase, dbKind, type TestDatabase } from '../helpers/db.js';

describe(`ReceiptWriter: callbacks share transactions under load (${dbKind})`, () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t?.cleanup());

  async function newJob(): Promise<JobRow> {
    const [job] = await t.database.db
      .insert(jobs)
      .values({ id: newId('job'), provider: 'p', providerTaskId: newId('task'), status: 'processing' })
      .returning();
    return job!;
  }

  const input = (job: JobRow, over: Partial<ReceiptInput> = {}): ReceiptInput => ({
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
});
