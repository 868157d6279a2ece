import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { callbackReceipts, type JobRow, jobs, type ReceiptVerdict } from '../db/schema.js';
import { AppError } from '../errors.js';
import { isTerminal, type Observation } from '../jobs/states.js';
import { applyObservation } from '../jobs/transition.js';
import type { Logger } from '../ops/logger.js';
import type { Providers } from '../providers/index.js';
import { MalformedPayloadError, ProviderCallError, type ProviderAdapter } from '../providers/types.js';
import { isJsonContentType, MAX_CALLBACK_BYTES, parseJsonObject, readBodyLimited } from './body.js';
import type { RejectedVerdict, RejectionRecorder } from './rejections.js';
import { jobCallbackToken, providerCallbackToken, secretsEqual } from './tokens.js';

export interface CallbackContext {
  db: Db;
  providers: Providers;
  secret: string;
  rejections: RejectionRecorder;
  log: Logger;
}

export interface IncomingCallback {
  provider: string;
  /** Set on the per-job route, from the URL. */
  jobId: string | null;
  token: string;
  request: Request;
  sourceAddress: string | null;
}

export interface CallbackOutcome {
  verdict: ReceiptVerdict;
  jobId: string;
  status: JobRow['status'];
}

const HEADER_VALUE_MAX = 512;

function selectHeaders(req: Request, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = req.headers.get(name);
    if (v !== null) out[name] = v.slice(0, HEADER_VALUE_MAX);
  }
  return out;
}

/** A rejection both answered (by the thrown AppError) and recorded. */
class Rejected extends Error {
  constructor(
    readonly verdict: RejectedVerdict,
    readonly appError: AppError,
  ) {
    super(appError.message);
  }
}

function reject(verdict: RejectedVerdict, code: 'invalid_request' | 'unauthorized' | 'not_found', message: string): never {
  throw new Rejected(verdict, new AppError(code, message));
}

/**
 * A provider's callback, from raw bytes to applied state (SPEC "Inbound callbacks"): content type,
 * size limit, token, JSON, the job, confirmation by fetch for unsigned providers, then one transaction
 * that stores the receipt and applies the observation. Resolves only after that commit; every failure
 * to store surfaces as 503 so the provider retries.
 */
export async function receiveCallback(ctx: CallbackContext, cb: IncomingCallback): Promise<CallbackOutcome> {
  const adapter = ctx.providers.get(cb.provider);
  if (!adapter || !adapter.config.callbacks) throw new AppError('not_found', `no callback route for provider "${cb.provider}"`);
  const headers = selectHeaders(cb.request, adapter.callbackHeaders);
  const route = cb.jobId ? 'job' : 'provider';
  let raw: Uint8Array = new Uint8Array(0);

  try {
    if (!isJsonContentType(cb.request.headers.get('content-type') ?? undefined)) {
      throw new AppError('unsupported_media_type', 'callbacks must be application/json');
    }
    raw = await readBodyLimited(cb.request, MAX_CALLBACK_BYTES);

    const expected = cb.jobId
      ? jobCallbackToken(ctx.secret, cb.provider, cb.jobId)
      : providerCallbackToken(ctx.secret, cb.provider);
    if (!secretsEqual(cb.token, expected)) reject('unauthorized', 'unauthorized', 'invalid callback token');

    let parsed;
    try {
      parsed = adapter.parseCallback({ headers, raw, body: parseJsonObject(raw) });
    } catch (err) {
      if (err instanceof MalformedPayloadError || err instanceof AppError) reject('malformed', 'invalid_request', err.message);
      throw err;
    }

    const job = await findJob(ctx.db, cb, parsed.taskId);
    if (!job) reject('unknown_job', 'not_found', cb.jobId ? `job ${cb.jobId} not found` : `no tracked job for task ${parsed.taskId}`);
    if (parsed.taskId && job.providerTaskId && parsed.taskId !== job.providerTaskId) {
      reject('malformed', 'invalid_request', `callback is about task ${parsed.taskId}, but this job tracks ${job.providerTaskId}`);
    }

    const { observation, verdictOverride, reason } = await confirm(adapter, job, parsed.observation, ctx.log);
    return await store(ctx.db, { cb, route, headers, raw, job, observation, verdictOverride, reason });
  } catch (err) {
    if (err instanceof Rejected) {
      await ctx.rejections.record({
        provider: cb.provider,
        route,
        verdict: err.verdict,
        reason: err.message,
        claimedJobId: cb.jobId,
        headers,
        raw,
        sourceAddress: cb.sourceAddress,
      });
      throw err.appError;
    }
    if (err instanceof AppError) throw err;
    ctx.log.error({ err, provider: cb.provider }, 'callback could not be stored');
    throw new AppError('unavailable', 'the callback could not be stored; retry later');
  }
}

