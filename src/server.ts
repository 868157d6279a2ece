import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { callbackListener, createCallbackServices } from './callbacks/listener.js';
import { createApp } from './app.js';
import { ensureBootstrapKey } from './auth/keys.js';
import { type Config, retentionOf } from './config.js';
import type { Deps } from './context.js';
import { openDatabase } from './db/client.js';
import { migrate } from './db/migrate.js';
import { loadServerSecret } from './db/settings.js';
import { notifyUrlSecret } from './fanout/signing.js';
import { countDelivery, registerDeliveryDepths } from './fanout/queue-depths.js';
import { startDeliveryWorker } from './fanout/worker.js';
import { startPollWorker } from './jobs/poll-worker.js';
import { startSubmitWorker } from './jobs/submit-worker.js';
import { startRetention } from './ops/retention.js';
import type { Logger } from './ops/logger.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { createProviders } from './providers/index.js';

export interface RunningRelay {
  /** The address it listens on, e.g. `http://127.0.0.1:8080`. */
  url: string;
  deps: Deps;
  metrics: Metrics;
  /** The admin key made on a first start with no key at all, to be shown once. */
  bootstrapKey: string | null;
  /** Stops accepting, lets in-flight requests and work finish, closes the database. */
  stop(): Promise<void>;
}

/** Everything `npm start` runs: database, migrations, HTTP server and background workers. */
export async function startRelay(config: Config, log: Logger): Promise<RunningRelay> {
  const metrics = createMetrics();
  const providers = createProviders(config.providers.values(), fetch, metrics.providerCallLatency);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolMax });
  try {
    await migrate(database);
    const secret = await loadServerSecret(database.db, config.secret);
    const bootstrapKey = await ensureBootstrapKey(database, config.adminKey);
    const closing = new AbortController();
    // Every long-poll and event stream listens for shutdown on this one signal.
    setMaxListeners(0, closing.signal);
    const deps: Deps = { config, database, db: database.db, providers, secret, log, metrics, closing: closing.signal };

    const callbacks = createCallbackServices(deps);
    const app = createApp(deps, { callbacks });
    const direct = callbackListener(deps, callbacks);
    const viaApp = getRequestListener(app.fetch);
    const server = createServer((req, res) => {
      if (!direct(req, res)) void viaApp(req, res);
    });
    server.listen(config.port, config.host);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const { port } = server.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;

    const workerContext = { db: database.db, providers, notifier: database.notifier, publicBaseUrl: config.publicBaseUrl, log, metrics };
    const submitWorker = startSubmitWorker({ ...workerContext, secret });
    const pollWorker = startPollWorker(workerContext);
    const deliveryWorker = startDeliveryWorker({
      db: database.db,
      notifier: database.notifier,
      log,
      delivery: config.delivery,
      notifySecret: notifyUrlSecret(secret),
      onRecorded: (outcome) => countDelivery(metrics, outcome),
    });
    registerDeliveryDepths(metrics.queueDepths);
    const retention = startRetention({
      db: database.db,
      config: retentionOf(config),
      log,
      onPruned: (counts) => {
        for (const [table, n] of Object.entries(counts)) if (n) metrics.pruned.inc({ table }, n);
      },
    });

    return {
      url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      deps,
      metrics,
      bootstrapKey,
      async stop() {
        // Waiters and streams answer now; workers stop claiming (what they hold finishes) while the server drains.
        closing.abort();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Idle keep-alive connections would hold close() open; requests in flight finish first.
        server.closeIdleConnections();
        await Promise.all([closed, submitWorker.stop(), pollWorker.stop(), deliveryWorker.stop(), retention.stop()]);
        await database.close();
      },
    };
  } catch (err) {
    await database.close().catch(() => {});
    throw err;
  }
}
