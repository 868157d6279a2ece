import { type SQL, sql } from 'drizzle-orm';
import { type Executor, rowsOf } from './client.js';

/**
 * Runs raw SQL and returns its rows (see `rowsOf`). Used for the few statements the query
 * builder cannot say (window functions, `jsonb_to_recordset` batches).
 */
export async function executeRows<T>(db: Executor, query: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(query));
}

/**
 * `executeRows` for a statement run often with the same text: on PostgreSQL it is prepared once per
 * connection and planned from then on from its cached plan, rather than parsed and planned on every
 * run (drizzle's `execute` sends unnamed statements). The text must come from a small fixed set —
 * each distinct text stays prepared on every connection — so build it from constants and pass data
 * as parameters. PGlite (one in-process connection) runs it as `execute` does.
 */
export async function executePreparedRows<T>(db: Executor, query: SQL): Promise<T[]> {
  const { dialect, session } = db as unknown as {
    dialect: { sqlToQuery(q: SQL): { sql: string; params: unknown[] } };
    session: { client: { unsafe?: (text: string, params: unknown[], opts: { prepare: boolean }) => Promise<unknown> } };
  };
  const client = session.client;
  if (typeof client.unsafe !== 'function') return executeRows<T>(db, query);
  const { sql: text, params } = dialect.sqlToQuery(query);
  return rowsOf<T>(await client.unsafe(text, params, { prepare: true }));
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
