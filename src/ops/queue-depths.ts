import { and, count, eq, inArray, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { jobs } from '../db/schema.js';
import type { DepthQuery } from './metrics.js';

/**
 * Queue depths read on each scrape. Each is one `count(*)` whose conditions imply a partial index's
 * predicate (`jobs_submit_due_idx`, `jobs_poll_due_idx`), so it reads that index, not the table.
 */
async function queuedJobs(db: Db): Promise<number> {
  // Every queued job has a due time (set at creation, moved on retries), so this is all of them.
  const [row] = await db
    .select({ n: count() })
    .from(jobs)
    .where(and(eq(jobs.status, 'queued'), isNotNull(jobs.dueAt)));
  return row?.n ?? 0;
}

/** Jobs whose poll is due and that no worker holds: the poll backlog. */
async function duePolls(db: Db): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(jobs)
    .where(
      and(
        inArray(jobs.status, ['submitted', 'processing', 'expired']),
        isNotNull(jobs.dueAt),
        lte(jobs.dueAt, sql`now()`),
        isNotNull(jobs.providerTaskId),
        or(isNull(jobs.leaseUntil), lte(jobs.leaseUntil, sql`now()`)),
      ),
    );
  return row?.n ?? 0;
}

/** The `queue` label of `relay_queue_depth` → its query. */
export const jobQueueDepths: Record<string, DepthQuery> = {
  queued_jobs: queuedJobs,
  due_polls: duePolls,
};
