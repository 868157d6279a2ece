import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { jobCallbackUrl } from '../callbacks/tokens.js';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type JobError, type JobRow, jobs } from '../db/schema.js';
import type { Logger } from '../ops/logger.js';
import type { Providers } from '../providers/index.js';
import { ProviderBudgets } from '../providers/budget.js';
import { MalformedPayloadError, ProviderCallError, type SubmitResult } from '../providers/types.js';
import { MAX_SUBMIT_ATTEMPTS, retryDelayMs } from './backoff.js';
import { relayContentUrl } from './content.js';
import { firstPollDelayMs } from './schedule.js';
import { jobRequestOf } from './create.js';
import { startLoop, type Loop } from './loop.js';
import { applyObservation } from './transition.js';
import { claimDueJobs, fromNow } from './claim.js';

export interface SubmitContext {
  db: Db;
  providers: Providers;
  notifier: Notifier;
  secret: string;
  publicBaseUrl: string;
  log: Logger;
}

export interface SubmitWorkerOptions {
  batchSize?: number;
  /** How long a claim holds a job; past it, another worker may take the job (and will not re-send it). */
  leaseMs?: number;
  idleMs?: number;
}

/**
 * Claims due queued jobs with `FOR UPDATE SKIP LOCKED`, so two replicas never take the same one.
 * Each claim bumps `attempts`, which doubles as the claim's fencing token (see `markInFlight`).
 */
export async function claimDueSubmissions(db: Db, providers: string[], limit: number, leaseMs: number): Promise<JobRow[]> {
  if (!providers.length) return [];
  const where = and(
    eq(jobs.status, 'queued'),
    // A replica that does not know a provider (a rolling deploy) leaves its jobs to one that does.
    inArray(jobs.provider, providers),
    isNull(jobs.providerTaskId),
  );
  return claimDueJobs(db, where, limit, leaseMs, 'attempts');
}

/**
 * Commits "a request is about to leave" just before it does. Only the holder of the newest claim
 * (same `attempts`) may do so; a worker whose lease ran out meanwhile finds nothing and sends nothing.
 */
async function markInFlight(db: Db, job: JobRow, leaseMs: number): Promise<boolean> {
  const rows = await db
    .update(jobs)
    .set({ submitInFlightSince: sql`now()`, leaseUntil: fromNow(leaseMs) })
    .where(
      and(
        eq(jobs.id, job.id),
        eq(jobs.attempts, job.attempts),
        eq(jobs.status, 'queued'),
        isNull(jobs.submitInFlightSince),
        isNull(jobs.providerTaskId),
      ),
    )
    .returning({ id: jobs.id });
  return rows.length === 1;
}

function relayError(code: string, message: string): JobError {
  return { code, message, source: 'relay' };
}

/** Marks a queued job failed through the one transition, releasing its claim. */
async function failSubmission(db: Db, jobId: string, error: JobError) {
  await db.transaction(async (tx) => {
    const [job] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for('update');
    if (job?.providerTaskId) {
      // A callback told us the task id meanwhile: the provider has the job, so it is tracked, not failed.
      await tx
        .update(jobs)
        .set({ dueAt: sql`now()`, leaseUntil: null, submitInFlightSince: null, lastError: error })
        .where(eq(jobs.id, jobId));
      await applyObservation(tx, jobId, { status: 'submitted' });
      return;
    }
    await tx
      .update(jobs)
      .set({ dueAt: null, leaseUntil: null, submitInFlightSince: null, lastError: error })
      .where(eq(jobs.id, jobId));
    await applyObservation(tx, jobId, { status: 'failed', error });
  });
}

/** Puts a job back in the queue after a failure that proves the request did not take effect. */
async function retryLater(db: Db, jobId: string, delayMs: number, error: JobError) {
  await db
    .update(jobs)
    .set({
      dueAt: fromNow(delayMs),
      leaseUntil: null,
      submitInFlightSince: null,
      lastError: error,
    })
    .where(eq(jobs.id, jobId));
}

/** Hands a claimed job back untouched (no attempt used), to be taken again in `delayMs`. */
async function deferSubmission(db: Db, jobId: string, delayMs: number) {
  await db
    .update(jobs)
    .set({
      dueAt: fromNow(delayMs),
      leaseUntil: null,
      attempts: sql`${jobs.attempts} - 1`,
    })
    .where(eq(jobs.id, jobId));
}

/**
 * The provider has the job: its answer must be recorded. A database hiccup here is retried for a
 * while, because giving up turns an accepted (and paid) job into `submission_unknown`.
 */
async function recordAcceptedPatiently(ctx: SubmitContext, job: JobRow, result: SubmitResult) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await recordAccepted(ctx, job, result);
    } catch (err) {
      if (attempt >= 6) throw err;
      ctx.log.warn({ err, jobId: job.id, taskId: result.taskId, attempt }, 'could not record an accepted submission yet; retrying');
      await new Promise((r) => setTimeout(r, retryDelayMs(attempt)));
    }
  }
}

