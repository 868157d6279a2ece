import { type SQL, sql } from 'drizzle-orm';
import { type Executor, rowsOf } from './client.js';

/**
 * Runs raw SQL and returns its rows (see `rowsOf`). Used for the few statements the query
 * builder cannot say (window functions, `jsonb_to_recordset` batches).
 */
export async function executeRows<T>(db: Executor, query: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(query));
}

export interface Page<T, C> {
  data: T[];
  next_cursor: C | null;
}

/** A page from `limit + 1` rows read: the extra row only says there is more. */
export function toPage<T, C>(rows: T[], limit: number, cursorOf: (last: T) => C): Page<T, C> {
  const more = rows.length > limit;
  const data = more ? rows.slice(0, limit) : rows;
  return { data, next_cursor: more ? cursorOf(data[data.length - 1]!) : null };
}

/** `values` as one Postgres text array, passed as a single JSON parameter whatever its length. */
export function textArray(values: readonly string[]): SQL {
  return sql`array(select jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;
}
