/**
 * One signal aborted when any of `signals` is, released by hand. Unlike `AbortSignal.any`, which on
 * Node 20 leaves a reference behind in each long-lived source signal for every call, `release`
 * removes everything this added, so a per-request signal linked to the process's `closing` signal
 * costs nothing once the request is done.
 */
export function linkedSignal(...signals: AbortSignal[]): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  for (const s of signals) {
    if (s.aborted) controller.abort();
    else s.addEventListener('abort', abort, { once: true });
  }
  return {
    signal: controller.signal,
    release() {
      for (const s of signals) s.removeEventListener('abort', abort);
    },
  };
}
