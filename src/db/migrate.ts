import { fileURLToPath } from 'node:url';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { Database, Db } from './client.js';

/** `drizzle/` at the package root, from both `src/db` (tests) and `dist/db` (the built service). */
export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Any fixed number shared by every replica: the advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = 726_351_001;

/**
 * Applies the migrations drizzle-kit generated, under an advisory lock so replicas starting at
 * once take turns; the second one finds nothing left to do. drizzle applies only the migrations
 * whose journal time (`when`) is later than the newest one applied, so each new migration's must be
 * later than every earlier one's (test/integration/migrations.test.ts checks). `folder` is for
 * tests that migrate to an earlier release first.
 */
export async function migrate(database: Database, folder = migrationsFolder): Promise<void> {
  const migrations = readMigrationFiles({ migrationsFolder: folder });
  await database.withAdvisoryLock(MIGRATION_LOCK_KEY, async (db: Db) => {
    // Both drivers' migrators are this same call; going through the dialect keeps one code path.
    const { dialect, session } = db as unknown as {
      dialect: { migrate(m: unknown, s: unknown, c: unknown): Promise<void> };
      session: unknown;
    };
    await dialect.migrate(migrations, session, { migrationsFolder: folder });
  });
}
