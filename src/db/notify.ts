import { EventEmitter } from 'node:events';
import type postgres from 'postgres';

/** Channels the relay wakes its workers (and waiters) on: new submissions, and poll schedules set sooner. */
export type Channel = 'relay_jobs' | 'relay_polls';

/**
 * Wake-ups between the parts of the relay: in-process at once, and across replicas through
 * Postgres LISTEN/NOTIFY when there is a server. A missed wake-up only delays work until the
 * workers' slow timer, so delivery is best-effort by design.
 */
export interface Notifier {
  notify(channel: Channel, payload?: string): void;
  /** Calls `fn` on every notification; returns the function that stops it. */
  subscribe(channel: Channel, fn: (payload: string) => void): () => void;
  close(): Promise<void>;
}

export function localNotifier(): Notifier {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    notify: (channel, payload = '') => void emitter.emit(channel, payload),
    subscribe(channel, fn) {
      emitter.on(channel, fn);
      return () => emitter.off(channel, fn);
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

export function postgresNotifier(client: postgres.Sql, onError: (err: unknown) => void): Notifier {
  const local = localNotifier();
  const listening = new Map<Channel, Promise<unknown>>();
  return {
    notify(channel, payload = '') {
      local.notify(channel, payload);
      client.notify(channel, payload).catch(onError);
    },
    subscribe(channel, fn) {
      if (!listening.has(channel)) {
        // Our own NOTIFY comes back too; a spare wake-up costs one empty claim query.
        listening.set(channel, client.listen(channel, (p) => local.notify(channel, p)).catch(onError));
      }
      return local.subscribe(channel, fn);
    },
    close: () => local.close(),
  };
}