async function recordAccepted(ctx: SubmitContext, job: JobRow, result: SubmitResult) {
  const adapter = ctx.providers.get(job.provider)!;
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(jobs)
      .set({
        providerTaskId: result.taskId,
        dueAt: fromNow(firstPollDelayMs(adapter.config.poll, adapter.config.callbacks)),
        leaseUntil: null,
        submitInFlightSince: null,
        lastError: null,
      })
      .where(eq(jobs.id, job.id));
    await applyObservation(tx, job.id, result.observation ?? { status: 'submitted' }, {
      contentUrl: relayContentUrl(adapter, ctx.publicBaseUrl, job.id),
    });
  });
  ctx.notifier.notify('relay_polls');
}

/**
 * Sends one claimed job to its provider and records what happened (SPEC "Money safety"): accepted →
 * `submitted`; 429 / 5xx / refused → queued again with backoff (the provider's `Retry-After` first);
 * any other answer → `failed` with the provider's code and message; no answer after sending →
 * `failed` with `submission_unknown`, never re-sent.
 */
export async function submitClaimed(
  ctx: SubmitContext,
  job: JobRow,
  budgets: ProviderBudgets,
  leaseMs: number,
): Promise<void> {
  const adapter = ctx.providers.get(job.provider);
  if (!adapter) return failSubmission(ctx.db, job.id, relayError('provider_not_configured', `provider "${job.provider}" is no longer configured`));
  if (job.submitInFlightSince) {
    return failSubmission(
      ctx.db,
      job.id,
      relayError(
        'submission_unknown',
        `an earlier submission attempt (started ${job.submitInFlightSince.toISOString()}) ended without a recorded answer; ` +
          'it may have reached the provider, so it is not sent again',
      ),
    );
  }

  // Never wait on the budget while holding the claim: a paused or busy provider must not hold up the others.
  const grant = await budgets.take(job.provider, 'submit', adapter.config.rate_limit.submit_per_min, 1);
  if (!grant.granted) return deferSubmission(ctx.db, job.id, grant.waitMs);

  if (!(await markInFlight(ctx.db, job, leaseMs))) return;

  const callbackUrl = adapter.config.callbacks ? jobCallbackUrl(ctx.publicBaseUrl, ctx.secret, job.provider, job.id) : null;
  let result: SubmitResult;
  try {
    result = await adapter.submit(jobRequestOf(job), callbackUrl);
  } catch (err) {
    if (err instanceof ProviderCallError) {
      const f = err.failure;
      const error: JobError = { code: f.code, message: f.message, source: 'provider' };
      if (f.ambiguous) {
        return failSubmission(
          ctx.db,
          job.id,
          relayError('submission_unknown', `${f.message}; the request may have reached the provider, so it is not sent again`),
        );
      }
      if (f.status === 429) await budgets.pause(job.provider, 'submit', new Date(Date.now() + retryDelayMs(job.attempts, f.retryAfterMs)));
      if (f.retryable && job.attempts < MAX_SUBMIT_ATTEMPTS) {
        const delay = retryDelayMs(job.attempts, f.retryAfterMs);
        ctx.log.info({ jobId: job.id, provider: job.provider, code: f.code, attempt: job.attempts, delay_ms: delay }, 'submission will be retried');
        return retryLater(ctx.db, job.id, delay, error);
      }
      return failSubmission(ctx.db, job.id, error);
    }
    // A 2xx we could not read, or a bug: the provider may have the job, so it is not sent again.
    const message = err instanceof MalformedPayloadError ? `the provider's answer could not be read: ${err.message}` : String(err);
    ctx.log.error({ err, jobId: job.id }, 'submission outcome unknown');
    return failSubmission(ctx.db, job.id, relayError('submission_unknown', message));
  }
  await recordAcceptedPatiently(ctx, job, result);
  ctx.log.info({ jobId: job.id, provider: job.provider, taskId: result.taskId }, 'submitted');
}

/** The background loop that moves `queued` jobs to the provider. */
export function startSubmitWorker(ctx: SubmitContext, opts: SubmitWorkerOptions = {}): Loop & { runOnce(): Promise<number> } {
  const batchSize = opts.batchSize ?? 10;
  const budgets = new ProviderBudgets(ctx.db);
  const runOnce = async () => {
    const timeoutMs = Math.max(...[...ctx.providers.values()].map((a) => a.config.timeout_s * 1000), 30_000);
    const leaseMs = opts.leaseMs ?? timeoutMs + 60_000;
    const claimed = await claimDueSubmissions(ctx.db, [...ctx.providers.keys()], batchSize, leaseMs);
    await Promise.all(
      claimed.map((job) =>
        submitClaimed(ctx, job, budgets, leaseMs).catch((err) => {
          // Recording failed (database down): the lease will expire and the in-flight mark turns
          // the job into submission_unknown rather than a second send.
          ctx.log.error({ err, jobId: job.id }, 'could not record a submission');
        }),
      ),
    );
    return claimed.length;
  };
  const loop = startLoop({
    name: 'submit',
    runOnce,
    notifier: ctx.notifier,
    channel: 'relay_jobs',
    idleMs: opts.idleMs ?? 1000,
    log: ctx.log,
  });
  return { ...loop, runOnce };
}
