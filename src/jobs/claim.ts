import { and, asc, inArray, isNull, lte, or, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { type JobRow, jobs } from '../db/schema.js';

/** `now() + ms` as SQL, for due times and leases set by the database's clock (shared by replicas). */
export function fromNow(ms: number): SQL {
  return sql`now() + ${`${Math.round(ms)} milliseconds`}::interval`;
}

/**
 * Claims up to `limit` due jobs matching `where` for one worker: the due, unleased rows are locked
 * with `FOR UPDATE SKIP LOCKED` (so two replicas never take the same one), then leased for `leaseMs`
 * with `counter` incremented. Select-then-update in one transaction, not `UPDATE … WHERE id IN
 * (SELECT … SKIP LOCKED)`, which Postgres may evaluate more than once. Returns the rows as leased.
 */
export async function claimDueJobs(
  db: Db,
  where: SQL | undefined,
  limit: number,
  leaseMs: number,
  counter: 'attempts' | 'polls',
): Promise<JobRow[]> {
  if (limit <= 0) return [];
  return db.transaction(async (tx) => {
    const due = await tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(and(where, lte(jobs.dueAt, sql`now()`), or(isNull(jobs.leaseUntil), lte(jobs.leaseUntil, sql`now()`))))
      .orderBy(asc(jobs.dueAt))
      .limit(limit)
      .for('update', { skipLocked: true });
    if (!due.length) return [];
    return tx
      .update(jobs)
      .set({ leaseUntil: fromNow(leaseMs), [counter]: sql`${jobs[counter]} + 1` })
      .where(
        inArray(
          jobs.id,
          due.map((j) => j.id),
        ),
      )
      .returning();
  });
}
