import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { type ExtractTablesWithRelations, sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { acquireDataDirLock } from './lock.js';
import { localNotifier, type Notifier, postgresNotifier } from './notify.js';
import * as schema from './schema.js';

export type Schema = typeof schema;
/** The one database handle the rest of the code sees, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Either a database or a transaction: functions that only write take this and never open their own. */
export type Executor = Db | Tx;

export interface Database {
  db: Db;
  kind: 'pglite' | 'postgres';
  notifier: Notifier;
  /** Runs `fn` while this process holds a session-level advisory lock (other processes wait for it). */
  withAdvisoryLock<T>(key: number, fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  /** PGlite data directory; `memory://` keeps everything in memory (tests). */
  dataDir?: string;
  poolSize?: number;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts.poolSize ?? 10);
  return openPglite(opts.dataDir ?? './.relay-data');
}

function openPostgres(url: string, max: number): Database {
  const client = postgres(url, {
    max,
    connect_timeout: 5,
    idle_timeout: 60,
    // Reconnect soon after the database returns (the default backoff grows to 20 s).
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    onnotice: () => {},
  });
  const db = drizzlePostgres({ client, schema }) as unknown as Db;
  // LISTEN holds a connection of its own; a failure only costs promptness, never correctness.
  const notifier = postgresNotifier(client, () => {});
  return {
    db,
    kind: 'postgres',
    notifier,
    async withAdvisoryLock(key, fn) {
      const conn = await client.reserve();
      try {
        await conn`select pg_advisory_lock(${key})`;
        try {
          return await fn(db);
        } finally {
          await conn`select pg_advisory_unlock(${key})`;
        }
      } finally {
        conn.release();
      }
    },
    async close() {
      await notifier.close();
      await client.end({ timeout: 5 });
    },
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://');
  let releaseLock = () => {};
  if (!inMemory) {
    mkdirSync(dataDir, { recursive: true });
    releaseLock = acquireDataDirLock(dataDir);
  }
  let client: PGlite;
  try {
    client = await PGlite.create(inMemory ? undefined : dataDir);
  } catch (err) {
    releaseLock();
    throw err;
  }
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  // The one connection hears its own commits' NOTIFYs (the `relay_events` trigger), so waiters wake as on a server.
  const notifier = localNotifier((channel, onPayload) => client.listen(channel, onPayload));
  return {
    db,
    kind: 'pglite',
    notifier,
    // One process owns a PGlite directory (the lock file sees to that), and PGlite has one
    // connection, so an advisory lock would guard against nobody.
    withAdvisoryLock: (_key, fn) => fn(db),
    async close() {
      await notifier.close();
      try {
        if (!client.closed) await client.close();
      } finally {
        releaseLock();
      }
    },
  };
}

/** Rows of a raw `db.execute`: postgres.js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

export async function ping(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}
