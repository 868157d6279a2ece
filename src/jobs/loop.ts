import type { Channel, Notifier } from '../db/notify.js';
import type { Logger } from '../ops/logger.js';

export interface LoopOptions {
  name: string;
  /**
   * Does one batch of work; returns how many items it handled (0 = idle), optionally with when
   * work is next expected (then the loop sleeps that long rather than `idleMs`, if shorter).
   */
  runOnce: () => Promise<number | { handled: number; nextInMs: number | null }>;
  notifier: Notifier;
  channel: Channel;
  /** The slow timer that covers missed wake-ups. */
  idleMs: number;
  log: Logger;
}

export interface Loop {
  /** Runs a batch soon, without waiting for the timer. */
  wake(): void;
  /** Stops after the batch in progress; resolves when it has. */
  stop(): Promise<void>;
}

/**
 * A worker loop: run batches back to back while there is work, then sleep until a notification
 * or the idle timer. An idle relay makes one cheap query per `idleMs`, no more.
 */
export function startLoop(opts: LoopOptions): Loop {
  let stopped = false;
  let wakeUp: (() => void) | null = null;
  let pending = false;
  const wake = () => {
    pending = true;
    wakeUp?.();
  };
  const unsubscribe = opts.notifier.subscribe(opts.channel, wake);

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (pending || stopped) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = null;
        resolve();
      }
      wakeUp = done;
    });

  const running = (async () => {
    let failures = 0;
    while (!stopped) {
      pending = false;
      let sleepMs = opts.idleMs;
      try {
        const result = await opts.runOnce();
        failures = 0;
        const { handled, nextInMs } = typeof result === 'number' ? { handled: result, nextInMs: null } : result;
        if (handled > 0) continue;
        if (nextInMs !== null) sleepMs = Math.max(1, Math.min(sleepMs, nextInMs));
      } catch (err) {
        failures++;
        opts.log.error({ err, worker: opts.name }, 'worker batch failed');
        // The database may be down: back off instead of spinning (up to the idle interval).
        await new Promise((r) => setTimeout(r, Math.min(opts.idleMs, 100 * 2 ** failures)));
      }
      await sleep(sleepMs);
    }
  })();

  return {
    wake,
    async stop() {
      stopped = true;
      unsubscribe();
      wakeUp?.();
      await running;
    },
  };
}