async function findJob(db: Db, cb: IncomingCallback, taskId: string | null): Promise<JobRow | undefined> {
  if (cb.jobId) {
    const [job] = await db
      .select()
      .from(jobs)
      .where(and(eq(jobs.id, cb.jobId), eq(jobs.provider, cb.provider)));
    return job;
  }
  if (!taskId) reject('malformed', 'invalid_request', 'callback names no task id');
  const [job] = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.provider, cb.provider), eq(jobs.providerTaskId, taskId)));
  return job;
}

interface Confirmed {
  observation: Observation | null;
  verdictOverride?: ReceiptVerdict;
  reason?: string;
}

/**
 * For providers whose callbacks are unsigned, a terminal claim is only believed once the provider's
 * own status endpoint says the same; the endpoint's answer is what gets applied. If the endpoint
 * cannot be reached the callback is refused with 503 (after being stored) so the provider retries.
 */
async function confirm(adapter: ProviderAdapter, job: JobRow, claimed: Observation | null, log: Logger): Promise<Confirmed> {
  if (!claimed) return { observation: null, verdictOverride: 'ignored', reason: 'status the relay does not act on' };
  if (adapter.signedCallbacks || !adapter.config.verify_by_fetch || !isTerminal(claimed.status)) {
    return { observation: claimed };
  }
  let fetched: Observation | null;
  try {
    fetched = await adapter.fetchStatus(job.providerTaskId!);
  } catch (err) {
    const failure = err instanceof ProviderCallError ? err.failure : undefined;
    log.warn({ err, jobId: job.id }, 'could not confirm a callback with the provider');
    return {
      observation: null,
      verdictOverride: 'unverifiable',
      reason: `status fetch failed: ${failure ? `${failure.code}: ${failure.message}` : String(err)}`.slice(0, 500),
    };
  }
  if (fetched?.status === claimed.status) return { observation: fetched };
  return {
    observation: fetched,
    verdictOverride: 'contradicted',
    reason: `callback claimed "${claimed.status}" but the provider's status endpoint says "${fetched?.status ?? 'an unknown status'}"`,
  };
}

const verdictOf = { advance: 'applied', progress: 'updated', duplicate: 'duplicate', stale: 'stale' } as const;

async function store(
  db: Db,
  s: {
    cb: IncomingCallback;
    route: 'job' | 'provider';
    headers: Record<string, string>;
    raw: Uint8Array;
    job: JobRow;
    observation: Observation | null;
    verdictOverride?: ReceiptVerdict | undefined;
    reason?: string | undefined;
  },
): Promise<CallbackOutcome> {
  const outcome = await db.transaction(async (tx) => {
    let verdict = s.verdictOverride;
    let status = s.job.status;
    if (s.observation) {
      const result = await applyObservation(tx, s.job.id, s.observation);
      verdict ??= verdictOf[result.decision.kind];
      status = result.job.status;
    }
    await tx.insert(callbackReceipts).values({
      provider: s.cb.provider,
      jobId: s.job.id,
      route: s.route,
      verdict: verdict ?? 'ignored',
      reason: s.reason ?? null,
      headers: s.headers,
      body: Buffer.from(s.raw),
      bodySize: s.raw.byteLength,
      sourceAddress: s.cb.sourceAddress,
    });
    return { verdict: verdict ?? 'ignored', jobId: s.job.id, status };
  });
  if (outcome.verdict === 'unverifiable') {
    throw new AppError('unavailable', 'the provider could not confirm this callback yet; retry later');
  }
  return outcome;
}
