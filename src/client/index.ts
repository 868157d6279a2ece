import { setTimeout as sleep } from 'node:timers/promises';
import { linkedSignal } from '../http/signals.js';
import { terminalStatuses } from '../jobs/states.js';
import type {
  CallbackReceiptPage,
  ErrorCode,
  EventFeedPage,
  EventFeedQuery,
  Job,
  JobEventPage,
  JobPage,
  JobRequest,
  ListJobsQuery,
  PageQuery,
  TrackJobRequest,
} from './types.js';

export type * from './types.js';

/** The longest `?wait=` the relay accepts, in seconds (`MAX_WAIT_S` on the server). */
export const LONGEST_WAIT_S = 60;

/** An error answer from the relay: its status and the `{error: {code, message, request_id, details}}` it sent. */
export class RelayApiError extends Error {
  override name = 'RelayApiError';
  constructor(
    readonly status: number,
    /** The relay's error code; `unexpected_response` when the body was not the relay's error shape (a proxy's page, say). */
    readonly code: ErrorCode | 'unexpected_response',
    message: string,
    /** The request's id, to find it in the relay's logs. */
    readonly requestId: string | null,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface RelayClientOptions {
  /** Where the relay is, e.g. `http://callback-relay.internal:8080`; a path prefix is kept. */
  baseUrl: string;
  /** A key with the scopes the calls need (`jobs:read`, `jobs:write`). */
  apiKey: string;
  /** Limit for one request, not counting the time a long-poll asked to wait. Default 30 s. */
  timeoutMs?: number;
  /** A fetch to use instead of the global one: one with its own agent, or a test's in-process app. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface WaitOptions extends CallOptions {
  /** How long to wait in all before giving up and returning the job as it is. Default 30 minutes. */
  timeoutMs?: number;
}

interface Call extends CallOptions {
  query?: URLSearchParams;
  body?: unknown;
  headers?: Record<string, string>;
  /** Added to the request timeout: the time the relay was asked to hold the request. */
  holdMs?: number;
}

const isTerminal = (job: Job) => terminalStatuses.has(job.status);

/** Worth trying again after a pause: the relay or the way to it was briefly unavailable. */
function isTransient(err: unknown): boolean {
  if (err instanceof RelayApiError) return err.status === 429 || err.status === 502 || err.status === 503 || err.status === 504;
  // fetch rejects with a TypeError when the connection fails; our own request timeout is a TimeoutError.
  return err instanceof TypeError || (err instanceof DOMException && err.name === 'TimeoutError');
}

function errorFrom(res: Response, text: string): RelayApiError {
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; request_id?: unknown; details?: unknown } };
    if (error && typeof error.code === 'string' && typeof error.message === 'string') {
      const requestId = typeof error.request_id === 'string' ? error.request_id : res.headers.get('x-request-id');
      return new RelayApiError(res.status, error.code as ErrorCode, error.message, requestId, error.details);
    }
  } catch {
    // Not JSON: reported below with the start of the body.
  }
  const excerpt = text.slice(0, 200).trim();
  return new RelayApiError(res.status, 'unexpected_response', `HTTP ${res.status}${excerpt ? `: ${excerpt}` : ''}`, res.headers.get('x-request-id'));
}

function jobsQuery(q: ListJobsQuery): URLSearchParams {
  const p = new URLSearchParams();
  for (const s of q.status ?? []) p.append('status', s);
  if (q.provider !== undefined) p.set('provider', q.provider);
  if (q.created_after !== undefined) p.set('created_after', q.created_after);
  if (q.created_before !== undefined) p.set('created_before', q.created_before);
  if (q.limit !== undefined) p.set('limit', String(q.limit));
  if (q.cursor !== undefined) p.set('cursor', q.cursor);
  for (const [key, value] of Object.entries(q.metadata ?? {})) p.append(`metadata[${key}]`, value);
  return p;
}

function pageQuery(q: { limit?: number | undefined; after?: number | string | undefined }): URLSearchParams {
  const p = new URLSearchParams();
  if (q.limit !== undefined) p.set('limit', String(q.limit));
  if (q.after !== undefined) p.set('after', String(q.after));
  return p;
}

/**
 * A client for the relay's `/v1` API. Request and response types come from the relay's own
 * schemas; an error answer is thrown as a `RelayApiError`.
 *
 * ```ts
 * const relay = new RelayClient({ baseUrl: 'http://callback-relay:8080', apiKey: process.env.RELAY_KEY! });
 * const job = await relay.createJob({ provider: 'veo-a', prompt: '…' }, { idempotencyKey: 'order-A-17' });
 * const done = await relay.waitForJob(job.id, { timeoutMs: 20 * 60_000 });
 * ```
 */
export class RelayClient {
  private readonly base: URL;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: (url: string, init: RequestInit) => Promise<Response>;

  constructor(opts: RelayClientOptions) {
    this.base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchImpl = opts.fetch ?? ((url, init) => fetch(url, init));
  }

  /** Submits a job (202, `queued`). With an idempotency key, a repeat returns the first job instead of a second one. */
  createJob(request: JobRequest, opts: CallOptions & { idempotencyKey?: string } = {}): Promise<Job> {
    const headers: Record<string, string> = opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {};
    return this.call('POST', 'v1/jobs', { ...opts, body: request, headers });
  }

