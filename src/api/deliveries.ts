import { type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import type { DeliveryAttemptRow, DeliveryRow } from '../db/schema.js';
import { getDelivery, listDeliveries, retryDelivery } from '../fanout/deliveries.js';
import { errorResponse, jsonResponse, protectedRoute, statusFilter } from './openapi.js';

const deliveryStatuses = ['pending', 'delivered', 'dead'] as const;
const DeliveryId = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'dlv_01jd2x…' });

const StatusFilter = statusFilter(deliveryStatuses, 'deliveries');

export const Delivery = z
  .object({
    id: z.string(),
    subscription_id: z.string().nullable().openapi({ description: 'Null for a delivery to the job\'s `notify_url`.' }),
    notify_url: z.string().nullable().openapi({ description: 'The target of a `notify_url` delivery.' }),
    job_id: z.string(),
    event_id: z.string().openapi({ description: 'Sent as `webhook-id`: the same on every attempt.' }),
    event_type: z.string(),
    status: z.enum(deliveryStatuses),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable().openapi({ description: 'Null when none is planned (delivered, dead, or its subscription is disabled).' }),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    delivered_at: z.string().nullable(),
  })
  .openapi('Delivery');

export const DeliveryAttempt = z
  .object({
    attempt: z.number().int(),
    started_at: z.string(),
    status_code: z.number().int().nullable(),
    latency_ms: z.number().int(),
    error: z.string().nullable(),
    response_excerpt: z.string().nullable().openapi({ description: 'The first KiB of the answer.' }),
  })
  .openapi('DeliveryAttempt');

const DeliveryWithAttempts = Delivery.extend({ attempt_log: z.array(DeliveryAttempt) }).openapi('DeliveryWithAttempts');

const tags = ['deliveries'];

const listRoute = protectedRoute('subscriptions:manage', {
  method: 'get',
  path: '/v1/deliveries',
  summary: 'The delivery log, newest first',
  tags,
  request: {
    query: z.object({
      subscription_id: z.string().min(1).max(64).optional(),
      job_id: z.string().min(1).max(64).optional(),
      status: StatusFilter,
      limit: z.coerce.number().int().min(1).max(200).default(50),
      cursor: z.string().max(64).optional().openapi({ description: 'The `next_cursor` of the previous page.' }),
    }),
  },
  responses: { 200: jsonResponse(z.object({ data: z.array(Delivery), next_cursor: z.string().nullable() }).openapi('DeliveryList'), 'A page of deliveries.') },
});

const getRoute = protectedRoute('subscriptions:manage', {
  method: 'get',
  path: '/v1/deliveries/{id}',
  summary: 'A delivery with every attempt',
  tags,
  request: { params: z.object({ id: DeliveryId }) },
  responses: { 200: jsonResponse(DeliveryWithAttempts, 'The delivery and its attempts, oldest first.'), 404: errorResponse('No such delivery.') },
});

const retryRoute = protectedRoute('subscriptions:manage', {
  method: 'post',
  path: '/v1/deliveries/{id}/retry',
  summary: 'Send a delivery again now',
  description:
    'For a dead delivery: one more attempt. For a delivered one: sent again (receivers dedupe on `webhook-id`). ' +
    'A 409 while it is being sent, or while its subscription is disabled.',
  tags,
  request: { params: z.object({ id: DeliveryId }) },
  responses: {
    202: jsonResponse(Delivery, 'The delivery, pending and due now.'),
    404: errorResponse('No such delivery.'),
    409: errorResponse('It is being sent right now, or its subscription is disabled.'),
  },
});

export function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    subscription_id: row.subscriptionId,
    notify_url: row.url,
    job_id: row.jobId,
    event_id: row.eventId,
    event_type: row.eventType,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? (row.nextAttemptAt?.toISOString() ?? null) : null,
    last_status_code: row.lastStatusCode,
    last_error: row.lastError,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    delivered_at: row.deliveredAt?.toISOString() ?? null,
  };
}

function attemptView(a: DeliveryAttemptRow) {
  return {
    attempt: a.attempt,
    started_at: a.startedAt.toISOString(),
    status_code: a.statusCode,
    latency_ms: a.latencyMs,
    error: a.error,
    response_excerpt: a.responseExcerpt,
  };
}

export function registerDeliveryRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(listRoute, async (c) => {
    const q = c.req.valid('query');
    const page = await listDeliveries(c.var.deps.db, {
      subscriptionId: q.subscription_id,
      jobId: q.job_id,
      statuses: q.status,
      limit: q.limit,
      cursor: q.cursor,
    });
    return c.json({ data: page.data.map(deliveryView), next_cursor: page.next_cursor }, 200);
  });
  app.openapi(getRoute, async (c) => {
    const { delivery, attempts } = await getDelivery(c.var.deps.db, c.req.valid('param').id);
    return c.json({ ...deliveryView(delivery), attempt_log: attempts.map(attemptView) }, 200);
  });
  app.openapi(retryRoute, async (c) => {
    const { deps } = c.var;
    const row = await retryDelivery({ db: deps.db, notifier: deps.database.notifier }, c.req.valid('param').id);
    return c.json(deliveryView(row), 202);
  });
}
