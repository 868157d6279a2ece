import type { ProviderConfig } from '../config.js';

/**
 * When to ask a provider about a job next. Pure: times in, delay out.
 *
 * A fixed poller spends most of its requests on jobs that are nowhere near done. This schedule
 * spends them where the answer is likely to change:
 * - before any progress shows, the interval grows from `interval_s` toward `max_interval_s`
 *   (nothing is about to finish, and noticing that work started a little late costs nothing);
 * - the first progress seen bounds the finish: work cannot have started before the submission,
 *   so the average rate since then is the slowest possible, and the next poll is never later;
 * - once the provider reports progress twice, the finishing time is estimated from the progress
 *   made over the longest baseline seen, and the next poll lands just before it, nearer as the
 *   estimate gets better (its error shrinks as the baseline grows); a poll that comes too early
 *   sees nearly-done progress and makes the next estimate sharp;
 * - for providers that call back, polling is only a safety net: the first poll waits
 *   `callback_grace_s`, and the interval grows faster;
 * - when the provider's status limit cannot cover every job at that pace, blind polls are spaced
 *   to each job's fair share of the budget, which leaves the rest for the estimated finishes.
 * Every delay is capped at `max_interval_s`, and no job is left unasked past its `max_age_s`.
 */

export type PollConfig = ProviderConfig['poll'];

export interface PollState {
  now: number;
  submittedAt: number;
  /** Polls made so far, this one included. */
  polls: number;
  callbacks: boolean;
  /** Latest progress read by a poll (0–100), and when. */
  progress: number | null;
  progressAt: number | null;
  /** The first non-zero progress seen, and when: the far end of the estimate's baseline. */
  progressBase: number | null;
  progressBaseAt: number | null;
  /**
   * How often each of the provider's running jobs can be asked if the status budget is shared
   * evenly (running jobs ÷ allowed rate). Blind polls are never more frequent than this, so when
   * the limit binds the budget goes to the polls an estimate says are worth it.
   */
  fairShareMs?: number;
}

/**
 * The schedule's small times are fractions of `interval_s` (0.5 s, 0.25 s and 2 s at the default
 * 5 s), so it behaves the same when every time is scaled (tests, benchmarks).
 */
const MIN_DELAY = 0.1;
/** Aim this far past the estimated finish: progress is an integer, so a little slack saves a second poll. */
const AIM_PAST = 0.05;
/** Closer than this to the estimated finish, poll right at it. */
const NEAR = 0.4;
/** A poll meant to find a job past its `max_age_s` lands this long after it. */
const JUST_PAST_MS = 50;

export function firstPollDelayMs(poll: PollConfig, callbacks: boolean): number {
  const first = (callbacks ? Math.max(poll.callback_grace_s, poll.initial_delay_s) : poll.initial_delay_s) * 1000;
  return Math.min(first, poll.max_age_s * 1000 + JUST_PAST_MS);
}

/** The blind interval: grows geometrically with the number of polls made. */
export function growingIntervalMs(poll: PollConfig, polls: number, callbacks: boolean): number {
  const factor = callbacks ? 2 : 1.5;
  return Math.min(poll.max_interval_s, poll.interval_s * factor ** Math.max(0, polls - 1)) * 1000;
}

/** Estimated ms until the job reaches 100 %, and the relative error of that estimate; null without a usable baseline. */
export function estimateFinish(s: PollState): { remainingMs: number; relError: number } | null {
  if (s.progress === null || s.progressAt === null || s.progressBase === null || s.progressBaseAt === null) return null;
  const dp = s.progress - s.progressBase;
  const dt = s.progressAt - s.progressBaseAt;
  if (dp <= 0 || dt <= 0 || s.progress >= 100) return null;
  const rate = dp / dt; // percent per ms
  const remainingMs = (100 - s.progress) / rate - (s.now - s.progressAt);
  // Each progress reading is rounded to ±0.5 %, so the rate is known to about ±1/dp.
  return { remainingMs, relError: 1 / dp };
}

export function nextPollDelayMs(s: PollState, poll: PollConfig): number {
  const unit = poll.interval_s * 1000;
  const blind = growingIntervalMs(poll, s.polls, s.callbacks);
  const cap = poll.max_interval_s * 1000;
  let delay = blind;
  const est = estimateFinish(s);
  if (est) {
    if (est.remainingMs <= NEAR * unit) {
      delay = est.remainingMs + AIM_PAST * unit;
    } else {
      // Land before the earliest plausible finish; as the baseline grows the margin shrinks.
      const margin = Math.min(0.5, 2 * est.relError);
      delay = Math.max(est.remainingMs * (1 - margin), NEAR * unit);
    }
  }
  delay = Math.min(cap, Math.max(MIN_DELAY * unit, delay));
  // A limited budget outranks max_interval_s: blind polls wait their fair turn.
  if (!est && s.fairShareMs) delay = Math.max(delay, s.fairShareMs);
  if (!est && s.progress !== null && s.progress > 0 && s.progress < 100) {
    // Work has started but there is no rate yet. Ask again soon to learn it, and never later than
    // the latest plausible finish: progress cannot have started before the submission, so the
    // average rate since then is the slowest it can be going.
    const latestFinish = ((s.now - s.submittedAt) * (100 - s.progress)) / s.progress;
    delay = Math.min(Math.max(unit, s.fairShareMs ?? 0), latestFinish + AIM_PAST * unit);
  }
  const ageLeft = s.submittedAt + poll.max_age_s * 1000 - s.now;
  if (ageLeft >= 0) delay = Math.min(delay, ageLeft + JUST_PAST_MS);
  return Math.round(delay);
}
