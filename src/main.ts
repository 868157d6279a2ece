import { serve } from '@hono/node-server';
import { createApp } from './app.js';
import { ensureBootstrapKey } from './auth/keys.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/client.js';
import { DataDirLockedError } from './db/lock.js';
import { migrate } from './db/migrate.js';
import { loadServerSecret } from './db/settings.js';
import { createLogger } from './ops/logger.js';
import { createProviders, UnsupportedKindError } from './providers/index.js';

/** Start-up: config → database → migrate → HTTP server; a clean stop on SIGTERM/SIGINT. */
async function main() {
  const startedAt = performance.now();
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const providers = createProviders(config.providers.values());

  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  await migrate(database);
  const secret = await loadServerSecret(database.db, config.secret);
  const bootstrapKey = await ensureBootstrapKey(database, config.adminKey);
  if (bootstrapKey) {
    process.stderr.write(
      `\nNo API key existed, so an admin key was created. It is shown this once; keep it safe:\n\n    ${bootstrapKey}\n\n` +
        'Use it as "Authorization: Bearer <key>"; create narrower keys with: npm run cli -- keys create --name NAME --scopes jobs:read\n\n',
    );
  }

  const app = createApp({ config, database, db: database.db, providers, secret, log });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) => {
    log.info(
      {
        port: info.port,
        host: config.host,
        database: database.kind,
        providers: [...providers.keys()],
        startup_ms: Math.round(performance.now() - startedAt),
      },
      'callback-relay ready',
    );
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => process.exit(1), 10_000);
    deadline.unref();
    server.close(async () => {
      await database.close().catch((err) => log.error({ err }, 'closing the database failed'));
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  if (err instanceof ConfigError || err instanceof DataDirLockedError || err instanceof UnsupportedKindError) {
    process.stderr.write(`callback-relay: ${err.message}\n`);
  } else {
    process.stderr.write(`callback-relay failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
