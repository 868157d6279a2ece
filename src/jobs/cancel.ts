import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { type JobRow, jobs } from '../db/schema.js';
import { AppError } from '../errors.js';
import { isTerminal } from './states.js';
import { applyObservation } from './transition.js';

/**
 * Stops tracking a job: it becomes `canceled` through the one transition (event, fan-out, waiters
 * woken), and is neither submitted nor polled any more. The relay does not ask the provider to stop
 * a task it already has; later callbacks for it are stored and, being stale, change nothing.
 *
 * A queued job whose request may be on its way to the provider right now (an in-flight mark) is
 * refused with 409: canceling it could leave a paid task nobody tracks. Once the submission is
 * recorded, a moment later, the job can be canceled.
 */
export async function cancelJob(db: Db, jobId: string): Promise<JobRow> {
  return db.transaction(async (tx) => {
    // The lock orders this against the submit worker's in-flight mark, which also needs the row.
    const [job] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for('update');
    if (!job) throw new AppError('not_found', `job ${jobId} not found`);
    if (job.status === 'canceled') return job;
    if (isTerminal(job.status) && job.status !== 'expired') {
      throw new AppError('conflict', `job ${jobId} is already final (${job.status})`, { status: job.status });
    }
    if (job.submitInFlightSince) {
      throw new AppError('conflict', `job ${jobId} is being submitted to its provider right now; retry in a few seconds`, {
        status: job.status,
      });
    }
    const { job: after } = await applyObservation(tx, jobId, {
      status: 'canceled',
      error: { code: 'canceled', message: 'canceled through the API', source: 'relay' },
    });
    return after;
  });
}
