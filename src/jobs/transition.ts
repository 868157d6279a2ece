import { eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { jsonbSafe } from '../db/json.js';
import { type EventRow, type JobRow, jobEvents, jobs } from '../db/schema.js';
import { enqueueDeliveries } from '../fanout/outbox.js';
import { newId } from '../ids.js';
import { type Decision, decide, eventTypeFor, isTerminal, type Observation } from './states.js';
import { jobView } from './view.js';

export interface TransitionResult {
  decision: Decision;
  job: JobRow;
  /** The event appended, when the job moved. */
  event: EventRow | null;
}

export class JobNotFoundError extends Error {
  override name = 'JobNotFoundError';
}

/**
 * Applies one observation to one job inside the caller's transaction: the only place a job's
 * status changes. It locks the job row, asks `decide`, and on a move updates the job, appends the
 * `job.*` event with the next per-job sequence and its deliveries (the outbox). Duplicates and stale
 * observations change nothing.
 */
export interface ApplyOptions {
  /**
   * For providers whose videos need their key to download: the relay's own content URL, which
   * replaces the provider's URLs in the job's result.
   */
  contentUrl?: string | undefined;
}

export async function applyObservation(
  tx: Tx,
  jobId: string,
  obs: Observation,
  opts: ApplyOptions = {},
): Promise<TransitionResult> {
  const [current] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for('update');
  if (!current) throw new JobNotFoundError(`job ${jobId} not found`);

  const decision = decide(current, obs);
  const now = new Date();

  if (decision.kind === 'progress') {
    const [job] = await tx
      .update(jobs)
      .set({ progress: decision.progress, updatedAt: now })
      .where(eq(jobs.id, jobId))
      .returning();
    return { decision, job: job!, event: null };
  }
  if (decision.kind !== 'advance') return { decision, job: current, event: null };

  const to = obs.status;
  const terminal = isTerminal(to);
  const patch: Partial<typeof jobs.$inferInsert> = {
    status: to,
    updatedAt: now,
    eventSeq: sql`${jobs.eventSeq} + 1` as unknown as number,
  };
  if (to === 'succeeded') patch.progress = 100;
  else if (typeof obs.progress === 'number') patch.progress = Math.max(obs.progress, current.progress ?? 0);
  if (!current.submittedAt && to !== 'expired' && to !== 'canceled') patch.submittedAt = now;
  if (terminal) patch.completedAt = now;
  // Nothing more to ask the provider about a final job (an expired one is still polled, slowly, by the poll worker).
  if (terminal && to !== 'expired') {
    patch.dueAt = null;
    patch.leaseUntil = null;
  }
  if (to === 'succeeded') {
    patch.result = jsonbSafe({ video_urls: opts.contentUrl ? [opts.contentUrl] : (obs.videoUrls ?? []), raw: obs.raw ?? null });
    patch.error = null;
  }
  if (to === 'failed' || to === 'canceled' || to === 'expired') {
    patch.error = obs.error ? jsonbSafe(obs.error) : null;
  }

  const [job] = await tx.update(jobs).set(patch).where(eq(jobs.id, jobId)).returning();
  const [event] = await tx
    .insert(jobEvents)
    .values({
      eventId: newId('evt'),
      jobId,
      sequence: job!.eventSeq,
      type: eventTypeFor(to),
      data: jobView(job!),
    })
    .returning();
  await enqueueDeliveries(tx, job!, event!);
  return { decision, job: job!, event: event! };
}
