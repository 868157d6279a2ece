import { inArray } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { type JobRow, jobs } from '../db/schema.js';

interface Waiting {
  id: string;
  resolve: (job: JobRow | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Reads jobs by id for the callback path, many per query: lookups that arrive while one is in
 * flight are answered together by the next (`where id in (…)`). At a trickle each lookup runs at
 * once, alone; under load one query serves dozens of callbacks. The same grouping as ReceiptWriter.
 */
export class JobLoader {
  private queue: Waiting[] = [];
  private loading = false;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 500,
  ) {}

  load(id: string): Promise<JobRow | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, resolve, reject });
      if (!this.loading) void this.drain();
    });
  }

  private async drain() {
    this.loading = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const rows = await this.db
            .select()
            .from(jobs)
            .where(inArray(jobs.id, [...new Set(batch.map((w) => w.id))]));
          const byId = new Map(rows.map((r) => [r.id, r]));
          for (const w of batch) w.resolve(byId.get(w.id));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.loading = false;
    }
  }
}