  /** Tracks a job submitted to a provider elsewhere. */
  trackJob(request: TrackJobRequest, opts: CallOptions = {}): Promise<Job> {
    return this.call('POST', 'v1/jobs/track', { ...opts, body: request });
  }

  /** The job; with `wait` (seconds, at most 60), held until it is terminal or the time passes. */
  getJob(id: string, opts: CallOptions & { wait?: number } = {}): Promise<Job> {
    const wait = Math.max(0, Math.min(LONGEST_WAIT_S, Math.floor(opts.wait ?? 0)));
    const query = wait ? new URLSearchParams({ wait: String(wait) }) : undefined;
    return this.call('GET', `v1/jobs/${encodeURIComponent(id)}`, { ...opts, ...(query ? { query } : {}), holdMs: wait * 1000 });
  }

  /**
   * Waits until the job is terminal (`succeeded`, `failed`, `canceled` or `expired`) with back-to-back
   * long-polls, and returns it. At the deadline the job is returned as it is then: check its status.
   * Brief outages (503, 429, a dropped connection) are retried until the deadline.
   */
  async waitForJob(id: string, opts: WaitOptions = {}): Promise<Job> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
    const signal = opts.signal;
    for (let failures = 0; ; ) {
      const wait = Math.floor((deadline - Date.now()) / 1000);
      try {
        const job = await this.getJob(id, { wait, ...(signal ? { signal } : {}) });
        failures = 0;
        if (isTerminal(job) || wait <= 0 || Date.now() >= deadline) return job;
      } catch (err) {
        if (!isTransient(err) || signal?.aborted) throw err;
        const pauseMs = Math.min(15_000, 500 * 2 ** failures++) * (0.5 + Math.random() / 2);
        if (Date.now() + pauseMs >= deadline) throw err;
        await sleep(pauseMs, undefined, signal ? { signal } : {});
      }
    }
  }

  /** One page of jobs, newest first. Follow `next_cursor` (or use `listJobPages`) for the rest. */
  listJobs(query: ListJobsQuery = {}, opts: CallOptions = {}): Promise<JobPage> {
    return this.call('GET', 'v1/jobs', { ...opts, query: jobsQuery(query) });
  }

  /** Every page of jobs matching `query`, following the cursor; jobs created meanwhile do not shift it. */
  async *listJobPages(query: ListJobsQuery = {}, opts: CallOptions = {}): AsyncGenerator<JobPage, void, undefined> {
    let cursor = query.cursor;
    for (;;) {
      const page = await this.listJobs({ ...query, ...(cursor === undefined ? {} : { cursor }) }, opts);
      yield page;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** Every job matching `query`, one at a time, fetched a page at a time. */
  async *iterateJobs(query: ListJobsQuery = {}, opts: CallOptions = {}): AsyncGenerator<Job, void, undefined> {
    for await (const page of this.listJobPages(query, opts)) yield* page.data;
  }

  /** A job's `job.*` events in sequence order; `after` is the `next_cursor` of the previous page. */
  jobEvents(id: string, query: PageQuery = {}, opts: CallOptions = {}): Promise<JobEventPage> {
    return this.call('GET', `v1/jobs/${encodeURIComponent(id)}/events`, { ...opts, query: pageQuery(query) });
  }

  /** The callbacks stored for a job, each with its verdict. */
  jobCallbacks(id: string, query: PageQuery = {}, opts: CallOptions = {}): Promise<CallbackReceiptPage> {
    return this.call('GET', `v1/jobs/${encodeURIComponent(id)}/callbacks`, { ...opts, query: pageQuery(query) });
  }

  /**
   * A page of the event feed, every job's events in commit order. Pass `next_cursor` back as
   * `after` (and keep it) to see each event exactly once.
   */
  listEvents(query: EventFeedQuery = {}, opts: CallOptions = {}): Promise<EventFeedPage> {
    return this.call('GET', 'v1/events', { ...opts, query: pageQuery(query) });
  }

  /** Asks the provider for the job's status now and returns the job after applying the answer. */
  refreshJob(id: string, opts: CallOptions = {}): Promise<Job> {
    return this.call('POST', `v1/jobs/${encodeURIComponent(id)}/refresh`, opts);
  }

  /** Stops tracking the job (`canceled`). The provider is not asked to stop. */
  cancelJob(id: string, opts: CallOptions = {}): Promise<Job> {
    return this.call('POST', `v1/jobs/${encodeURIComponent(id)}/cancel`, opts);
  }

  private async call<T>(method: 'GET' | 'POST', path: string, call: Call): Promise<T> {
    const url = new URL(path, this.base);
    if (call.query?.size) url.search = call.query.toString();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.timeoutMs + (call.holdMs ?? 0));
    const linked = call.signal ? linkedSignal(timeout.signal, call.signal) : { signal: timeout.signal, release() {} };
    try {
      const res = await this.fetchImpl(url.toString(), {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          accept: 'application/json',
          ...(call.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...call.headers,
        },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
        signal: linked.signal,
      });
      const text = await res.text();
      if (!res.ok) throw errorFrom(res, text);
      return JSON.parse(text) as T;
    } catch (err) {
      if (timeout.signal.aborted && !call.signal?.aborted) {
        throw new DOMException(`${method} ${url.pathname} took longer than ${this.timeoutMs + (call.holdMs ?? 0)} ms`, 'TimeoutError');
      }
      throw err;
    } finally {
      clearTimeout(timer);
      linked.release();
    }
  }
}
