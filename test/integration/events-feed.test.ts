import { asc, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../../src/db/notify.js';
import { jobEvents, type JobStatus, jobs } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { applyObservation } from '../../src/jobs/transition.js';
import { dbKind } from '../helpers/db.js';
import { ADMIN_KEY, startTestRelay, type TestRelay } from '../helpers/relay.js';

interface FeedEvent {
  event_id: string;
  job_id: string;
  sequence: number;
  type: string;
  created_at: string;
  data: Record<string, unknown>;
}
interface FeedPage {
  data: FeedEvent[];
  next_cursor: string;
  has_more: boolean;
}

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay({});
});
afterAll(async () => {
  await relay?.close();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function newJobs(n: number): Promise<string[]> {
  const rows = Array.from({ length: n }, () => ({ id: newId('job'), provider: 'veo', status: 'queued' as const }));
  await relay.deps.db.insert(jobs).values(rows);
  return rows.map((r) => r.id);
}

/** One transition in its own transaction, which `hold` (called once the event is inserted) keeps open. */
async function transition(jobId: string, status: Exclude<JobStatus, 'queued'>, hold?: () => Promise<unknown>) {
  return relay.deps.db.transaction(async (tx) => {
    const { event } = await applyObservation(tx, jobId, { status });
    await hold?.();
    return event!;
  });
}

async function feedPage(after: string | undefined, limit = 100): Promise<FeedPage> {
  const res = await relay.api('GET', `/v1/events?limit=${limit}${after ? `&after=${after}` : ''}`);
  expect(res.status).toBe(200);
  return (await res.json()) as FeedPage;
}

/** Follows `after` until the feed has nothing more right now. */
async function follow(after?: string) {
  const events: FeedEvent[] = [];
  for (;;) {
    const page = await feedPage(after);
    events.push(...page.data);
    after = page.next_cursor;
    if (!page.has_more) return { events, cursor: after };
  }
}

describe(`event feed GET /v1/events (${dbKind})`, () => {
  it('concurrent transitions from several connections reach a reader following `after` once each, in commit order', async () => {
    const { cursor: start } = await follow();
    const ids = await newJobs(40);
    const writers = 4;
    // A clock of client-side moments: a transition that committed before another began must come first.
    let clock = 0;
    const moments = new Map<string, { began: number; committed: number }>();
    let writing = true;
    const writes = Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (const id of ids.filter((_, i) => i % writers === w)) {
          for (const status of ['submitted', 'processing', 'succeeded'] as const) {
            const began = ++clock;
            // Held open a random while after its event got its id, so commits overtake each other.
            const event = await transition(id, status, () => sleep(Math.random() * 8));
            moments.set(event.eventId, { began, committed: ++clock });
          }
        }
      }),
    ).finally(() => (writing = false));

    const seen: FeedEvent[] = [];
    let cursor = start;
    for (;;) {
      const finished = !writing;
      const page = await feedPage(cursor, 7);
      seen.push(...page.data);
      cursor = page.next_cursor;
      if (page.has_more) continue;
      if (finished) break;
      await sleep(2);
    }
    await writes;

    const stored = await relay.deps.db
      .select({ id: jobEvents.id, eventId: jobEvents.eventId })
      .from(jobEvents)
      .where(inArray(jobEvents.jobId, ids))
      .orderBy(asc(jobEvents.commitSeq));
    expect(stored).toHaveLength(120);
    // Every event once, in the order the commits numbered them.
    expect(seen.map((e) => e.event_id)).toEqual(stored.map((e) => e.eventId));
    for (const id of ids) expect(seen.filter((e) => e.job_id === id).map((e) => e.sequence)).toEqual([1, 2, 3]);
    const position = new Map(seen.map((e, i) => [e.event_id, i]));
    for (const [a, ma] of moments) {
      for (const [b, mb] of moments) {
        if (ma.committed < mb.began) expect(position.get(a)!).toBeLessThan(position.get(b)!);
      }
    }
    if (dbKind === 'postgres') {
      // The case that matters happened: some event committed after one with a higher id.
      expect(stored.some((e, i) => i > 0 && e.id < stored[i - 1]!.id)).toBe(true);
    }
  });

  it.skipIf(dbKind === 'pglite')('an event whose transaction commits late is not skipped by a reader that has passed higher ids', async () => {
    const { cursor: start } = await follow();
    const [j1, j2, j3] = await newJobs(3);
    // Two transactions take the lower ids and stay open; a third takes a higher id and commits.
    const [gate1, gate2, inserted1, inserted2] = [deferred(), deferred(), deferred(), deferred()];
    const t1 = transition(j1!, 'submitted', () => (inserted1.resolve(), gate1.promise));
    await inserted1.promise;
    const t2 = transition(j2!, 'submitted', () => (inserted2.resolve(), gate2.promise));
    await inserted2.promise;
    const e3 = await transition(j3!, 'submitted');

    let page = await feedPage(start);
    expect(page.data.map((e) => e.event_id)).toEqual([e3.eventId]);
    gate2.resolve();
    const e2 = await t2;
    page = await feedPage(page.next_cursor);
    expect(page.data.map((e) => e.event_id)).toEqual([e2.eventId]);
    gate1.resolve();
    const e1 = await t1;
    page = await feedPage(page.next_cursor);
    expect(page.data.map((e) => e.event_id)).toEqual([e1.eventId]);
    expect((await feedPage(page.next_cursor)).data).toEqual([]);

    expect(e1.id).toBeLessThan(e2.id);
    expect(e2.id).toBeLessThan(e3.id);
    expect((await follow(start)).events.map((e) => e.event_id)).toEqual([e3.eventId, e2.eventId, e1.eventId]);
  });

  it('a cursor the relay did not give out is a 400', async () => {
    expect((await relay.api('GET', '/v1/events?after=bogus')).status).toBe(400);
    expect((await relay.api('GET', '/v1/events/stream?after=12')).status).toBe(400);
  });
});

