import { createRoute, type RouteConfig, z } from '@hono/zod-openapi';
import { requireScope } from '../auth/middleware.js';
import type { Scope } from '../auth/keys.js';
import { ErrorBody } from '../errors.js';

export const errorResponse = (description: string) => ({
  content: { 'application/json': { schema: ErrorBody } },
  description,
});

/** A JSON response of `schema`. */
export const jsonResponse = <T extends z.ZodTypeAny>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

/**
 * A `status` query filter: `status=a&status=b`, `status=a,b` or both, one list of `values`.
 * `what` names the things filtered, for the description ("jobs", "deliveries").
 */
export function statusFilter<const V extends readonly [string, ...string[]]>(values: V, what: string, example?: V[number][]) {
  return z
    .preprocess(
      (v) => (v === undefined ? v : [v].flat().flatMap((s) => String(s).split(',')).map((s) => s.trim())),
      z.array(z.enum(values)).min(1).optional(),
    )
    .openapi({
      param: { name: 'status', in: 'query', style: 'form', explode: true },
      description: `Only ${what} in one of these statuses: repeat the parameter or separate them with commas.`,
      ...(example ? { example } : {}),
    });
}

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
