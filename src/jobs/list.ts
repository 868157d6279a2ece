import { and, desc, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { toPage } from '../db/rows.js';
import { type JobRow, type JobStatus, jobs } from '../db/schema.js';
import { AppError } from '../errors.js';

export interface JobListFilters {
  statuses?: readonly JobStatus[] | undefined;
  provider?: string | undefined;
  /** ISO timestamps; both bounds are exclusive. */
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  /** Jobs whose metadata holds every one of these pairs. */
  metadata?: Record<string, string> | undefined;
  limit: number;
  /** A `next_cursor` from an earlier page. */
  cursor?: string | undefined;
}

export interface JobList {
  data: JobRow[];
  next_cursor: string | null;
}

/**
 * A position in the newest-first order: the last row's `created_at` at full (microsecond) precision
 * and its id. A JS Date keeps only milliseconds, so a cursor built from one would skip rows created
 * later in the same millisecond; the timestamp is therefore carried as Postgres formats it.
 */
interface Position {
  t: string;
  i: string;
}

const CURSOR_TIME = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

function invalidCursor(): AppError {
  const message = 'not a cursor returned by this list';
  return new AppError('invalid_request', `cursor: ${message}`, [{ field: 'cursor', message }]);
}

/** Checks every part of a cursor, so a tampered one is a 400 rather than a database error. */
function decodeCursor(cursor: string): Position {
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) throw invalidCursor();
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!p || typeof p !== 'object') throw invalidCursor();
  const { t, i } = p as Record<string, unknown>;
  if (typeof t !== 'string' || typeof i !== 'string' || i.length < 1 || i.length > 64) throw invalidCursor();
  const year = CURSOR_TIME.exec(t)?.[1];
  const millis = `${t.slice(0, 23)}Z`;
  // Round-tripping through Date refuses impossible dates such as February 30th.
  if (!year || Number(year) < 1 || Number.isNaN(Date.parse(millis)) || new Date(millis).toISOString() !== millis) {
    throw invalidCursor();
  }
  return { t, i };
}

/**
 * Jobs newest first, by (created_at, id). Paging is keyset, never OFFSET: each page starts strictly
 * below the previous page's last row, so it costs the same however deep it is (the
 * `jobs_created_idx` index serves the order) and jobs created while a client pages appear above
 * its position, so every older job is returned exactly once.
 */
export async function listJobs(db: Db, filters: JobListFilters): Promise<JobList> {
  const conditions: SQL[] = [];
  if (filters.statuses?.length) conditions.push(inArray(jobs.status, [...filters.statuses]));
  if (filters.provider !== undefined) conditions.push(eq(jobs.provider, filters.provider));
  // Compared as timestamptz in the database, so a bound with microseconds is not rounded to a Date's milliseconds.
  if (filters.createdAfter !== undefined) conditions.push(sql`${jobs.createdAt} > ${filters.createdAfter}::timestamptz`);
  if (filters.createdBefore !== undefined) conditions.push(sql`${jobs.createdAt} < ${filters.createdBefore}::timestamptz`);
  if (filters.metadata && Object.keys(filters.metadata).length) {
    conditions.push(sql`${jobs.metadata} @> ${JSON.stringify(filters.metadata)}::jsonb`);
  }
  if (filters.cursor !== undefined) {
    const at = decodeCursor(filters.cursor);
    conditions.push(sql`(${jobs.createdAt}, ${jobs.id}) < (${at.t}::timestamptz, ${at.i})`);
  }

  const rows = await db
    .select({
      job: jobs,
      position: sql<string>`to_char(${jobs.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    })
    .from(jobs)
    .where(and(...conditions))
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(filters.limit + 1);

  const page = toPage(rows, filters.limit, (last) => encodeCursor({ t: last.position, i: last.job.id }));
  return { data: page.data.map((r) => r.job), next_cursor: page.next_cursor };
}
