import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { ping } from '../db/client.js';
import { withDatabaseDeadline } from '../errors.js';

const Health = z.object({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.string()).optional() });

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process is serving',
  tags: ['ops'],
  responses: { 200: { content: { 'application/json': { schema: Health } }, description: 'Alive.' } },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: the database answers and migrations are applied',
  tags: ['ops'],
  responses: {
    200: { content: { 'application/json': { schema: Health } }, description: 'Ready.' },
    503: { content: { 'application/json': { schema: Health } }, description: 'Not ready; `checks` says why.' },
  },
});

export function registerHealthRoutes(app: OpenAPIHono<AppEnv>, isMigrated: () => boolean) {
  app.openapi(healthz, (c) => c.json({ status: 'ok' as const }, 200));
  app.openapi(readyz, async (c) => {
    const checks: Record<string, string> = {};
    try {
      await withDatabaseDeadline(ping(c.var.deps.db), 1000, 'readiness check');
      checks.database = 'ok';
    } catch (err) {
      checks.database = `unreachable: ${(err as Error).message}`;
    }
    checks.migrations = isMigrated() ? 'ok' : 'pending';
    const ok = checks.database === 'ok' && checks.migrations === 'ok';
    return ok ? c.json({ status: 'ok' as const, checks }, 200) : c.json({ status: 'unavailable' as const, checks }, 503);
  });
}
