/**
 * The ingest benchmark's baseline: the least a callback endpoint can do — a Hono handler that reads
 * the raw body and INSERTs it with postgres.js, one statement per request. Run by bench/ingest.ts.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';

const sql = postgres(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} });
await sql`create table if not exists raw_callbacks (id bigserial primary key, path text not null, body bytea not null, received_at timestamptz not null default now())`;
const app = new Hono();
app.post('/callbacks/*', async (c) => {
  const body = Buffer.from(await c.req.arrayBuffer());
  await sql`insert into raw_callbacks (path, body) values (${c.req.path}, ${body})`;
  return c.json({ ok: true });
});
app.get('/healthz', (c) => c.text('ok'));
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' });
