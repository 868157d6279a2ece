/**
 * The fan-out benchmark's baseline: graphile-worker 0.17 doing the relay's delivery work — one job
 * per delivery, each a Standard Webhooks-signed POST of the same body to the same sink, keep-alive.
 * Run as a child process by bench/fanout.ts: it queues TOTAL jobs, says "queued", and starts its
 * worker pool on "go" so only the draining is timed.
 */
import http from 'node:http';
import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import { deliveryBody } from '../src/fanout/payload.js';
import { generateSecret, signPayload } from '../src/fanout/signing.js';

const url = process.env.DATABASE_URL!;
const sink = new URL(process.env.SINK_URL!);
const total = Number(process.env.TOTAL);
const concurrency = Number(process.env.CONCURRENCY ?? 32);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const secret = generateSecret();

function post(body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(sink, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const utils = await makeWorkerUtils({ connectionString: url, logger: new Logger(() => () => {}) });
await utils.migrate();
for (let i = 0; i < total; i += 1000) {
  const n = Math.min(1000, total - i);
  await utils.addJobs(
    Array.from({ length: n }, (_, k) => ({
      identifier: 'deliver',
      payload: { eventId: `evt_${i + k}`, sequence: 2, job: { id: `job_${i + k}`, status: 'succeeded', metadata: {} } },
    })),
  );
}
await utils.release();
process.send!('queued');
await new Promise<void>((resolve) => process.once('message', () => resolve()));

const runner = await run({
  connectionString: url,
  concurrency,
  maxPoolSize: concurrency + 2,
  noHandleSignals: true,
  pollInterval: 1000,
  // Its default logger writes a line per job; the relay logs none, so neither does the baseline.
  logger: new Logger(() => () => {}),
  taskList: {
    async deliver(payload) {
      const p = payload as { eventId: string; sequence: number; job: Record<string, unknown> };
      const body = deliveryBody({ eventId: p.eventId, type: 'job.succeeded', sequence: p.sequence, data: p.job, createdAt: new Date() });
      const ts = Math.floor(Date.now() / 1000);
      const status = await post(body, {
        'content-type': 'application/json',
        'webhook-id': p.eventId,
        'webhook-timestamp': String(ts),
        'webhook-signature': signPayload([secret], p.eventId, ts, body),
      });
      if (status < 200 || status >= 300) throw new Error(`HTTP ${status}`);
    },
  },
});
process.once('message', async () => {
  await runner.stop();
  process.exit(0);
});
