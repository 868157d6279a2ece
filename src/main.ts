import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './db/lock.js';
import { createLogger, redactQueryParams } from './ops/logger.js';
import { startRelay } from './server.js';

/** `npm start`: config → relay; a clean stop on SIGTERM/SIGINT, a second signal exits at once. */
async function main() {
  const startedAt = performance.now();
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const relay = await startRelay(config, log);
  if (relay.bootstrapKey) {
    process.stderr.write(
      `\nNo API key existed, so an admin key was created. It is shown this once; keep it safe:\n\n    ${relay.bootstrapKey}\n\n` +
        'Use it as "Authorization: Bearer <key>"; create narrower keys with: npm run cli -- keys create --name NAME --scopes jobs:read\n\n',
    );
  }
  log.info(
    {
      url: relay.url,
      database: relay.deps.database.kind,
      providers: [...relay.deps.providers.keys()],
      startup_ms: Math.round(performance.now() - startedAt),
    },
    'callback-relay ready',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown took too long: exiting');
      process.exit(1);
    }, 15_000).unref();
    relay.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  if (err instanceof ConfigError || err instanceof DataDirLockedError) {
    process.stderr.write(`callback-relay: ${err.message}\n`);
  } else {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`callback-relay failed to start: ${redactQueryParams(text)}\n`);
  }
  process.exit(1);
});
