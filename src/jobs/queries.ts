import { and, asc, eq, gt } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { callbackReceipts, type EventRow, jobEvents, jobs, type ReceiptRow } from '../db/schema.js';
import { type Page, toPage } from '../db/rows.js';
import { AppError } from '../errors.js';

export async function getJob(db: Db, id: string) {
  const [job] = await db.select().from(jobs).where(eq(jobs.id, id));
  if (!job) throw new AppError('not_found', `job ${id} not found`);
  return job;
}

export async function listJobEvents(db: Db, jobId: string, limit: number, after = 0): Promise<Page<EventRow, number>> {
  await getJob(db, jobId);
  const rows = await db
    .select()
    .from(jobEvents)
    .where(and(eq(jobEvents.jobId, jobId), gt(jobEvents.sequence, after)))
    .orderBy(asc(jobEvents.sequence))
    .limit(limit + 1);
  return toPage(rows, limit, (r) => r.sequence);
}

export async function listJobReceipts(db: Db, jobId: string, limit: number, after = 0): Promise<Page<ReceiptRow, number>> {
  await getJob(db, jobId);
  const rows = await db
    .select()
    .from(callbackReceipts)
    .where(and(eq(callbackReceipts.jobId, jobId), gt(callbackReceipts.id, after)))
    .orderBy(asc(callbackReceipts.id))
    .limit(limit + 1);
  return toPage(rows, limit, (r) => r.id);
}
