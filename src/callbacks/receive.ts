import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { type JobRow, jobs, type ReceiptVerdict } from '../db/schema.js';
import { AppError, withDatabaseDeadline } from '../errors.js';
import { unstorable } from '../http/input-guard.js';
import { storableText } from '../db/json.js';
import { relayContentUrl } from '../jobs/content.js';
import { decide, isTerminal, type Observation } from '../jobs/states.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { isSecretName, REDACTED } from '../ops/redact.js';
import type { Providers } from '../providers/index.js';
import {
  MalformedPayloadError,
  type ParsedCallback,
  ProviderCallError,
  type ProviderAdapter,
} from '../providers/types.js';
import { isJsonContentType, MAX_CALLBACK_BYTES, parseJsonObject } from './body.js';
import type { RejectedVerdict, RejectionRecorder } from './rejections.js';
import { type JobLoader, type VersionedJob, versionedColumns } from './job-loader.js';
import type { ReceiptInput, ReceiptWriter, StoredOutcome } from './store.js';
import { jobCallbackToken, providerCallbackToken, tokenMatches } from './tokens.js';

export interface CallbackContext {
  db: Db;
  providers: Providers;
  secret: string;
  publicBaseUrl: string;
  rejections: RejectionRecorder;
  /** Stores accepted callbacks, many to a transaction under load. */
  receipts: ReceiptWriter;
  /** Reads the jobs callbacks name, many to a query under load. */
  jobs: JobLoader;
  log: Logger;
  metrics: Metrics;
}

export interface IncomingCallback {
  provider: string;
  /** Set on the per-job route, from the URL. */
  jobId: string | null;
  token: string;
  headers: HeaderSource;
  /** The raw body, at most `limit` bytes (an AppError payload_too_large beyond). */
  readBody(limit: number): Promise<Uint8Array>;
  sourceAddress: string | null;
}

/** What the callback path reads headers through: a fetch `Headers`, or Node's own (see routes.ts). */
export interface HeaderSource {
  get(name: string): string | null;
  forEach(fn: (value: string, name: string) => void): void;
}

export interface CallbackOutcome {
  verdict: ReceiptVerdict;
  jobId: string;
  status: JobRow['status'];
}

const HEADER_VALUE_MAX = 512;

/**
 * How long a callback waits for the database before it is answered 503 (the provider retries).
 * Generous for a loaded database, short enough that an outage is answered rather than hung.
 */
const DB_DEADLINE_MS = 3000;

function selectHeaders(headers: HeaderSource, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = headers.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}

const SECRET_HEADERS_MAX = 20;

/**
 * Headers as stored with the receipt: the adapter's list, each value cut short, plus the presence
 * of any header whose name says it carries a credential (`authorization`, `cookie`, `x-api-key`,
 * `x-webhook-secret`, …) with its value replaced by "[redacted]". Signature, id and timestamp
 * headers stay as sent: the audit needs them and they grant nothing.
 */
export function storedHeaders(headers: HeaderSource, selected: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(selected)) out[k] = isSecretName(k) ? REDACTED : v.slice(0, HEADER_VALUE_MAX);
  let secrets = 0;
  headers.forEach((_, name) => {
    if (isSecretName(name) && !(name in out) && secrets++ < SECRET_HEADERS_MAX) out[name] = REDACTED;
  });
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
 * size limit, token, JSON, the job, confirmation by fetch for unsigned providers, then the transaction
 * that stores the receipt and applies the observation (shared with the callbacks that arrived
 * meanwhile: see ReceiptWriter). Resolves only after that commit; every failure to store surfaces
 * as 503 so the provider retries.
 */
