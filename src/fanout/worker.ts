import type { DeliveryConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { startLoop } from '../jobs/loop.js';
import type { Logger } from '../ops/logger.js';
import { type ClaimedDelivery, claimDueDeliveries, msUntilNextDelivery, releaseLeases } from './claim.js';
import { createGuardedAgents, type GuardedAgents, type LookupAll } from './guard.js';
import { deliveryBody } from './payload.js';
import { type AttemptResult, decideAttempt } from './policy.js';
import { type Outcome, recordOutcomes } from './record.js';
import { postWebhook } from './send.js';
import { signPayload } from './signing.js';

export interface DeliveryWorkerOptions {
  db: Db;
  notifier: Notifier;
  log: Logger;
  delivery: DeliveryConfig;
  /** Signs `notify_url` deliveries (see `notifyUrlSecret`). */
  notifySecret: string;
  /** Deliveries in flight at once in this process. */
  maxInFlight?: number;
  /** Per subscription (or notify_url origin) while it answers well: a busy receiver gets many slots, not all. */
  perTargetInFlight?: number;
  /** Per target after a failed attempt, until it succeeds again: a receiver that is down or hangs holds only these. */
  failingTargetInFlight?: number;
  idleMs?: number;
  /** Tests: DNS answers for the connect-time guard. */
  resolve?: LookupAll;
  /** Called with every attempt's outcome once it is recorded (metrics). */
  onRecorded?: (outcome: Outcome) => void;
}

export interface DeliveryWorker {
  wake(): void;
  /** Deliveries being sent right now. */
  inFlight(): number;
  /**
   * Stops claiming and lets the deliveries in flight finish, for up to `graceMs`; those still
   * unanswered then are given up and their leases released, so another replica (or the next start)
   * sends them at once instead of after the lease. Records every outcome it has.
   */
  stop(graceMs?: number): Promise<void>;
}

const USER_AGENT = 'callback-relay/0.1 (+Standard Webhooks)';
const FLUSH_DELAY_MS = 5;

/**
 * The fan-out worker: claims due deliveries, POSTs each (signed, keep-alive, guarded, bounded by
 * `timeout_s`) without waiting for the others, and records outcomes in batches as they come in.
 * In-flight work is capped per process and per target, and a target whose last attempt failed gets
 * only a few slots until it answers well again, so a subscriber that is down or hangs occupies a
 * few slots, not the worker.
 */
export function startDeliveryWorker(opts: DeliveryWorkerOptions): DeliveryWorker {
  const maxInFlight = opts.maxInFlight ?? 256;
  const perTarget = opts.perTargetInFlight ?? 128;
  const failingCap = Math.min(perTarget, opts.failingTargetInFlight ?? 4);
  const timeoutMs = opts.delivery.timeout_s * 1000;
  const agents: GuardedAgents = createGuardedAgents({
    allowPrivate: opts.delivery.allow_private_targets,
    maxSockets: maxInFlight,
    ...(opts.resolve ? { resolve: opts.resolve } : {}),
  });
  const inFlightByTarget = new Map<string, number>();
  /** Targets whose last attempt failed; bounded, since notify_url origins come from callers. */
  const failing = new Set<string>();
  const sending = new Set<Promise<void>>();
  /** The deliveries being sent, for releasing their leases if shutdown cannot wait for them. */
  const inFlight = new Set<ClaimedDelivery>();
  let abandoned = false;
  /**
   * Whether the last claim may have left due work behind (it filled every free slot, or a target
   * was held to its cap): only then does a finished send need to claim again. Otherwise new work
   * announces itself (NOTIFY) and the loop sleeps, instead of a claim per finished send.
   */
  let starved = false;
  /** One timer for the soonest retry this worker scheduled, so it is sent on time without polling. */
  let retryTimer: NodeJS.Timeout | null = null;
  let retryAt = Infinity;
  const wakeIn = (ms: number) => {
    const at = Date.now() + ms;
    if (retryTimer && retryAt <= at) return;
    if (retryTimer) clearTimeout(retryTimer);
    retryAt = at;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      retryAt = Infinity;
      loop.wake();
    }, ms);
    retryTimer.unref();
  };
  let pending: Outcome[] = [];
  let flushing: Promise<void> | null = null;
  let flushFailures = 0;
  let stopping = false;

  const flush = async (): Promise<void> => {
    while (pending.length) {
      const batch = pending;
      pending = [];
      try {
        const disabled = await recordOutcomes(opts.db, batch, opts.delivery.disable_after_s);
        flushFailures = 0;
        for (const id of disabled) opts.log.warn({ subscription_id: id }, 'subscription disabled');
        for (const o of batch) {
          opts.onRecorded?.(o);
          if (o.delayMs !== null) wakeIn(o.delayMs);
        }
      } catch (err) {
        // Keep them: the database may be back soon. If it is not, the leases run out and the
        // deliveries are sent again — at least once, never lost.
        pending = batch.concat(pending);
        flushFailures++;
        opts.log.error({ err, outcomes: batch.length }, 'recording delivery outcomes failed');
        // Shutting down with the database away: give up; the leases run out and the deliveries go again.
        if (stopping && flushFailures >= 3) return;
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** flushFailures)));
      }
    }
  };
  const scheduleFlush = () => {
    if (flushing) return;
    // A few milliseconds' wait gathers the outcomes of a busy moment into one write; nothing waits on it.
    flushing = new Promise<void>((resolve) => setTimeout(resolve, FLUSH_DELAY_MS))
      .then(flush)
      .finally(() => {
        flushing = null;
        if (pending.length && !stopping) scheduleFlush();
      });
  };

  const secretsFor = (d: ClaimedDelivery) => d.secrets ?? [opts.notifySecret];

  async function send(d: ClaimedDelivery, body: string) {
    const startedAt = new Date();
    const timestamp = Math.floor(startedAt.getTime() / 1000);
    let result: AttemptResult;
    try {
      result = await postWebhook({
        url: d.url,
        body,
        timeoutMs,
        agents,
        headers: {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          'webhook-id': d.eventId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signPayload(secretsFor(d), d.eventId, timestamp, body),
        },
      });
    } catch (err) {
      result = { statusCode: null, latencyMs: Date.now() - startedAt.getTime(), error: String(err), excerpt: null, retryAfterMs: null };
    }
    // Given up at shutdown: its lease was released and someone else sends it; this outcome is not ours to record.
    if (abandoned) return;
    const attempt = d.attempts + 1;
    if (result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300) failing.delete(d.target);
    else {
      if (failing.size >= 1000) failing.clear();
      failing.add(d.target);
    }
    const verdict = decideAttempt(result, attempt, opts.delivery.retry_schedule_s, { hasSubscription: d.subscriptionId !== null });
    pending.push({
      id: d.id,
      claims: d.claims,
      attempt,
      status: verdict.kind === 'delivered' ? 'delivered' : verdict.kind === 'dead' ? 'dead' : 'pending',
      delayMs: verdict.kind === 'retry' ? verdict.delayMs : null,
      startedAt: startedAt.toISOString(),
      statusCode: result.statusCode,
      latencyMs: result.latencyMs,
      error: result.error ?? (verdict.kind === 'delivered' ? null : `HTTP ${result.statusCode}`),
      excerpt: result.excerpt,
      subscriptionId: d.subscriptionId,
      success: verdict.kind === 'delivered',
      gone: verdict.kind !== 'delivered' && verdict.gone,
    });
    scheduleFlush();
  }

  const start = (d: ClaimedDelivery, body: string) => {
    inFlightByTarget.set(d.target, (inFlightByTarget.get(d.target) ?? 0) + 1);
    inFlight.add(d);
    const p = send(d, body).finally(() => {
      inFlight.delete(d);
      const n = (inFlightByTarget.get(d.target) ?? 1) - 1;
      if (n > 0) inFlightByTarget.set(d.target, n);
      else inFlightByTarget.delete(d.target);
      sending.delete(p);
      if (starved) loop.wake();
    });
    sending.add(p);
  };

  const loop = startLoop({
    name: 'delivery',
    notifier: opts.notifier,
    channel: 'relay_deliveries',
    idleMs: opts.idleMs ?? 5000,
    log: opts.log,
    async runOnce() {
      // Finished sends wake the loop; wake-ups during a claim coalesce into the next one, so under
      // load claims come in batches without any waiting here.
      const free = maxInFlight - sending.size;
      if (free <= 0) {
        starved = true;
        return 0;
      }
      const allowance: Record<string, number> = {};
      for (const t of failing) allowance[t] = failingCap;
      for (const [t, n] of inFlightByTarget) allowance[t] = Math.max(0, (failing.has(t) ? failingCap : perTarget) - n);
      // A target with no slot left was not even looked at: it may have work waiting.
      const excluded = Object.values(allowance).some((a) => a <= 0);
      const claimed = await claimDueDeliveries(opts.db, {
        limit: free,
        perTarget,
        allowance,
        // Outlives the attempt (bounded by the timeout) with room for recording it; a dead worker's deliveries go again soon after.
        leaseMs: 2 * timeoutMs + 5000,
      });
      const bodies = new Map<string, string>();
      const perClaimed = new Map<string, number>();
      for (const d of claimed) {
        let body = bodies.get(d.eventId);
        if (body === undefined) {
          body = deliveryBody({ eventId: d.eventId, type: d.eventType, sequence: d.sequence, data: d.data, createdAt: new Date(d.eventCreatedAt) });
          bodies.set(d.eventId, body);
        }
        perClaimed.set(d.target, (perClaimed.get(d.target) ?? 0) + 1);
        start(d, body);
      }
      // Every slot filled, or a target given all it was allowed: there may be more behind.
      starved =
        claimed.length === free || excluded || [...perClaimed].some(([t, n]) => n >= (allowance[t] ?? perTarget));
      if (claimed.length && starved) return claimed.length;
      // Everything due was taken: sleep until the next delivery falls due (a NOTIFY, a finished
      // send that left work behind, or a retry this worker scheduled wakes it sooner). While sends
      // are in flight, work that is due but held back by a target's cap waits for them, not a spin.
      const next = await msUntilNextDelivery(opts.db);
      // Due already but not claimed because a target is at its cap: a finished send wakes the loop.
      if (next !== null && next <= 0 && sending.size && starved) return { handled: 0, nextInMs: null };
      // Otherwise (it fell due between the claim and this query) look again very soon.
      return { handled: 0, nextInMs: next === null ? null : Math.max(next, 5) };
    },
  });

  return {
    wake: loop.wake,
    inFlight: () => sending.size,
    async stop(graceMs = 10_000) {
      await loop.stop();
      if (retryTimer) clearTimeout(retryTimer);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all([...sending]), grace]);
      clearTimeout(timer);
      if (sending.size) {
        abandoned = true;
        const given = [...inFlight];
        opts.log.warn({ deliveries: given.length }, 'shutdown: giving up deliveries still in flight and releasing them');
        await releaseLeases(opts.db, given).catch((err) => opts.log.error({ err }, 'could not release delivery leases; they expire on their own'));
        agents.http.destroy();
        agents.https.destroy();
        await Promise.all([...sending]);
      }
      stopping = true;
      if (pending.length) scheduleFlush();
      while (flushing) await flushing;
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
