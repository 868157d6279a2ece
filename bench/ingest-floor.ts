/**
 * The ingest benchmark's floor: what the relay's storage model alone costs, with none of its logic.
 * Each callback writes what the relay writes for it — the job's row updated, an event with the job
 * as it now is, a receipt with the request's headers and body — into the relay's own schema
 * (migrations, indexes, foreign keys and triggers), batched across requests like the relay's
 * group commit: one statement per batch, no read of the job first, no version check, no ruling on
 * the status, no token check, no JSON parsing in Node. The relay cannot be faster than this on the
 * same schema; the gap between the two is what its logic costs. Run by bench/ingest.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import postgres from 'postgres';
import { openDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';

const url = process.env.DATABASE_URL!;
const database = await openDatabase({ databaseUrl: url, poolSize: 2 });
await migrate(database);
await database.close();

const sql = postgres(url, { max: 10, onnotice: () => {} });

interface Item {
  jobId: string;
  headers: string;
  body: Buffer;
  done: (err?: unknown) => void;
}

const MAX_BATCH = 200;
const CONCURRENCY = Number(process.env.FLOOR_CONCURRENCY ?? 2);
const SPILL_AT = Number(process.env.FLOOR_SPILL ?? 16);
let queue: Item[] = [];
let writers = 0;

async function drain() {
  writers++;
  try {
    while (queue.length) {
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(MAX_BATCH);
      try {
        await write(batch);
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
  } finally {
    writers--;
  }
}

function write(batch: Item[]) {
  const ids = batch.map((b) => b.jobId);
  const headers = batch.map((b) => b.headers);
  const bodies = batch.map((b) => b.body.toString('base64'));
  return sql`
    with input as (
      select * from unnest(${ids}::text[], ${headers}::text[], ${bodies}::text[]) as i(id, headers, body)
    ),
    changed as (
      update jobs j set
        status = 'succeeded', progress = 100,
        result = jsonb_build_object('video_urls', jsonb_build_array('https://file.example/v.mp4'), 'raw', convert_from(decode(i.body, 'base64'), 'utf8')::jsonb),
        error = null, completed_at = now(), due_at = null, lease_until = null,
        event_seq = j.event_seq + 1, updated_at = now()
      from input i where j.id = i.id
      returning j.*
    ),
    appended as (
      insert into job_events (event_id, job_id, sequence, type, data)
      select 'evt_' || replace(gen_random_uuid()::text, '-', ''), c.id, c.event_seq, 'job.succeeded', to_jsonb(c) - 'input' - 'idempotency_key'
      from changed c
    )
    insert into callback_receipts (provider, job_id, route, verdict, headers, body, body_size)
    select 'veo', i.id, 'job', 'applied', i.headers::jsonb, decode(i.body, 'base64'), length(decode(i.body, 'base64'))
    from input i`.execute();
}

function handle(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const jobId = (req.url ?? '').split('/')[3] ?? '';
    const item: Item = {
      jobId,
      headers: JSON.stringify(req.headers),
      body: Buffer.concat(chunks),
      done: (err) => {
        res.writeHead(err ? 503 : 200, { 'content-type': 'application/json' });
        res.end(err ? '{"error":"unavailable"}' : '{"ok":true}');
      },
    };
    queue.push(item);
    if (writers === 0 || (writers < CONCURRENCY && queue.length >= SPILL_AT)) void drain();
  });
}

createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/callbacks/')) return handle(req, res);
  res.writeHead(200).end('ok');
}).listen(Number(process.env.PORT), '127.0.0.1');
