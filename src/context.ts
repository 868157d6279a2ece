import type { Principal } from './auth/keys.js';
import type { Config } from './config.js';
import type { Database, Db } from './db/client.js';
import type { Logger } from './ops/logger.js';
import type { Metrics } from './ops/metrics.js';
import type { Providers } from './providers/index.js';

/** What request handlers need from the running service; reaches them through the Hono context. */
export interface Deps {
  config: Config;
  database: Database;
  db: Db;
  providers: Providers;
  /** Server secret for callback tokens. */
  secret: string;
  log: Logger;
  /** Counters and histograms every flow writes to; `GET /metrics` renders them. */
  metrics: Metrics;
  /** Aborted when the relay starts shutting down: long-polls and event streams end at once. */
  closing: AbortSignal;
}

export type AppEnv = {
  Variables: {
    deps: Deps;
    principal: Principal;
    requestId: string;
    log: Logger;
  };
};
