import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/http/free-port.js';
import { dbKind } from '../helpers/db.js';
import { databaseEnv, MAIN, type Relay, startRelay, waitHealthy } from '../helpers/process.js';
import { ADMIN_KEY } from '../helpers/relay.js';
import { type Sink, startSink } from '../helpers/sink.js';

describe(`fan-out survives kill -9 mid-delivery (${dbKind})`, () => {
  let dir: string;
  let env: Record<string, string>;
  let base: string;
  let sink: Sink;
  let dropDb: (() => Promise<void>) | undefined;
  const running: Relay[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error('dist/main.js is missing: run `npm run build` (npm test does it first)');
    sink = await startSink();
    dir = mkdtempSync(join(tmpdir(), 'relay-fanout-'));
    const configPath = join(dir, 'relay.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        providers: { veo: { kind: 'aivideoapi', base_url: 'http://127.0.0.1:9', api_key: 'k' } },
        // A short timeout keeps the lease (2 × timeout + 5 s) short enough for a test.
        delivery: { timeout_s: 1, retry_schedule_s: [0, 0.1, 0.1, 0.1], allow_private_targets: true },
      }),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const data = await databaseEnv(dir);
    dropDb = data.drop;
    env = { PORT: String(port), HOST: '127.0.0.1', RELAY_CONFIG: configPath, RELAY_ADMIN_KEY: ADMIN_KEY, ...data.env };
  });

  afterAll(async () => {
    for (const r of running) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await Promise.all(running.map((r) => r.exited));
    await sink?.close();
    await dropDb?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('a delivery in flight when the process dies is sent again by the next one and completes', { timeout: 60_000 }, async () => {
    const first = startRelay(env);
    running.push(first);
    await waitHealthy(base, first);

    // The first request is held open: the relay is killed while it waits for the answer.
    let arrivedWhileFirstRan: () => void;
    const arrived = new Promise<void>((r) => (arrivedWhileFirstRan = r));
    sink.on('/hook', (_req, n) => {
      if (n === 1) {
        arrivedWhileFirstRan();
        return 'hang';
      }
      return { status: 200 };
    });
    const sub = (await (await api('POST', '/v1/subscriptions', { url: sink.url('/hook') })).json()) as { id: string; secret: string };
    const job = (await (await api('POST', '/v1/jobs/track', { provider: 'veo', provider_task_id: 'crash-1' })).json()) as { id: string };
    expect((await api('POST', `/v1/jobs/${job.id}/cancel`)).status).toBe(200);
    await arrived;

    first.proc.kill('SIGKILL');
    await first.exited;

    const second = startRelay(env);
    running.push(second);
    await waitHealthy(base, second);
    const [, again] = await sink.waitFor('/hook', 2, 30_000);
    expect(new Webhook(sub.secret).verify(again!.body, {
      'webhook-id': String(again!.headers['webhook-id']),
      'webhook-timestamp': String(again!.headers['webhook-timestamp']),
      'webhook-signature': String(again!.headers['webhook-signature']),
    })).toMatchObject({ type: 'job.canceled' });
    expect(again!.headers['webhook-id']).toBe(sink.requests('/hook')[0]!.headers['webhook-id']);

    const deadline = Date.now() + 10_000;
    let delivery: any;
    do {
      await new Promise((r) => setTimeout(r, 100));
      const list = (await (await api('GET', `/v1/deliveries?subscription_id=${sub.id}`)).json()) as { data: any[] };
      delivery = list.data[0];
    } while (delivery?.status !== 'delivered' && Date.now() < deadline);
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200 });

    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
