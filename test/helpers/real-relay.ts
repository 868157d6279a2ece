import { parseFileConfig, type Config, type ProviderConfig } from '../../src/config.js';
import { createLogger } from '../../src/ops/logger.js';
import { type RunningRelay, startRelay } from '../../src/server.js';
import { createScratchDatabase, TEST_DATABASE_URL } from './db.js';
import { ADMIN_KEY, SECRET } from './relay.js';
import { freePort } from '../../src/http/free-port.js';


export interface RealRelay extends RunningRelay {
  /** A fetch against the relay with the admin key. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Polls GET /v1/jobs/{id} until `done(job)` or the timeout. */
  waitFor(id: string, done: (job: any) => boolean, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

/**
 * The whole relay (HTTP server on loopback and workers) over a fresh database: in-memory PGlite, or
 * a scratch database on TEST_DATABASE_URL. `databaseUrl` shares an existing one (multi-process tests).
 */
export async function startRealRelay(
  providers: Record<string, unknown>,
  opts: { databaseUrl?: string } = {},
): Promise<RealRelay> {
  const file = parseFileConfig(JSON.stringify({ providers, delivery: { allow_private_targets: true } }), {});
  const port = await freePort();
  const scratch = !opts.databaseUrl && TEST_DATABASE_URL ? await createScratchDatabase() : undefined;
  const config: Config = {
    port,
    host: '127.0.0.1',
    databaseUrl: opts.databaseUrl ?? scratch?.url,
    dataDir: 'memory://',
    publicBaseUrl: `http://127.0.0.1:${port}`,
    adminKey: ADMIN_KEY,
    secret: SECRET,
    logLevel: 'silent',
    providers: new Map<string, ProviderConfig>(Object.entries(file.providers).map(([name, p]) => [name, { ...p, name }])),
    delivery: file.delivery,
  };
  const relay = await startRelay(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'));
  const api: RealRelay['api'] = (method, path, body, headers = {}) =>
    fetch(`${relay.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return {
    ...relay,
    api,
    async waitFor(id, done, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let job: any;
      while (Date.now() < deadline) {
        job = await (await api('GET', `/v1/jobs/${id}`)).json();
        if (done(job)) return job;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`job ${id} did not get there in ${timeoutMs} ms; last seen: ${JSON.stringify(job)}`);
    },
    async close() {
      await relay.stop();
      await scratch?.drop();
    },
  };
}
