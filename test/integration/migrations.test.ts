import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { migrate, migrationsFolder } from '../../src/db/migrate.js';
import { rowsOf } from '../../src/db/client.js';
import { createScratchDatabase, dbKind, TEST_DATABASE_URL } from '../helpers/db.js';

interface Journal {
  entries: { idx: number; when: number; tag: string }[];
}

const journal = JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as Journal;

describe(`migrations (${dbKind})`, () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function emptyDatabase(): Promise<Database> {
    if (!TEST_DATABASE_URL) {
      const database = await openDatabase({ dataDir: 'memory://' });
      cleanups.push(() => database.close());
      return database;
    }
    const { url, drop } = await createScratchDatabase();
    const database = await openDatabase({ databaseUrl: url, poolSize: 2 });
    cleanups.push(async () => {
      await database.close().catch(() => {});
      await drop();
    });
    return database;
  }

  it('each migration is dated after every earlier one (drizzle skips any dated before the newest applied)', () => {
    const whens = journal.entries.map((e) => e.when);
    for (let i = 1; i < whens.length; i++) expect(whens[i], journal.entries[i]!.tag).toBeGreaterThan(whens[i - 1]!);
  });

  it('a database at the previous release takes the newest migration when it is upgraded', async () => {
    // The migrations folder as the previous release shipped it: without the newest entry.
    const previous = mkdtempSync(join(tmpdir(), 'relay-migrations-'));
    cleanups.push(async () => rmSync(previous, { recursive: true, force: true }));
    cpSync(migrationsFolder, previous, { recursive: true });
    writeFileSync(join(previous, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, -1) }));

    const database = await emptyDatabase();
    const applied = async () =>
      rowsOf<{ n: number | string }>(await database.db.execute(sql`select count(*) as n from drizzle.__drizzle_migrations`)).map((r) => Number(r.n))[0];
    await migrate(database, previous);
    expect(await applied()).toBe(journal.entries.length - 1);
    await migrate(database);
    expect(await applied()).toBe(journal.entries.length);
  });
});
