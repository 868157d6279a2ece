/**
 * A token bucket: at most `perMinute` takes a minute, spread evenly, with a burst of up to
 * `burst`. `take()` resolves when a token is available. `pauseUntil` holds every take back,
 * for a provider's 429 `Retry-After`.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private pausedUntil = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly perMinute: number,
    readonly burst = Math.max(1, Math.min(perMinute, Math.ceil(perMinute / 60))),
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = this.burst;
    this.last = now();
  }

  pauseUntil(at: number) {
    this.pausedUntil = Math.max(this.pausedUntil, at);
  }

  /** Waits, in arrival order, until a token can be taken. */
  take(): Promise<void> {
    const turn = this.queue.then(() => this.waitForToken());
    this.queue = turn;
    return turn;
  }

  private async waitForToken(): Promise<void> {
    for (;;) {
      const now = this.now();
      if (now < this.pausedUntil) {
        await sleep(this.pausedUntil - now);
        continue;
      }
      const perMs = this.perMinute / 60_000;
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * perMs);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.ceil((1 - this.tokens) / perMs));
    }
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
