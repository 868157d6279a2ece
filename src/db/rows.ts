import { is, Placeholder, type SQL, sql } from 'drizzle-orm';
import { type Executor, rowsOf } from './client.js';

/**
 * Runs raw SQL and returns its rows (see `rowsOf`). Used for the few statements the query
 * builder cannot say (window functions, `jsonb_to_recordset` batches).
 */
export async function executeRows<T>(db: Executor, query: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(query));
}

interface DrizzleInternals {
  dialect: { sqlToQuery(q: SQL): { sql: string; params: unknown[] } };
  session: { client: { unsafe?: (text: string, params: unknown[], opts: { prepare: boolean }) => Promise<unknown> } };
}

/**
 * A statement run often, for the hottest paths. `build` makes its SQL from parameters `p`, each used
 * as a value in the template; the text is worked out once, with a placeholder for each, instead of
 * by drizzle on every run, and each run only fills in the values. On PostgreSQL it is prepared once
 * per connection and planned from then on from its cached plan, rather than parsed and planned on
 * every run (drizzle's `execute` sends unnamed statements); so `build` must give one text whatever
 * the values and `variant` (every distinct text stays prepared on every connection). On PGlite (one
 * in-process connection) `build` runs with the values, through `execute`.
 */
export function preparedStatement<K extends string, V extends string = ''>(names: readonly K[], build: (p: Record<K, unknown>, variant: V) => SQL) {
  const compiled = new Map<V, { text: string; fill: (values: Record<K, unknown>) => unknown[] }>();
  const compile = (dialect: DrizzleInternals['dialect'], variant: V) => {
    const placeholders = Object.fromEntries(names.map((n) => [n, sql.placeholder(n)])) as Record<K, unknown>;
    const { sql: text, params } = dialect.sqlToQuery(build(placeholders, variant));
    // Each parameter is a placeholder's name or a constant of the text.
    const slots = params.map((param) => (is(param, Placeholder) ? (param.name as K) : { constant: param }));
    const entry = { text, fill: (values: Record<K, unknown>) => slots.map((s) => (typeof s === 'string' ? values[s] : s.constant)) };
    compiled.set(variant, entry);
    return entry;
  };
  /** Runs the statement with `values`; `variant` picks one of a few texts `build` makes (each compiled once). */
  return async <T>(db: Executor, values: Record<K, unknown>, variant = '' as V): Promise<T[]> => {
    const { dialect, session } = db as unknown as DrizzleInternals;
    const client = session.client;
    if (typeof client.unsafe !== 'function') return executeRows<T>(db, build(values, variant));
    const { text, fill } = compiled.get(variant) ?? compile(dialect, variant);
    return rowsOf<T>(await client.unsafe(text, fill(values), { prepare: true }));
  };
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
  return textArrayOf(JSON.stringify(values));
}

/** `textArray` for a parameter holding the values as a JSON array (or a placeholder for it). */
export function textArrayOf(json: unknown): SQL {
  return sql`array(select jsonb_array_elements_text(${json}::jsonb))`;
}
