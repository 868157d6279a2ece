import { createHash } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type JobRow, jobs } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Providers } from '../providers/index.js';
import type { JobRequest } from './request.js';

export interface CreateJobContext {
  db: Db;
  providers: Providers;
  notifier: Notifier;
}

export interface Idempotency {
  key: string;
  /** Keys are scoped to whoever sent them (the API key's id). */
  owner: string;
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function requestHash(req: JobRequest): string {
  return createHash('sha256').update(stableStringify(req)).digest('hex');
}

async function findByIdempotency(db: Db, idem: Idempotency) {
  const [row] = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.idempotencyOwner, idem.owner), eq(jobs.idempotencyKey, idem.key)));
  return row;
}

function replay(existing: JobRow, hash: string): { job: JobRow; replayed: true } {
  if (existing.requestHash !== hash) {
    throw new AppError('conflict', 'this Idempotency-Key was used for a different request', { job_id: existing.id });
  }
  return { job: existing, replayed: true };
}

/**
 * Validates a job request against its provider's documented rules and queues it for the submit
 * worker. Nothing reaches the provider here. With an `Idempotency-Key`, a repeat of the same
 * request returns the first job instead of creating (and paying for) a second one.
 */
export async function createJob(
  ctx: CreateJobContext,
  req: JobRequest,
  idem: Idempotency | null,
): Promise<{ job: JobRow; replayed: boolean }> {
  const adapter = ctx.providers.get(req.provider);
  if (!adapter) {
    throw new AppError('invalid_request', `provider: "${req.provider}" is not configured`, [
      { field: 'provider', rule: 'provider.configured', message: `configured providers: ${[...ctx.providers.keys()].join(', ') || 'none'}` },
    ]);
  }
  const violations = adapter.validateRequest(req);
  if (violations.length) {
    throw new AppError('invalid_request', violations.map((v) => `${v.field}: ${v.message}`).join('; '), violations);
  }

  const hash = requestHash(req);
  if (idem) {
    const existing = await findByIdempotency(ctx.db, idem);
    if (existing) return replay(existing, hash);
  }
  const { provider, model, metadata, notify_url, ...input } = req;
  const [job] = await ctx.db
    .insert(jobs)
    .values({
      id: newId('job'),
      provider,
      model: model ?? null,
      status: 'queued',
      input: { model, ...input },
      metadata: metadata ?? {},
      notifyUrl: notify_url ?? null,
      idempotencyKey: idem?.key ?? null,
      idempotencyOwner: idem?.owner ?? null,
      requestHash: hash,
      dueAt: new Date(),
    })
    .onConflictDoNothing()
    .returning();
  if (!job) {
    // Another request with the same key won the race.
    const existing = idem ? await findByIdempotency(ctx.db, idem) : undefined;
    if (!existing) throw new Error('job insert conflicted but no job holds its idempotency key');
    return replay(existing, hash);
  }
  ctx.notifier.notify('relay_jobs');
  return { job, replayed: false };
}

/** The normalised request a queued job was created from. */
export function jobRequestOf(job: JobRow): JobRequest {
  return { ...(job.input as Omit<JobRequest, 'provider'>), provider: job.provider, ...(job.model ? { model: job.model } : {}) };
}
