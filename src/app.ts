import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { registerDocsRoutes } from './api/docs.js';
import { registerDeliveryRoutes } from './api/deliveries.js';
import { registerEventRoutes } from './api/events.js';
import { registerJobListRoutes } from './api/jobs-list.js';
import { registerJobRoutes } from './api/jobs.js';
import { registerKeyRoutes } from './api/keys.js';
import { registerProviderRoutes } from './api/providers.js';
import { registerSubscriptionRoutes } from './api/subscriptions.js';
import { type CallbackServices, createCallbackServices } from './callbacks/listener.js';
import { registerCallbackRoutes } from './callbacks/routes.js';
import type { AppEnv, Deps } from './context.js';
import { AppError, errorBody, toAppError } from './errors.js';
import { registerHealthRoutes } from './ops/health.js';
import { redactPath } from './ops/logger.js';
import { httpMetrics, registerMetricsRoute } from './ops/metrics-route.js';
import { refuseUnstorableInput } from './http/input-guard.js';

const API_BODY_LIMIT = 256 * 1024;

export interface AppOptions {
  /** Whether migrations have been applied, for /readyz. */
  isMigrated?: () => boolean;
  /** The callback path's shared parts, when the server also serves callbacks directly (server.ts). */
  callbacks?: CallbackServices;
}

/** The HTTP application: every route, the auth, the error mapping. No listening, no workers. */
export function createApp(deps: Deps, opts: AppOptions = {}) {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const details = result.error.issues.map((i) => ({
        field: i.path.map(String).join('.'),
        message: i.message,
      }));
      const summary = details.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message)).join('; ');
      return c.json(errorBody(new AppError('invalid_request', summary, details), c.var.requestId), 400);
    },
  });
  const { rejections, receipts, jobs: jobLoader } = opts.callbacks ?? createCallbackServices(deps);

  app.use(requestId({ limitLength: 64 }));
  app.use(async (c, next) => {
    c.set('deps', deps);
    const log = deps.log.child({ request_id: c.var.requestId });
    c.set('log', log);
    const started = performance.now();
    await next();
    log.info(
      { method: c.req.method, path: redactPath(c.req.path), status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  });
  app.use(httpMetrics);
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: API_BODY_LIMIT,
      onError: () => {
        throw new AppError('payload_too_large', `request body is larger than ${API_BODY_LIMIT} bytes`);
      },
    }),
  );
  app.use('/v1/*', refuseUnstorableInput);


  app.onError((err, c) => {
    const appError = toAppError(err);
    if (appError.code === 'internal') c.var.log?.error({ err }, 'unhandled error');
    else if (appError.code === 'unavailable') c.var.log?.warn({ err }, 'unavailable');
    return c.json(errorBody(appError, c.var.requestId ?? 'unknown'), appError.status);
  });
  app.notFound((c) =>
    c.json(errorBody(new AppError('not_found', `no route for ${c.req.method} ${redactPath(c.req.path)}`), c.var.requestId), 404),
  );

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });

  registerHealthRoutes(app, opts.isMigrated ?? (() => true));
  registerMetricsRoute(app);
  registerCallbackRoutes(app, (c) => ({ ...deps, publicBaseUrl: deps.config.publicBaseUrl, rejections, receipts, jobs: jobLoader, log: c.var.log }));
  registerJobListRoutes(app);
  registerJobRoutes(app);
  registerEventRoutes(app);
  registerProviderRoutes(app);
  registerKeyRoutes(app);
  registerSubscriptionRoutes(app);
  registerDeliveryRoutes(app);
  registerDocsRoutes(app);

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'callback-relay',
      version: '0.1.0',
      description: 'Submits AI video jobs, receives and verifies provider callbacks, polls, and fans job events out.',
    },
  });
  return app;
}

export type App = ReturnType<typeof createApp>;
