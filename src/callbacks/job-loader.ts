import { getTableColumns, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { textArrayOf } from '../db/rows.js';
import { type JobRow, jobs } from '../db/schema.js';

/**
 * A job as read, with the version of its row (`xmin`, the transaction that wrote it): a write that
 * finds the row at that version knows nothing changed it since.
 */
export type VersionedJob = JobRow & { version?: string | undefined };

export const versionedColumns = { ...getTableColumns(jobs), version: sql<string>`${jobs}.xmin::text`.as('version') };

/** Jobs by id with their row versions, as a prepared statement: built once, planned once per connection. */
function preparedLoad(db: Db) {
  return db
    .select(versionedColumns)
    .from(jobs)
    .where(sql`${jobs.id} = any(${textArrayOf(sql.placeholder('ids'))})`)
    .prepare('relay_load_jobs');
}

interface Waiting {
  id: string;
  resolve: (job: VersionedJob | undefined) => void;
  reject: (err: unknown) => void;
}

/** Reads jobs by id, with their versions, through one prepared statement. */
export function jobReader(db: Db): (ids: readonly string[]) => Promise<VersionedJob[]> {
  const query = preparedLoad(db);
  return (ids) => query.execute({ ids: JSON.stringify(ids) });
}

/**
 * Reads jobs by id for the callback path, many per query: lookups that arrive while the reads
 * are in flight are answered together by the next (`where id = any(…)`). At a trickle each lookup runs at
 * once, alone; under load one query serves dozens of callbacks. The same grouping as ReceiptWriter.
 */
export class JobLoader {
  private queue: Waiting[] = [];
  private loading = 0;
  private readonly read: ReturnType<typeof jobReader>;

  /**
   * Up to `concurrency` reads in flight: a lookup that arrives while one is out waits for at most
   * part of it rather than all of it (measured: 2 over 1 raised ingest by about 5 %).
   */
  constructor(
    db: Db,
    private readonly maxBatch = 500,
    private readonly concurrency = 2,
  ) {
    this.read = jobReader(db);
  }

  load(id: string): Promise<VersionedJob | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, resolve, reject });
      if (this.loading < this.concurrency) void this.drain();
    });
  }

  private async drain() {
    this.loading++;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const rows = await this.read([...new Set(batch.map((w) => w.id))]);
          const byId = new Map(rows.map((r) => [r.id, r]));
          for (const w of batch) w.resolve(byId.get(w.id));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.loading--;
    }
  }
}
