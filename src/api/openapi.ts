import { createRoute, type RouteConfig } from '@hono/zod-openapi';
import { requireScope } from '../auth/middleware.js';
import type { Scope } from '../auth/keys.js';
import { ErrorBody } from '../errors.js';

export const errorResponse = (description: string) => ({
  content: { 'application/json': { schema: ErrorBody } },
  description,
});

const authErrors = {
  400: errorResponse('The request is invalid; `details` says which field and rule.'),
  401: errorResponse('No API key, or one that is unknown or revoked.'),
  403: errorResponse('The key lacks the scope this route needs.'),
  503: errorResponse('The database cannot be reached.'),
} as const;

/**
 * A `/v1` route: bearer key with `scope` required, the common error responses documented, and the
 * scope recorded in the OpenAPI document as `x-required-scope` so tests can prove every route checks it.
 */
export function protectedRoute<const R extends Omit<RouteConfig, 'middleware' | 'security'>>(scope: Scope, route: R) {
  return createRoute({
    ...route,
    security: [{ bearer: [] }],
    'x-required-scope': scope,
    middleware: [requireScope(scope)] as const,
    responses: { ...authErrors, ...route.responses },
  });
}
