import { type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, Deps } from '../context.js';
import type { SubscriptionRow } from '../db/schema.js';
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSubscriptionSecret,
  type SubscriptionContext,
  updateSubscription,
} from '../fanout/subscriptions.js';
import { notifyUrlSecret } from '../fanout/signing.js';
import { eventTypes } from '../jobs/states.js';
import { errorResponse, jsonResponse, protectedRoute } from './openapi.js';
import { Metadata } from './schemas.js';

const SubscriptionId = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'sub_01jd2x…' });
const TargetUrl = z.url({ protocol: /^https?$/ }).max(2048);
const EventTypes = z
  .array(z.enum(eventTypes))
  .min(1)
  .max(eventTypes.length * 2)
  .openapi({ description: 'The event types it receives. Default: the four outcomes (succeeded, failed, canceled, expired).' });
const Providers = z
  .array(z.string().min(1).max(63))
  .max(100)
  .openapi({ description: 'Only jobs at these configured providers; absent or null = every provider.' });
const Secret = z
  .string()
  .max(200)
  .openapi({ description: 'Bring your own secret (`whsec_` + base64 of 24–64 bytes) instead of a generated one.' });

export const CreateSubscriptionBody = z
  .object({
    url: TargetUrl,
    description: z.string().max(500).nullable().optional(),
    event_types: EventTypes.optional(),
    providers: Providers.nullable().optional(),
    metadata: Metadata.optional().openapi({ description: 'Only jobs whose metadata contains all of these pairs.' }),
    secret: Secret.optional(),
  })
  .strict()
  .openapi('CreateSubscriptionRequest');

export const UpdateSubscriptionBody = z
  .object({
    url: TargetUrl.optional(),
    description: z.string().max(500).nullable().optional(),
    event_types: EventTypes.optional(),
    providers: Providers.nullable().optional(),
    metadata: Metadata.optional(),
    enabled: z
      .boolean()
      .optional()
      .openapi({ description: 'false disables it by hand; true re-enables it however it was disabled, and its waiting deliveries go at once.' }),
  })
  .strict()
  .openapi('UpdateSubscriptionRequest');

export const Subscription = z
  .object({
    id: z.string(),
    url: z.string(),
    description: z.string().nullable(),
    event_types: z.array(z.string()),
    providers: z.array(z.string()).nullable(),
    metadata: z.record(z.string(), z.string()),
    enabled: z.boolean(),
    disabled_reason: z
      .enum(['manual', 'gone', 'failing'])
      .nullable()
      .openapi({ description: '`gone`: the target answered 410; `failing`: no success for too long; `manual`: by PATCH.' }),
    disabled_at: z.string().nullable(),
    failing_since: z.string().nullable().openapi({ description: 'The first failure since the last success, if it is failing.' }),
    previous_secret_expires_at: z
      .string()
      .nullable()
      .openapi({ description: 'While set and in the future, deliveries are signed with the rotated-out secret too.' }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Subscription');

export const SubscriptionWithSecret = Subscription.extend({
  secret: z.string().openapi({ description: 'The signing secret (Standard Webhooks `whsec_…`). Shown on creation and rotation only.' }),
}).openapi('SubscriptionWithSecret');

const SubscriptionList = z
  .object({ data: z.array(Subscription), next_cursor: z.string().nullable() })
  .openapi('SubscriptionList');

const tags = ['subscriptions'];
const notFound = { 404: errorResponse('No such subscription.') };

const createRoute = protectedRoute('subscriptions:manage', {
  method: 'post',
  path: '/v1/subscriptions',
  summary: 'Subscribe a webhook to job events',
  description:
    'Every matching event from now on is POSTed to `url`, signed per Standard Webhooks. A URL on a loopback, private, ' +
    'link-local or metadata address is refused (400 naming the rule) unless `allow_private_targets` is on.',
  tags,
  request: { body: { content: { 'application/json': { schema: CreateSubscriptionBody } }, required: true } },
  responses: { 201: jsonResponse(SubscriptionWithSecret, 'The subscription, with its secret shown this once.') },
});

const listRoute = protectedRoute('subscriptions:manage', {
  method: 'get',
  path: '/v1/subscriptions',
  summary: 'List subscriptions, newest first',
  tags,
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(200).default(50),
      cursor: z.string().max(64).optional().openapi({ description: 'The `next_cursor` of the previous page.' }),
    }),
  },
  responses: { 200: jsonResponse(SubscriptionList, 'A page of subscriptions.') },
});

const getRoute = protectedRoute('subscriptions:manage', {
  method: 'get',
  path: '/v1/subscriptions/{id}',
  summary: 'Get a subscription',
  tags,
  request: { params: z.object({ id: SubscriptionId }) },
  responses: { 200: jsonResponse(Subscription, 'The subscription (without its secret).'), ...notFound },
});

