/**
 * What an attempt's outcome means for the delivery and its subscription, and when to try again.
 * Pure: the worker records what this decides.
 */
import { jitter } from '../jobs/backoff.js';

/** A `Retry-After` is honoured within this window: long enough to respect a busy receiver, short enough not to stall. */
export const RETRY_AFTER_MIN_MS = 1000;
export const RETRY_AFTER_MAX_MS = 60 * 60_000;

export interface AttemptResult {
  /** The HTTP status, when an answer came. */
  statusCode: number | null;
  latencyMs: number;
  /** Why the attempt failed when no status tells it (timeout, refused connection, refused target). */
  error: string | null;
  /** The first KiB of the answer. */
  excerpt: string | null;
  retryAfterMs: number | null;
}

export type Verdict =
  | { kind: 'delivered' }
  /** Try again after `delayMs`. */
  | { kind: 'retry'; delayMs: number; gone: boolean }
  | { kind: 'dead'; gone: boolean };

export function isSuccess(r: AttemptResult): boolean {
  return r.statusCode !== null && r.statusCode >= 200 && r.statusCode < 300;
}

/**
 * `attempts` counts this attempt. Success is a 2xx; anything else (3xx included: redirects are not
 * followed) fails. `retry_schedule_s[n]` is the wait before attempt n+1, so the schedule's length is
 * the number of attempts; a 410 also disables the subscription (`gone`), and for a bare `notify_url`,
 * which has no subscription to disable, ends the delivery at once.
 */
export function decideAttempt(
  result: AttemptResult,
  attempts: number,
  schedule: readonly number[],
  opts: { hasSubscription: boolean },
  random: () => number = Math.random,
): Verdict {
  if (isSuccess(result)) return { kind: 'delivered' };
  const gone = result.statusCode === 410;
  if (gone && !opts.hasSubscription) return { kind: 'dead', gone };
  if (attempts >= schedule.length) return { kind: 'dead', gone };
  const honoured = result.statusCode === 429 || result.statusCode === 503 ? result.retryAfterMs : null;
  const delayMs =
    honoured !== null
      ? Math.min(RETRY_AFTER_MAX_MS, Math.max(RETRY_AFTER_MIN_MS, honoured))
      : jitter((schedule[attempts] ?? 0) * 1000, random);
  return { kind: 'retry', delayMs, gone };
}

/** `Retry-After` as seconds or an HTTP date, in milliseconds from `now`; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d{1,10}$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its month; Date.parse would take a bare "-5" for a year.
  if (!/[a-z]{3}/i.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
