import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './db/lock.js';
import { createLogger, redactQueryParams } from './ops/logger.js';
import { startRelay } from './server.js';
import { setFlagsFromString } from 'node:v8';

/**
 * Let V8's old generation grow to 1.5× what the last full collection left live, not its default of
 * up to 4×. Under load the relay's heap is mostly short-lived garbage, and the default let the
 * process keep 60–80 MB of it (RSS 140–175 MiB at the end of the ingest bench; 105–125 MiB with
 * this, at the same throughput). V8 reads the flag at every collection, so setting it here works;
 * a `--heap-growing-percent` given on the command line wins.
 */
if (!process.execArgv.some((a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) {
  setFlagsFromString('--heap-growing-percent=50');
}

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