const patchRoute = protectedRoute('subscriptions:manage', {
  method: 'patch',
  path: '/v1/subscriptions/{id}',
  summary: 'Change or re-enable a subscription',
  tags,
  request: {
    params: z.object({ id: SubscriptionId }),
    body: { content: { 'application/json': { schema: UpdateSubscriptionBody } }, required: true },
  },
  responses: { 200: jsonResponse(Subscription, 'The subscription as it is now.'), ...notFound },
});

const deleteRoute = protectedRoute('subscriptions:manage', {
  method: 'delete',
  path: '/v1/subscriptions/{id}',
  summary: 'Delete a subscription',
  description: 'Its pending deliveries are dropped, and its delivery log with them.',
  tags,
  request: { params: z.object({ id: SubscriptionId }) },
  responses: { 200: jsonResponse(Subscription, 'The deleted subscription.'), ...notFound },
});

const rotateRoute = protectedRoute('subscriptions:manage', {
  method: 'post',
  path: '/v1/subscriptions/{id}/rotate-secret',
  summary: 'Rotate the signing secret',
  description:
    'Deliveries are signed with both the new and the old secret for 24 hours (two `v1,` signatures), so receivers can ' +
    'switch at their own pace. The body is optional; `secret` brings your own.',
  tags,
  request: {
    params: z.object({ id: SubscriptionId }),
    body: {
      content: { 'application/json': { schema: z.object({ secret: Secret.optional() }).strict().openapi('RotateSecretRequest') } },
      required: false,
    },
  },
  responses: { 200: jsonResponse(SubscriptionWithSecret, 'The subscription with its new secret.'), ...notFound },
});

const notifySecretRoute = protectedRoute('jobs:write', {
  method: 'get',
  path: '/v1/notify-secret',
  summary: 'The secret notify_url deliveries are signed with',
  description:
    "A job's `notify_url` receives its outcome event signed like a subscription's deliveries, with this one relay-wide " +
    'secret (derived from the server secret, so it changes only if that does).',
  tags,
  responses: { 200: jsonResponse(z.object({ secret: z.string() }).openapi('NotifySecret'), 'The secret.') },
});

export function subscriptionView(row: SubscriptionRow) {
  const rotation = row.previousSecretExpiresAt && row.previousSecretExpiresAt.getTime() > Date.now() ? row.previousSecretExpiresAt : null;
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    event_types: row.eventTypes,
    providers: row.providers,
    metadata: row.metadata,
    enabled: row.disabledAt === null,
    disabled_reason: row.disabledReason,
    disabled_at: row.disabledAt?.toISOString() ?? null,
    failing_since: row.failingSince?.toISOString() ?? null,
    previous_secret_expires_at: rotation?.toISOString() ?? null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

const context = (deps: Deps): SubscriptionContext => ({
  db: deps.db,
  providerNames: new Set(deps.config.providers.keys()),
  allowPrivateTargets: deps.config.delivery.allow_private_targets,
});

export function registerSubscriptionRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(createRoute, async (c) => {
    const row = await createSubscription(context(c.var.deps), c.req.valid('json'));
    return c.json({ ...subscriptionView(row), secret: row.secret }, 201);
  });
  app.openapi(listRoute, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const page = await listSubscriptions(c.var.deps.db, limit, cursor);
    return c.json({ data: page.data.map(subscriptionView), next_cursor: page.next_cursor }, 200);
  });
  app.openapi(getRoute, async (c) => c.json(subscriptionView(await getSubscription(c.var.deps.db, c.req.valid('param').id)), 200));
  app.openapi(patchRoute, async (c) => {
    const patch = c.req.valid('json');
    const row = await updateSubscription(context(c.var.deps), c.req.valid('param').id, patch);
    // Re-enabled: its waiting deliveries are due now; wake the workers rather than wait for their timer.
    if (patch.enabled) c.var.deps.database.notifier.notify('relay_deliveries');
    return c.json(subscriptionView(row), 200);
  });
  app.openapi(deleteRoute, async (c) => c.json(subscriptionView(await deleteSubscription(c.var.deps.db, c.req.valid('param').id)), 200));
  app.openapi(rotateRoute, async (c) => {
    const secret = (c.req.valid('json') as { secret?: string } | undefined)?.secret;
    const row = await rotateSubscriptionSecret(c.var.deps.db, c.req.valid('param').id, secret);
    return c.json({ ...subscriptionView(row), secret: row.secret }, 200);
  });
  app.openapi(notifySecretRoute, async (c) => c.json({ secret: notifyUrlSecret(c.var.deps.secret) }, 200));
}
