import { and, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { callbackReceipts, type ReceiptVerdict } from '../db/schema.js';
import type { Logger } from '../ops/logger.js';

export const rejectedVerdicts = [
  'unauthorized',
  'unknown_job',
  'malformed',
  'too_large',
  'unsupported_media_type',
] as const satisfies readonly ReceiptVerdict[];
export type RejectedVerdict = (typeof rejectedVerdicts)[number];

export const REJECTION_EXCERPT_BYTES = 1024;

export interface Rejection {
  provider: string;
  route: 'job' | 'provider';
  verdict: RejectedVerdict;
  reason: string;
  claimedJobId: string | null;
  headers: Record<string, string>;
  raw: Uint8Array;
  sourceAddress: string | null;
}

export interface RejectionOptions {
  /** Samples stored per second on average (token bucket refill). */
  perSecond?: number;
  /** Burst of samples stored at once. */
  burst?: number;
  /** Stored rejections kept; older ones are deleted. */
  keep?: number;
}

/**
 * Keeps rejected callbacks in bounded form (SPEC: "so a flood cannot fill the disk"): a
 * rate-limited sample is stored with only the first KiB of its body, and the stored samples are
 * trimmed to the newest `keep`. Every one is counted in `relay_callbacks_total` by the caller.
 */
export class RejectionRecorder {
  private tokens: number;
  private last = Date.now();
  private sinceTrim = 0;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly keep: number;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    opts: RejectionOptions = {},
  ) {
    this.perSecond = opts.perSecond ?? 5;
    this.burst = opts.burst ?? 50;
    this.keep = opts.keep ?? 10_000;
    this.tokens = this.burst;
  }

  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Stores a sample of the rejection when the budget allows. Never throws; `log` is the request's. */
  async record(r: Rejection, log: Logger = this.log): Promise<void> {
    if (!this.take()) return;
    try {
      await this.db.insert(callbackReceipts).values({
        provider: r.provider,
        claimedJobId: r.claimedJobId,
        route: r.route,
        verdict: r.verdict,
        reason: r.reason.slice(0, 500),
        headers: r.headers,
        body: Buffer.from(r.raw.subarray(0, REJECTION_EXCERPT_BYTES)),
        bodySize: r.raw.byteLength,
        sourceAddress: r.sourceAddress,
      });
      if (++this.sinceTrim >= 100) {
        this.sinceTrim = 0;
        await this.trim();
      }
    } catch (err) {
      log.warn({ err }, 'could not store a rejected callback sample');
    }
  }

  async trim(): Promise<void> {
    // Rejected samples are the receipts with no job (accepted ones always have one).
    const rejected = isNull(callbackReceipts.jobId);
    const [cutoff] = await this.db
      .select({ id: callbackReceipts.id })
      .from(callbackReceipts)
      .where(rejected)
      .orderBy(sql`${callbackReceipts.id} desc`)
      .offset(this.keep)
      .limit(1);
    if (cutoff) await this.db.delete(callbackReceipts).where(and(rejected, lt(callbackReceipts.id, cutoff.id + 1)));
  }
}