interface SseMessage {
  id: string;
  event: string;
  data: FeedEvent;
}

/** An SSE client over the in-process app: `take(n)` waits for the next n messages; `close()` disconnects. */
async function openStream(path: string, headers: Record<string, string> = {}) {
  const aborter = new AbortController();
  const res = await relay.app.request(path, { headers: { authorization: `Bearer ${ADMIN_KEY}`, ...headers }, signal: aborter.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const queue: SseMessage[] = [];
  return {
    async take(n: number): Promise<SseMessage[]> {
      while (queue.length < n) {
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        buffer += decoder.decode(value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
          }
          if (fields.has('data')) queue.push({ id: fields.get('id')!, event: fields.get('event')!, data: JSON.parse(fields.get('data')!) });
        }
      }
      return queue.splice(0, n);
    },
    close() {
      aborter.abort();
      void reader.cancel().catch(() => {});
    },
  };
}

describe(`event stream GET /v1/events/stream (${dbKind})`, () => {
  it('resumes after a disconnect with Last-Event-ID and misses nothing', async () => {
    const { cursor: start } = await follow();
    // Counts the streams listening, to see each one stop when its client goes.
    const notifier = relay.deps.database.notifier;
    const subscribe = notifier.subscribe;
    let listening = 0;
    notifier.subscribe = (channel: Channel, fn: (payload: string) => void) => {
      const off = subscribe(channel, fn);
      if (channel !== 'relay_events') return off;
      listening++;
      return () => {
        listening--;
        off();
      };
    };
    try {
      const ids = await newJobs(20);
      const first = await openStream(`/v1/events/stream?after=${start}`);
      const writes = (async () => {
        for (const id of ids) {
          for (const status of ['submitted', 'processing', 'succeeded'] as const) {
            await transition(id, status);
            await sleep(1);
          }
        }
      })();
      const before = await first.take(15);
      first.close();
      await until(() => listening === 0);

      const second = await openStream(`/v1/events/stream?after=${start}`, { 'last-event-id': before.at(-1)!.id });
      await writes;
      const after = await second.take(60 - before.length);
      second.close();
      await until(() => listening === 0);

      const received = [...before, ...after];
      const feed = (await follow(start)).events;
      expect(feed).toHaveLength(60);
      expect(received.map((m) => m.data)).toEqual(feed);
      for (const m of received) expect(m.event).toBe(m.data.type);
      // Each message's id is the cursor after its event.
      for (const [i, m] of received.entries()) {
        if (i % 10 === 0) expect((await feedPage(m.id, 1)).data[0]).toEqual(feed[i + 1]);
      }
      expect((await feedPage(received.at(-1)!.id)).data).toEqual([]);
    } finally {
      notifier.subscribe = subscribe;
    }
  });
});

async function until(cond: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}
