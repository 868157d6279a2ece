import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { type Database, openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';

/** Set to run the suite against a real PostgreSQL server; unset, it runs on in-memory PGlite. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const dbKind = TEST_DATABASE_URL ? 'postgres' : 'pglite';

export interface TestDatabase {
  database: Database;
  /** The URL of this test's own database (postgres mode only). */
  url: string | undefined;
  cleanup(): Promise<void>;
}

/** A fresh, migrated database of its own: a new PGlite in memory, or a new database on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!TEST_DATABASE_URL) {
    const database = await openDatabase({ dataDir: 'memory://' });
    await migrate(database);
    return { database, url: undefined, cleanup: () => database.close() };
  }
  const { url, drop } = await createScratchDatabase();
  const database = await openDatabase({ databaseUrl: url, poolSize: 5 });
  await migrate(database);
  return {
    database,
    url,
    async cleanup() {
      await database.close().catch(() => {});
      await drop();
    },
  };
}

/** An empty database on the test server, dropped (connections and all) by `drop`. */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set');
  const name = `relay_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
