import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type JobRow, jobs } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Providers } from '../providers/index.js';
import { firstPollDelayMs } from './schedule.js';
import { applyObservation } from './transition.js';

export interface TrackJobInput {
  provider: string;
  provider_task_id: string;
  model?: string | undefined;
  metadata?: Record<string, string> | undefined;
  notify_url?: string | undefined;
}

function isUniqueViolation(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if ((e as { code?: unknown }).code === '23505') return true;
  }
  return false;
}

async function findByTask(db: Db, provider: string, taskId: string) {
  const [row] = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.provider, provider), eq(jobs.providerTaskId, taskId)));
  return row;
}

function alreadyTracked(id: string) {
  return new AppError('conflict', `this provider task is already tracked as job ${id}`, { job_id: id });
}

/**
 * Starts tracking a task that was submitted to a provider elsewhere: the job begins at `submitted`,
 * through the same transition (and so the same `job.submitted` event) as a job the relay submitted.
 */
export async function trackJob(ctx: { db: Db; providers: Providers; notifier: Notifier }, input: TrackJobInput): Promise<JobRow> {
  const adapter = ctx.providers.get(input.provider);
  if (!adapter) {
    throw new AppError('invalid_request', `provider: "${input.provider}" is not configured`, {
      field: 'provider',
      configured: [...ctx.providers.keys()],
    });
  }
  const existing = await findByTask(ctx.db, input.provider, input.provider_task_id);
  if (existing) throw alreadyTracked(existing.id);
  try {
    const job = await ctx.db.transaction(async (tx) => {
      const id = newId('job');
      await tx.insert(jobs).values({
        id,
        provider: input.provider,
        model: input.model ?? null,
        providerTaskId: input.provider_task_id,
        status: 'queued',
        metadata: input.metadata ?? {},
        notifyUrl: input.notify_url ?? null,
        dueAt: new Date(Date.now() + firstPollDelayMs(adapter.config.poll, adapter.config.callbacks)),
      });
      return (await applyObservation(tx, id, { status: 'submitted' })).job;
    });
    ctx.notifier.notify('relay_polls');
    return job;
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const raced = await findByTask(ctx.db, input.provider, input.provider_task_id);
    throw raced ? alreadyTracked(raced.id) : err;
  }
}