export async function receiveCallback(ctx: CallbackContext, cb: IncomingCallback): Promise<CallbackOutcome> {
  const adapter = ctx.providers.get(cb.provider);
  // The provider label is a configured name or `(unknown)`: a label per URL a stranger tries would
  // make a series per request.
  const provider = adapter?.config.callbacks ? cb.provider : '(unknown)';
  const stopTimer = ctx.metrics.callbackLatency.startTimer({ provider });
  const counted = (verdict: string, result: 'stored' | 'rejected' | 'error') => {
    ctx.metrics.callbacks.inc({ provider, verdict });
    stopTimer({ result });
  };
  if (!adapter || !adapter.config.callbacks) {
    counted('unknown_provider', 'rejected');
    throw new AppError('not_found', `no callback route for provider "${cb.provider.slice(0, 100)}"`);
  }
  const headers = selectHeaders(cb.headers, adapter.callbackHeaders);
  const route = cb.jobId ? 'job' : 'provider';
  let raw: Uint8Array = new Uint8Array(0);

  try {
    // The token is in the URL: a stranger is turned away before a byte of the body is read.
    const expected = cb.jobId
      ? jobCallbackToken(ctx.secret, cb.provider, cb.jobId)
      : providerCallbackToken(ctx.secret, cb.provider);
    if (!tokenMatches(cb.token, expected)) reject('unauthorized', 'unauthorized', 'invalid callback token');

    if (!isJsonContentType(cb.headers.get('content-type') ?? undefined)) {
      throw new Rejected('unsupported_media_type', new AppError('unsupported_media_type', 'callbacks must be application/json'));
    }
    try {
      raw = await cb.readBody(MAX_CALLBACK_BYTES);
    } catch (err) {
      if (err instanceof AppError) throw new Rejected('too_large', err);
      throw err;
    }

    let parsed;
    let deliveryId: string | null = null;
    try {
      const request = { headers, raw, body: parseJsonObject(raw) };
      if (adapter.signedCallbacks) {
        // Signed providers: the signature over the raw bytes is checked before anything is read from them.
        const check = adapter.verifyCallback?.(request, new Date()) ?? { ok: false, reason: 'no verifier' };
        if (!check.ok) reject('unauthorized', 'unauthorized', `invalid signature: ${check.reason}`);
      }
      parsed = adapter.parseCallback(request);
      // Kept storable: cut at 200 characters it may end in half a surrogate pair.
      deliveryId = storableText(adapter.callbackDeliveryId?.(request)?.slice(0, 200) ?? '') || null;
    } catch (err) {
      if (err instanceof MalformedPayloadError || err instanceof AppError) reject('malformed', 'invalid_request', err.message);
      throw err;
    }

    const badTaskId = parsed.taskId ? unstorable(parsed.taskId) : null;
    if (badTaskId) reject('malformed', 'invalid_request', `task id ${badTaskId}`);
    // The job as read: refused when there is none, or when it tracks another task; otherwise the
    // task the callback is about. A callback can beat the submit answer: its job then has no task
    // id yet, and the callback's (its per-job token proves where it came from) is the one to keep.
    const checked = (job: VersionedJob | undefined) => {
      if (!job || (cb.jobId && job.provider !== cb.provider)) {
        reject('unknown_job', 'not_found', cb.jobId ? `job ${cb.jobId} not found` : `no tracked job for task ${parsed.taskId}`);
      }
      if (parsed.taskId && job.providerTaskId && parsed.taskId !== job.providerTaskId) {
        reject('malformed', 'invalid_request', `callback is about task ${parsed.taskId}, but this job tracks ${job.providerTaskId}`);
      }
      const taskId = job.providerTaskId ?? parsed.taskId;
      if (!taskId) reject('malformed', 'invalid_request', 'callback names no task id');
      return { job, taskId };
    };
    const inputFor = (job: VersionedJob, taskId: string, confirmed: Confirmed): ReceiptInput => ({
      provider: cb.provider,
      route,
      headers: storedHeaders(cb.headers, headers),
      raw,
      sourceAddress: cb.sourceAddress,
      job,
      ...confirmed,
      deliveryId,
      learnedTaskId: job.providerTaskId ? null : taskId,
      taskId,
      contentUrl: relayContentUrl(adapter, ctx.publicBaseUrl, job.id),
    });
    let outcome: StoredOutcome;
    if (cb.jobId && !mayNeedFetch(adapter, parsed)) {
      // The common case: nothing to ask the provider whatever the job's state, so the writer reads
      // the job itself, in the batch it writes (one read per batch, no separate wait for it).
      const jobId = cb.jobId;
      outcome = await ctx.receipts.store(
        {
          jobId,
          complete: (read) => {
            const { job, taskId } = checked(read);
            return inputFor(job, taskId, confirmed(parsed.observation));
          },
        },
        DB_DEADLINE_MS,
      );
    } else {
      const { job, taskId } = checked(await withDatabaseDeadline(findJob(ctx, cb, parsed.taskId), DB_DEADLINE_MS, 'finding the job'));
      outcome = await ctx.receipts.store(inputFor(job, taskId, await confirm(adapter, job, taskId, parsed, ctx.log)), DB_DEADLINE_MS);
    }
    counted(outcome.verdict, 'stored');
    // The job, as locked, tracks another task (its submit answer came meanwhile): stored, refused.
    if (outcome.verdict === 'malformed') throw new AppError('invalid_request', outcome.reason ?? 'callback is about another task');
    if (outcome.verdict === 'unverifiable') {
      throw new AppError('unavailable', 'the provider could not confirm this callback yet; retry later');
    }
    return outcome;
  } catch (err) {
    if (err instanceof Rejected) {
      // A sample is best-effort: with the database away the refusal is answered anyway.
      await withDatabaseDeadline(
        ctx.rejections.record(
        {
          provider: cb.provider,
          route,
          verdict: err.verdict,
          reason: err.message,
          claimedJobId: cb.jobId?.slice(0, 100) ?? null,
          headers: storedHeaders(cb.headers, headers),
          raw,
          sourceAddress: cb.sourceAddress,
        },
        ctx.log,
        ),
        1000,
        'storing a rejected callback',
      ).catch(() => {});
      counted(err.verdict, 'rejected');
      throw err.appError;
    }
    if (err instanceof AppError) throw err;
    counted('error', 'error');
    ctx.log.error({ err, provider: cb.provider }, 'callback could not be stored');
    throw new AppError('unavailable', 'the callback could not be stored; retry later');
  }
}

