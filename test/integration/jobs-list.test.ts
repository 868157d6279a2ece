import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobs, type JobStatus } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { dbKind } from '../helpers/db.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

let relay: TestRelay;

beforeAll(async () => {
  relay = await startTestRelay({});
});
afterAll(() => relay?.close());

interface ListedJob {
  id: string;
  provider: string;
  status: JobStatus;
  metadata: Record<string, string>;
  created_at: string;
}
interface JobPage {
  data: ListedJob[];
  next_cursor: string | null;
}
interface ErrorAnswer {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

type Query = [string, string][];

async function list(query: Query, key?: string): Promise<Response> {
  const qs = new URLSearchParams(query).toString();
  return relay.api('GET', `/v1/jobs${qs ? `?${qs}` : ''}`, undefined, key);
}

async function listPage(query: Query): Promise<JobPage> {
  const res = await list(query);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as JobPage;
}

/** Follows `next_cursor` to the end; `between` runs after each page. */
async function listAll(query: Query, between: () => Promise<void> = async () => {}): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: JobPage = await listPage(cursor ? [...query, ['cursor', cursor]] : query);
    ids.push(...page.data.map((j) => j.id));
    pages++;
    cursor = page.next_cursor;
    await between();
  } while (cursor);
  return { ids, pages };
}

async function expectInvalid(res: Response, field: string) {
  expect(res.status).toBe(400);
  const { error } = (await res.json()) as ErrorAnswer;
  expect(error.code).toBe('invalid_request');
  expect(error.details?.map((d) => d.field).join(' ')).toContain(field);
}

type NewJob = typeof jobs.$inferInsert;
const job = (createdAt: Date, fields: Partial<NewJob> = {}): NewJob => ({
  id: newId('job', createdAt.getTime()),
  provider: 'page',
  status: 'submitted',
  createdAt,
  ...fields,
});

describe(`GET /v1/jobs paging (${dbKind})`, () => {
  it('pages through 1,000 jobs newest first, each exactly once, while new jobs keep arriving', async () => {
    const base = Date.parse('2024-01-01T00:00:00Z');
    const seeded = Array.from({ length: 1000 }, (_, i) => job(new Date(base + i * 1000)));
    await relay.deps.db.insert(jobs).values(seeded);

    let arrivals = 0;
    const { ids, pages } = await listAll([['limit', '50']], async () => {
      // New jobs are newer than every job already listed, so they never shift the pages still to come.
      await relay.deps.db.insert(jobs).values([{ id: newId('job'), provider: 'page', status: 'queued' }]);
      arrivals++;
    });

    const newestFirst = [...seeded].reverse().map((j) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => newestFirst.includes(id))).toEqual(newestFirst);
    expect(pages).toBeGreaterThanOrEqual(20);
    expect(arrivals).toBe(pages);
  });

  it('jobs created within the same millisecond, or at the same instant, are neither skipped nor repeated', async () => {
    // A cursor holding a JS Date (milliseconds) would skip the later microseconds of the same millisecond.
    const times = ['2023-05-05T00:00:00.123001Z', '2023-05-05T00:00:00.123002Z', '2023-05-05T00:00:00.123999Z'];
    const rows = times.flatMap((t, n) =>
      ['a', 'b'].map((suffix) => ({ id: `job_same_ms_${n}_${suffix}`, provider: 'same-ms', status: 'queued' as const, createdAt: sql`${t}::timestamptz` })),
    );
    await relay.deps.db.insert(jobs).values(rows);
    const expected = rows.map((r) => r.id).reverse();
    for (const limit of ['1', '2', '4']) {
      const { ids } = await listAll([['provider', 'same-ms'], ['limit', limit]]);
      expect(ids, `limit ${limit}`).toEqual(expected);
    }
  });

  it('defaults to 50 a page and allows up to 200', async () => {
    const first = await listPage([]);
    expect(first.data).toHaveLength(50);
    expect(first.next_cursor).toEqual(expect.any(String));
    const big = await listPage([['limit', '200']]);
    expect(big.data).toHaveLength(200);
    expect(big.data.slice(0, 50).map((j) => j.id)).toEqual(first.data.map((j) => j.id));
  });

  it('the last page has a null cursor, and so does an empty list', async () => {
    const last = await listPage([['provider', 'same-ms'], ['limit', '6']]);
    expect(last.data).toHaveLength(6);
    expect(last.next_cursor).toBeNull();
    expect(await listPage([['provider', 'nobody']])).toEqual({ data: [], next_cursor: null });
  });

  it('lists jobs in the same shape as GET /v1/jobs/{id}', async () => {
    const { data } = await listPage([['limit', '1']]);
    const one = await relay.api('GET', `/v1/jobs/${data[0]!.id}`);
    expect(data[0]).toEqual(await one.json());
  });
});

