import { EventEmitter } from 'node:events';
import type postgres from 'postgres';

/**
 * Channels the relay wakes its workers (and waiters) on: new submissions, poll schedules set sooner,
 * committed job events (`relay_events`, payload the space-separated ids of the jobs one statement
 * gave events, sent by a trigger on `job_events`) and
 * committed deliveries (`relay_deliveries`, sent by a trigger on `deliveries`).
 */
export type Channel = 'relay_jobs' | 'relay_polls' | 'relay_events' | 'relay_deliveries';

/**
 * Wake-ups between the parts of the relay: in-process at once, and across replicas through
 * Postgres LISTEN/NOTIFY when there is a server. A missed wake-up only delays work until the
 * workers' slow timer, so delivery is best-effort by design.
 */
export interface Notifier {
  notify(channel: Channel, payload?: string): void;
  /** Calls `fn` on every notification; returns the function that stops it. */
  subscribe(channel: Channel, fn: (payload: string) => void): () => void;
  /**
   * Resolves once notifications the database sends on `channel` reach this process (after a first
   * `subscribe`): a waiter that re-checks after this cannot miss a commit in between.
   */
  listening(channel: Channel): Promise<void>;
  close(): Promise<void>;
}

/** LISTEN on a database connection; resolves once it is in effect. */
export type ListenFn = (channel: Channel, onPayload: (payload: string) => void) => Promise<unknown>;

/**
 * In-process wake-ups; with `listen` (PGlite) also the notifications the database itself sends,
 * such as the `relay_events` trigger's. `notify` stays in-process.
 */
export function localNotifier(listen?: ListenFn, onError: (err: unknown) => void = () => {}): Notifier {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const listening = new Map<Channel, Promise<void>>();
  const startListening = (channel: Channel) => {
    let ready = listening.get(channel);
    if (!ready) {
      ready = listen
        ? listen(channel, (payload) => void emitter.emit(channel, payload)).then(
            () => {},
            (err) => {
              // Forget the failure so the next subscriber tries LISTEN again (the database may be back).
              listening.delete(channel);
              onError(err);
            },
          )
        : Promise.resolve();
      listening.set(channel, ready);
    }
    return ready;
  };
  return {
    notify: (channel, payload = '') => void emitter.emit(channel, payload),
    subscribe(channel, fn) {
      void startListening(channel);
      emitter.on(channel, fn);
      return () => emitter.off(channel, fn);
    },
    listening: startListening,
    async close() {
      emitter.removeAllListeners();
    },
  };
}

export function postgresNotifier(client: postgres.Sql, onError: (err: unknown) => void): Notifier {
  // Our own NOTIFY comes back too; a spare wake-up costs one empty claim query.
  const relay = localNotifier((channel, onPayload) => client.listen(channel, onPayload), onError);
  return {
    notify(channel, payload = '') {
      relay.notify(channel, payload);
      client.notify(channel, payload).catch(onError);
    },
    subscribe: relay.subscribe,
    listening: relay.listening,
    close: () => relay.close(),
  };
}