async function findJob(ctx: CallbackContext, cb: IncomingCallback, taskId: string | null): Promise<VersionedJob | undefined> {
  // A job of another provider is refused by the caller's check, as for a job the writer reads.
  if (cb.jobId) return ctx.jobs.load(cb.jobId);
  if (!taskId) reject('malformed', 'invalid_request', 'callback names no task id');
  const [job] = await ctx.db
    .select(versionedColumns)
    .from(jobs)
    .where(and(eq(jobs.provider, cb.provider), eq(jobs.providerTaskId, taskId)));
  return job;
}

interface Confirmed {
  observation: Observation | null;
  verdictOverride?: ReceiptVerdict;
  reason?: string;
}

/** What is applied for a callback that needs no fetch: its claim, or nothing for a status the relay does not act on. */
function confirmed(claimed: Observation | null): Confirmed {
  return claimed ? { observation: claimed } : { observation: null, verdictOverride: 'ignored', reason: 'status the relay does not act on' };
}

/**
 * Whether `confirm` might ask the provider, whatever state the job is in: a thin callback, or an
 * unsigned terminal claim with verify_by_fetch on (asked about only when it would move the job).
 */
function mayNeedFetch(adapter: ProviderAdapter, parsed: ParsedCallback): boolean {
  const claimed = parsed.observation;
  return parsed.thin || (claimed !== null && !adapter.signedCallbacks && adapter.config.verify_by_fetch && isTerminal(claimed.status));
}

/**
 * What to apply for a callback. Signed callbacks are believed. A thin one (it only names the task)
 * is answered by fetching the task. For unsigned providers a terminal claim is only believed once
 * the provider's own status endpoint says the same, and the endpoint's answer is what gets applied.
 * If the provider cannot be asked, the callback is stored as `unverifiable` and answered 503 so the
 * provider retries.
 */
async function confirm(
  adapter: ProviderAdapter,
  job: JobRow,
  taskId: string,
  parsed: ParsedCallback,
  log: Logger,
): Promise<Confirmed> {
  const claimed = parsed.observation;
  // A claim that could not move the job (a duplicate, a stale one) needs no confirming.
  const mustFetch = mayNeedFetch(adapter, parsed) && (parsed.thin || decide(job, claimed!).kind === 'advance');
  if (!mustFetch) return confirmed(claimed);
  let fetched: Observation | null;
  try {
    fetched = await adapter.fetchStatus(taskId);
  } catch (err) {
    const failure = err instanceof ProviderCallError ? err.failure : undefined;
    log.warn({ err, jobId: job.id }, 'could not fetch the task a callback is about');
    return {
      observation: null,
      verdictOverride: 'unverifiable',
      reason: `status fetch failed: ${failure ? `${failure.code}: ${failure.message}` : String(err)}`.slice(0, 500),
    };
  }
  if (parsed.thin || fetched?.status === claimed?.status) return { observation: fetched };
  return {
    observation: fetched,
    verdictOverride: 'contradicted',
    reason: `callback claimed "${claimed?.status}" but the provider's status endpoint says "${fetched?.status ?? 'an unknown status'}"`,
  };
}
