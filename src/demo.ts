import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFileConfig, type Config, type ProviderConfig, type ProviderKind } from './config.js';
import { type Emulator, startEmulator } from './emulators/index.js';
import { signature } from './fanout/signing.js';
import { createLogger } from './ops/logger.js';
import { startRelay } from './server.js';
import { freePort } from './http/free-port.js';

/**
 * `npm run demo`: the relay on a throw-away PGlite database, with a loopback emulator for each
 * provider kind, running a handful of jobs through each (a success, a failure, a refused request,
 * a duplicate callback) and printing what happened, with a subscriber webhook on loopback that
 * checks the signature of every delivery it receives. No provider account needed.
 */

const ADMIN_KEY = 'demo-admin-key-not-for-production';
const TOAPIS_SECRET = 'demo-toapis-webhook-secret';

interface DemoJob {
  provider: string;
  label: string;
  body: Record<string, unknown>;
}

const jobs: DemoJob[] = [
  { provider: 'veo-a', label: 'text to video', body: { prompt: 'A drone shot over mountains at sunset', resolution: '720p' } },
  { provider: 'veo-a', label: 'provider fails it', body: { prompt: 'FAIL: a forbidden scene' } },
  { provider: 'veo-a', label: 'first and last frame', body: { prompt: 'Walk from the park to the city', images: ['https://img.example/a.png', 'https://img.example/b.png'] } },
  { provider: 'omni', label: 'portrait, 10 s', body: { prompt: 'A cat on a windowsill', aspect_ratio: '9:16', duration: 10 } },
  { provider: 'omni', label: 'provider fails it', body: { prompt: 'FAIL please' } },
  { provider: 'omni', label: 'refused: 8 s is not allowed', body: { prompt: 'A cat', duration: 8 } },
  { provider: 'veo-fast', label: 'poll-only, 1080p', body: { model: 'veo3.1-fast-video-1080p', prompt: 'A street interview', resolution: '1080p', duration: 8 } },
  { provider: 'veo-fast', label: 'provider fails it', body: { model: 'veo3.1-video-720p', prompt: 'FAIL again' } },
  { provider: 'gemini', label: 'poll-only, keyed video', body: { model: 'veo-3.1-fast-generate-preview', prompt: 'Butterflies in a garden' } },
  { provider: 'gemini', label: 'refused: allow_all', body: { model: 'veo-3.1-fast-generate-preview', prompt: 'People', provider_options: { personGeneration: 'allow_all' } } },
];


