/** Retry timing for provider calls. Pure: the random source is passed in for tests. */

export const MAX_SUBMIT_ATTEMPTS = 8;
const BASE_MS = 1000;
const CAP_MS = 60_000;
/** A `Retry-After` longer than this is treated as this: a provider's hint, not a reason to stall a job for hours. */
export const RETRY_AFTER_CAP_MS = 10 * 60_000;

/** ±20 % of `ms`. */
export function jitter(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.8 + 0.4 * random()));
}

/**
 * Delay before attempt `attempt + 1` after `attempt` failed: the provider's `Retry-After` when it
 * sent one (clamped), else exponential from 1 s (1, 2, 4, … up to 60 s), with jitter either way.
 */
export function retryDelayMs(attempt: number, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, retryAfterMs)) + Math.round(250 * random());
  return jitter(Math.min(CAP_MS, BASE_MS * 2 ** Math.max(0, attempt - 1)), random);
}
