import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { matchedRoutes } from 'hono/route';
import { errorResponse } from '../api/openapi.js';
import { secretsEqual } from '../callbacks/tokens.js';
import type { AppEnv } from '../context.js';
import type { Db } from '../db/client.js';
import { AppError } from '../errors.js';
import type { Logger } from './logger.js';
import { type ComputedMetric, type Metrics, renderPrometheus } from './metrics.js';
import { processGauges } from './process-metrics.js';

const DEPTH_QUERY_TIMEOUT_MS = 2000;

/**
 * The route pattern that answered (`/v1/jobs/:id`), never the raw path: a label per job id or
 * callback token would make a series per request. A request no route matched is `unmatched`.
 */
export function routeLabel(c: Context): string {
  const routes = matchedRoutes(c);
  const answered = routes[c.req.routeIndex];
  // Middleware (method ALL) that answered, e.g. an auth refusal, is labelled with the route it guarded.
  if (answered && answered.method !== 'ALL') return answered.path;
  return routes.find((r) => r.method !== 'ALL')?.path ?? 'unmatched';
}

/** Times every request into `relay_http_request_seconds` and counts those in flight. */
export const httpMetrics = createMiddleware<AppEnv>(async (c, next) => {
  const { metrics } = c.var.deps;
  const stop = metrics.httpLatency.startTimer();
  metrics.httpInFlight.inc();
  try {
    await next();
  } finally {
    metrics.httpInFlight.dec();
    stop({ method: c.req.method, route: routeLabel(c), status: `${Math.floor(c.res.status / 100)}xx` });
  }
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `relay_queue_depth{queue}` from the registered queries, run side by side. A query that fails
 * (the database is down) leaves its queue out of this scrape and counts an error, so the rest of
 * the page still answers.
 */
export async function queueDepthGauge(metrics: Metrics, db: Db, log: Logger): Promise<ComputedMetric> {
  const results = await Promise.all(
    [...metrics.queueDepths.queries].map(async ([queue, query]) => {
      try {
        return { labels: { queue }, value: await withTimeout(query(db), DEPTH_QUERY_TIMEOUT_MS) };
      } catch (err) {
        metrics.depthQueryErrors.inc({ queue });
        log.warn({ err, queue }, 'queue depth query failed');
        return null;
      }
    }),
  );
  return {
    name: 'relay_queue_depth',
    help: 'Work waiting, by queue, read from the database at scrape time (the same on every replica)',
    samples: results.filter((r) => r !== null),
  };
}

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics',
  description:
    'Counters, histograms and queue depths in the Prometheus text format. No API key; when `METRICS_TOKEN` is set, ' +
    '`Authorization: Bearer <METRICS_TOKEN>` is required. Keep it off the public internet either way.',
  tags: ['ops'],
  responses: {
    200: { content: { 'text/plain': { schema: z.string() } }, description: 'The exposition document (format 0.0.4).' },
    401: errorResponse('`METRICS_TOKEN` is set and the request does not carry it.'),
  },
});

export function registerMetricsRoute(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerPath(metricsRoute);
  app.get('/metrics', async (c) => {
    const { metrics, db, config } = c.var.deps;
    if (config.metricsToken) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
      if (!match || !secretsEqual(match[1]!, config.metricsToken)) throw new AppError('unauthorized', 'metrics need the METRICS_TOKEN bearer');
    }
    const depth = await queueDepthGauge(metrics, db, c.var.log);
    const body = renderPrometheus(metrics, [depth, ...processGauges()]);
    return c.body(body, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
  });
}