describe(`GET /v1/jobs filters (${dbKind})`, () => {
  const t = (minute: number) => new Date(Date.parse('2025-03-01T12:00:00Z') + minute * 60_000);
  const fixtures = [
    job(t(0), { id: 'job_f_0', provider: 'flt-a', status: 'succeeded', metadata: { order_id: 'A-17', team: 'red' } }),
    job(t(1), { id: 'job_f_1', provider: 'flt-a', status: 'failed', metadata: { order_id: 'A-17', team: 'blue' } }),
    job(t(2), { id: 'job_f_2', provider: 'flt-b', status: 'processing', metadata: { order_id: 'B-2', team: 'red' } }),
    job(t(3), { id: 'job_f_3', provider: 'flt-b', status: 'succeeded', metadata: { 'team name': 'x y&z' } }),
    job(t(4), { id: 'job_f_4', provider: 'flt-a', status: 'canceled', metadata: {} }),
  ];
  // Restricts each query to this block's jobs, so jobs made by other tests do not matter.
  const window: Query = [
    ['created_after', t(-1).toISOString()],
    ['created_before', t(5).toISOString()],
  ];
  const ids = async (query: Query) => (await listAll([...window, ...query])).ids;

  beforeAll(async () => {
    await relay.deps.db.insert(jobs).values(fixtures);
  });

  it('status: one, repeated, comma-separated, or both', async () => {
    expect(await ids([['status', 'succeeded']])).toEqual(['job_f_3', 'job_f_0']);
    expect(await ids([['status', 'succeeded'], ['status', 'failed']])).toEqual(['job_f_3', 'job_f_1', 'job_f_0']);
    expect(await ids([['status', 'succeeded,failed']])).toEqual(['job_f_3', 'job_f_1', 'job_f_0']);
    expect(await ids([['status', 'succeeded, canceled'], ['status', 'processing']])).toEqual(['job_f_4', 'job_f_3', 'job_f_2', 'job_f_0']);
  });

  it('provider', async () => {
    expect(await ids([['provider', 'flt-b']])).toEqual(['job_f_3', 'job_f_2']);
  });

  it('created_after and created_before are exclusive bounds', async () => {
    const { ids: between } = await listAll([
      ['created_after', t(1).toISOString()],
      ['created_before', t(4).toISOString()],
    ]);
    expect(between).toEqual(['job_f_3', 'job_f_2']);
    const { ids: withOffset } = await listAll([
      ['created_after', '2025-03-01T14:02:30+02:00'],
      ['created_before', t(5).toISOString()],
    ]);
    expect(withOffset).toEqual(['job_f_4', 'job_f_3']);
    const { ids: atBound } = await listAll([
      ['created_after', t(0).toISOString()],
      ['created_before', t(0).toISOString()],
    ]);
    expect(atBound).toEqual([]);
  });

  it('metadata equality, several keys AND-ed', async () => {
    expect(await ids([['metadata[order_id]', 'A-17']])).toEqual(['job_f_1', 'job_f_0']);
    expect(await ids([['metadata[order_id]', 'A-17'], ['metadata[team]', 'red']])).toEqual(['job_f_0']);
    expect(await ids([['metadata[team name]', 'x y&z']])).toEqual(['job_f_3']);
    expect(await ids([['metadata[order_id]', 'A-1']])).toEqual([]);
    // A key named like an object property is a filter like any other, not silently ignored.
    expect(await ids([['metadata[__proto__]', 'x']])).toEqual([]);
  });

  it('filters combine, and paging keeps them', async () => {
    expect(await ids([['provider', 'flt-a'], ['status', 'succeeded,failed,canceled'], ['metadata[order_id]', 'A-17']])).toEqual([
      'job_f_1',
      'job_f_0',
    ]);
    const { ids: paged, pages } = await listAll([...window, ['provider', 'flt-a'], ['limit', '1']]);
    expect(paged).toEqual(['job_f_4', 'job_f_1', 'job_f_0']);
    expect(pages).toBe(3);
  });

  it.each<[string, Query, string]>([
    ['an unknown status', [['status', 'done']], 'status'],
    ['an empty status', [['status', '']], 'status'],
    ['a status list with a bad member', [['status', 'failed,nope']], 'status'],
    ['an empty provider', [['provider', '']], 'provider'],
    ['a created_after that is not a timestamp', [['created_after', 'yesterday']], 'created_after'],
    ['a created_before without a time', [['created_before', '2025-03-01']], 'created_before'],
    ['created_after given twice', [['created_after', '2025-03-01T00:00:00Z'], ['created_after', '2025-03-02T00:00:00Z']], 'created_after'],
    ['a limit over 200', [['limit', '201']], 'limit'],
    ['a limit of 0', [['limit', '0']], 'limit'],
    ['a limit that is not a number', [['limit', 'ten']], 'limit'],
    ['a cursor that is not base64url', [['cursor', 'not a cursor!']], 'cursor'],
    ['a cursor that is not JSON', [['cursor', Buffer.from('hello').toString('base64url')]], 'cursor'],
    ['a cursor with an impossible date', [['cursor', Buffer.from(JSON.stringify({ t: '2025-02-30T00:00:00.000000Z', i: 'job_x' })).toString('base64url')]], 'cursor'],
    ['a cursor with a date of another shape', [['cursor', Buffer.from(JSON.stringify({ t: "2025-01-01'; --", i: 'job_x' })).toString('base64url')]], 'cursor'],
    ['a cursor without an id', [['cursor', Buffer.from(JSON.stringify({ t: '2025-01-01T00:00:00.000000Z' })).toString('base64url')]], 'cursor'],
    ['a misspelt filter', [['stauts', 'failed']], 'stauts'],
    ['metadata without a key', [['metadata', 'A-17']], 'metadata'],
    ['the same metadata key twice', [['metadata[order_id]', 'A'], ['metadata[order_id]', 'B']], 'metadata[order_id]'],
  ])('%s is a 400 naming the field', async (_name, query, field) => {
    await expectInvalid(await list(query), field);
  });

  it('needs the jobs:read scope', async () => {
    expect((await list([], await relay.keyWith('jobs:read'))).status).toBe(200);
    expect((await list([], await relay.keyWith('jobs:write', 'subscriptions:manage'))).status).toBe(403);
    expect((await relay.app.request('/v1/jobs')).status).toBe(401);
  });

  it('is described in the OpenAPI document with its scope', async () => {
    const doc = (await (await relay.app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { 'x-required-scope'?: string; parameters?: { name: string }[] }>>;
    };
    const op = doc.paths['/v1/jobs']?.get;
    expect(op?.['x-required-scope']).toBe('jobs:read');
    expect(op?.parameters?.map((p) => p.name).sort()).toEqual(['created_after', 'created_before', 'cursor', 'limit', 'provider', 'status']);
  });
});
