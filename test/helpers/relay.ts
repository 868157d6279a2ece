import { createApp } from '../../src/app.js';
import { createApiKey, type Scope } from '../../src/auth/keys.js';
import { parseFileConfig, type Config, type ProviderConfig } from '../../src/config.js';
import type { Deps } from '../../src/context.js';
import { createLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { createProviders } from '../../src/providers/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';

export const ADMIN_KEY = 'test-admin-key-0123456789';
export const SECRET = 'test-server-secret-0123456789';

export interface TestRelay {
  app: ReturnType<typeof createApp>;
  deps: Deps;
  testDb: TestDatabase;
  /** A request with the admin key (or `key`) as bearer. */
  api(method: string, path: string, body?: unknown, key?: string): Promise<Response>;
  keyWith(...scopes: Scope[]): Promise<string>;
  close(): Promise<void>;
}

/** The relay's HTTP app over a fresh test database, with the given providers file section. */
export async function startTestRelay(providers: Record<string, unknown>): Promise<TestRelay> {
  const file = parseFileConfig(JSON.stringify({ providers, delivery: { allow_private_targets: true } }), {});
  const providerMap = new Map<string, ProviderConfig>(Object.entries(file.providers).map(([name, p]) => [name, { ...p, name }]));
  const config: Config = {
    port: 0,
    host: '127.0.0.1',
    databaseUrl: undefined,
    dataDir: 'memory://',
    publicBaseUrl: 'http://relay.test',
    adminKey: ADMIN_KEY,
    secret: SECRET,
    logLevel: 'silent',
    providers: providerMap,
    delivery: file.delivery,
  };
  const testDb = await createTestDatabase();
  const metrics = createMetrics();
  const deps: Deps = {
    config,
    database: testDb.database,
    db: testDb.database.db,
    providers: createProviders(providerMap.values(), fetch, metrics.providerCallLatency),
    secret: SECRET,
    log: createLogger('silent'),
    metrics,
    closing: new AbortController().signal,
  };
  const app = createApp(deps);
  return {
    app,
    deps,
    testDb,
    api: (method, path, body, key = ADMIN_KEY) =>
      Promise.resolve(
        app.request(path, {
          method,
          headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
      ),
    async keyWith(...scopes) {
      return (await createApiKey(deps.db, { name: 'test', scopes })).key;
    },
    close: () => testDb.cleanup(),
  };
}
