import { asc, gt } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Notifier } from '../db/notify.js';
import { type EventRow, jobEvents } from '../db/schema.js';
import { AppError } from '../errors.js';

/**
 * The event feed: every job event once, in commit order, for services that pull rather than
 * receive webhooks.
 *
 * Why not order by `job_events.id`: an id is taken when the row is inserted, not when it commits.
 * Transaction A takes id 7, B takes id 8 and commits first; a reader that returned 8 and moved its
 * cursor past it would never see 7. So the feed orders by `commit_seq`, which a deferred trigger
 * assigns as each event's transaction commits, under a transaction-level advisory lock held until
 * that commit is visible (drizzle/0002_event_commit_order.sql). Numbers are therefore taken and made
 * visible in the same order: whenever an event with commit_seq n is visible, every lower one already
 * is (or never will be, if its commit failed), and `commit_seq > cursor` cannot skip anything.
 * The same holds on PGlite, where the one connection runs transactions one at a time anyway.
 *
 * Not chosen: serving only events whose transaction id is below the snapshot's xmin. It skips
 * nothing either, but its order is that of transaction ids (taken at a transaction's first write,
 * not at commit), which can put a job's second event before its first, and any long transaction
 * on the server, in any database, holds the whole feed back.
 */

/** An event that has committed, so has its place in the feed. */
export type FeedEvent = EventRow & { commitSeq: number };

export interface FeedPage {
  events: FeedEvent[];
  /** The cursor after the last event returned, or the one given when there was none. */
  cursor: string;
  more: boolean;
}

const CURSOR = /^v1\.(\d{1,15})$/;

/** Cursors are opaque to clients; inside, the commit_seq of the last event seen. */
export function encodeCursor(commitSeq: number): string {
  return Buffer.from(`v1.${commitSeq}`).toString('base64url');
}

/** The commit_seq a cursor stands for; no cursor (or an empty one) is the start of the feed. */
export function decodeCursor(cursor: string | undefined): number {
  if (!cursor) return 0;
  const match = CURSOR.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match || encodeCursor(Number(match[1])) !== cursor) {
    throw new AppError('invalid_request', 'the cursor is not one the relay gave out');
  }
  return Number(match[1]);
}

/** Up to `limit` events committed after `after`, oldest commit first. */
export async function readFeed(db: Db, after: number, limit: number): Promise<FeedPage> {
  const rows = await db
    .select()
    .from(jobEvents)
    .where(gt(jobEvents.commitSeq, after))
    .orderBy(asc(jobEvents.commitSeq))
    .limit(limit + 1);
  // `commit_seq > after` matched, so none of these is null.
  const events = rows.slice(0, limit) as FeedEvent[];
  const last = events.at(-1)?.commitSeq ?? after;
  return { events, cursor: encodeCursor(last), more: rows.length > limit };
}

/** The cursor that follows `event` in the feed (an SSE message's `id`). */
export function cursorAfter(event: FeedEvent): string {
  return encodeCursor(event.commitSeq);
}

/** Events per query while a follower catches up. */
const FOLLOW_BATCH = 200;
/** How often a follower looks for events when no notification came, in case one was missed. */
const FOLLOW_FALLBACK_MS = 10_000;

/**
 * Every event after `after` as it commits, until `signal` aborts: reads the feed, then sleeps until
 * a `relay_events` notification (sent by the commit of any replica) or the slow fallback timer.
 */
export async function* followFeed(
  ctx: { db: Db; notifier: Notifier },
  after: number,
  signal: AbortSignal,
): AsyncGenerator<FeedEvent> {
  let pending = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    pending = true;
    wake?.();
  };
  const unsubscribe = ctx.notifier.subscribe('relay_events', poke);
  signal.addEventListener('abort', poke, { once: true });
  try {
    // Subscribed before the first read, so nothing that commits after it goes unnoticed.
    await ctx.notifier.listening('relay_events');
    while (!signal.aborted) {
      pending = false;
      const page = await readFeed(ctx.db, after, FOLLOW_BATCH);
      for (const event of page.events) {
        if (signal.aborted) return;
        yield event;
        after = event.commitSeq;
      }
      if (page.more || pending) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, FOLLOW_FALLBACK_MS);
        function done() {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
        if (pending || signal.aborted) done();
      });
    }
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', poke);
  }
}