/** A webhook receiver on loopback: per job, the event types received, each with its signature checked. */
async function startReceiver() {
  const received = new Map<string, string[]>();
  let secret = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id']);
      const ts = Number(req.headers['webhook-timestamp']);
      const expected = signature(secret, id, ts, body);
      const ok = String(req.headers['webhook-signature']).split(' ').includes(expected);
      const event = JSON.parse(body) as { type: string; data: { job: { id: string } } };
      const list = received.get(event.data.job.id) ?? [];
      list.push(`${event.type.replace('job.', '')}${ok ? ' (signed)' : ' (BAD SIGNATURE)'}`);
      received.set(event.data.job.id, list);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    useSecret: (s: string) => void (secret = s),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(rows[0]!), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

async function main() {
  const emulators: Record<string, Emulator> = {};
  const kinds: Record<string, ProviderKind> = { 'veo-a': 'aivideoapi', omni: 'toapis', 'veo-fast': 'video-generations', gemini: 'openai-videos' };
  for (const [name, kind] of Object.entries(kinds)) {
    emulators[name] = await startEmulator(kind, { durationMs: 1500, webhookSecret: kind === 'toapis' ? TOAPIS_SECRET : undefined });
  }
  // aivideoapi's emulator sends every callback twice: the relay must store both and apply one.
  emulators['veo-a']!.behaviour.callbacks = 'duplicate';

  const dataDir = mkdtempSync(join(tmpdir(), 'relay-demo-'));
  const port = await freePort();
  const providers = Object.fromEntries(
    Object.entries(kinds).map(([name, kind]) => [
      name,
      { kind, base_url: emulators[name]!.baseUrl, api_key: emulators[name]!.apiKey, ...(kind === 'toapis' ? { webhook_secret: TOAPIS_SECRET } : {}) },
    ]),
  );
  // The demo's webhook receiver is on loopback, which production refuses.
  const file = parseFileConfig(JSON.stringify({ providers, delivery: { allow_private_targets: true } }), {});
  const config: Config = {
    port,
    host: '127.0.0.1',
    databaseUrl: undefined,
    dataDir,
    publicBaseUrl: `http://127.0.0.1:${port}`,
    adminKey: ADMIN_KEY,
    secret: undefined,
    logLevel: 'silent',
    providers: new Map<string, ProviderConfig>(Object.entries(file.providers).map(([n, p]) => [n, { ...p, name: n }])),
    delivery: file.delivery,
  };
  const started = Date.now();
  const relay = await startRelay(config, createLogger('warn'));
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${relay.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as any };
  };
  process.stdout.write(`relay on ${relay.url} (PGlite in ${dataDir}); emulated providers: ${Object.entries(kinds).map(([n, k]) => `${n} (${k})`).join(', ')}\n\n`);
  const receiver = await startReceiver();

  try {
    const subscription = await api('POST', '/v1/subscriptions', { url: receiver.url, description: 'the demo receiver' });
    receiver.useSecret(subscription.json.secret as string);
    const submitted = await Promise.all(
      jobs.map(async (j) => ({ ...j, res: await api('POST', '/v1/jobs', { provider: j.provider, ...j.body }) })),
    );
    const terminal = new Set(['succeeded', 'failed', 'canceled', 'expired']);
    const results = await Promise.all(
      submitted.map(async (j) => {
        if (j.res.status !== 202) return { ...j, job: null };
        const id = j.res.json.id as string;
        const pollOnly = !config.providers.get(j.provider)!.callbacks;
        const deadline = Date.now() + 20_000;
        for (;;) {
          // Poll-only providers are asked with refresh here; callback providers call the relay back.
          const { json } = pollOnly ? await api('POST', `/v1/jobs/${id}/refresh`) : await api('GET', `/v1/jobs/${id}`);
          if ((json.status && terminal.has(json.status)) || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 250));
        }
        const job = (await api('GET', `/v1/jobs/${id}`)).json;
        await new Promise((r) => setTimeout(r, 300)); // let a duplicate callback land
        const events = (await api('GET', `/v1/jobs/${id}/events`)).json.data.map((e: any) => e.type.replace('job.', ''));
        const callbacks = (await api('GET', `/v1/jobs/${id}/callbacks`)).json.data.map((c: any) => c.verdict);
        return { ...j, job, events, callbacks };
      }),
    );

    // The outcome of every job is delivered to the subscriber; give the last ones a moment.
    const finished = results.filter((r) => r.job && terminal.has(r.job.status));
    const deliveredBy = Date.now() + 5000;
    while (finished.some((r) => !receiver.received.has(r.job.id)) && Date.now() < deliveredBy) {
      await new Promise((r) => setTimeout(r, 50));
    }

    const rows = [['provider', 'kind', 'case', 'answer', 'status', 'events', 'callbacks (verdicts)', 'webhooks received', 'result / error']];
    for (const r of results) {
      const outcome = !r.job
        ? `${r.res.json.error.details?.[0]?.rule ?? r.res.json.error.code}`
        : r.job.status === 'succeeded'
          ? r.job.result.video_urls[0]?.replace(/^https?:\/\/[^/]+/, '') ?? ''
          : (r.job.error?.code ?? '');
      rows.push([
        r.provider,
        kinds[r.provider]!,
        r.label,
        String(r.res.status),
        r.job?.status ?? '—',
        'events' in r ? (r.events as string[]).join(' → ') : '—',
        'callbacks' in r ? ((r.callbacks as string[]).join(', ') || 'none (polled)') : '—',
        r.job ? (receiver.received.get(r.job.id)?.join(', ') ?? 'none') : '—',
        outcome,
      ]);
    }
    process.stdout.write(`${table(rows)}\n\n`);
    const calls = Object.entries(emulators).map(([n, e]) => `${n}: ${e.submits()} submits, ${e.requests.length} requests`);
    process.stdout.write(`provider traffic: ${calls.join('; ')}\n`);
    process.stdout.write(`done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    const expected = results.every((r) =>
      r.job
        ? (r.body.prompt as string).includes('FAIL') === (r.job.status === 'failed') &&
          terminal.has(r.job.status) &&
          receiver.received.get(r.job.id)?.join() === `${r.job.status} (signed)`
        : r.res.status === 400,
    );
    if (!expected) {
      process.stdout.write('\nsome jobs did not end as expected\n');
      process.exitCode = 1;
    }
  } finally {
    await relay.stop();
    await receiver.close();
    await Promise.all(Object.values(emulators).map((e) => e.close()));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
