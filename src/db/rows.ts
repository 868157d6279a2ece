import type { SQL } from 'drizzle-orm';
import type { Executor } from './client.js';

/**
 * Runs raw SQL and returns its rows: postgres.js answers `execute` with an array, PGlite with
 * `{ rows }`. Used for the few statements the query builder cannot say (window functions,
 * `jsonb_to_recordset` batches).
 */
export async function executeRows<T>(db: Executor, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
