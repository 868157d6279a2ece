import { type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import type { EventRow, ReceiptRow } from '../db/schema.js';
import { cancelJob } from '../jobs/cancel.js';
import { streamJobContent } from '../jobs/content.js';
import { createJob } from '../jobs/create.js';
import { getJob, listJobEvents, listJobReceipts } from '../jobs/queries.js';
import { refreshJob } from '../jobs/refresh.js';
import { JobRequestSchema } from '../jobs/request.js';
import { trackJob } from '../jobs/track.js';
import { MAX_WAIT_S, waitForTerminalJob } from '../jobs/wait.js';

import { jobView } from '../jobs/view.js';
import { linkedSignal } from '../http/signals.js';
import { assertTargetAllowed } from '../fanout/targets.js';
import { errorResponse, jsonResponse, protectedRoute } from './openapi.js';
import { CallbackReceipt, Job, JobEvent, JobId, Metadata, page, PageQuery } from './schemas.js';

export const TrackJobBody = z
  .object({
    provider: z.string().min(1).max(63),
    provider_task_id: z.string().min(1).max(512),
    model: z.string().min(1).max(200).optional(),
    metadata: Metadata.optional(),
    notify_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  })
  .strict()
  .openapi('TrackJobRequest');

const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .optional()
  .openapi({ param: { name: 'idempotency-key', in: 'header' }, description: 'Repeat a submission safely: the same key returns the first job.' });

const submitRoute = protectedRoute('jobs:write', {
  method: 'post',
  path: '/v1/jobs',
  summary: 'Submit a job to a provider',
  description:
    "Validated against the provider's documented rules (a violation is a 400 naming the field and the rule, and the provider " +
    'is never called), then queued; the relay submits it in the background with a callback URL pointing back at itself.',
  tags: ['jobs'],
  request: {
    headers: z.object({ 'idempotency-key': IdempotencyKey }),
    body: { content: { 'application/json': { schema: JobRequestSchema } }, required: true },
  },
  responses: {
    202: jsonResponse(Job, 'The job, `queued` (or, for a repeated Idempotency-Key, the first job as it is now).'),
    409: errorResponse('The Idempotency-Key was used for a different request.'),
  },
});

const refreshRoute = protectedRoute('jobs:write', {
  method: 'post',
  path: '/v1/jobs/{id}/refresh',
  summary: "Fetch the job's status from the provider now",
  tags: ['jobs'],
  request: { params: z.object({ id: JobId }) },
  responses: {
    200: jsonResponse(Job, 'The job after applying what the provider said.'),
    404: errorResponse('No such job.'),
    409: errorResponse('The job is not at the provider yet.'),
  },
});

const cancelRoute = protectedRoute('jobs:write', {
  method: 'post',
  path: '/v1/jobs/{id}/cancel',
  summary: 'Stop tracking a job',
  description:
    'The job becomes `canceled` (with a `job.canceled` event) and is no longer submitted or polled. The relay does not ' +
    'ask the provider to stop a task it already has. Canceling a canceled job returns it unchanged.',
  tags: ['jobs'],
  request: { params: z.object({ id: JobId }) },
  responses: {
    200: jsonResponse(Job, 'The canceled job.'),
    404: errorResponse('No such job.'),
    409: errorResponse('The job is already final, or its submission is on its way to the provider right now (retry shortly).'),
  },
});

const contentRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/jobs/{id}/content',
  summary: "The job's video, streamed from a provider that needs its key to download",
  description: '`Range` requests are passed through to the provider.',
  tags: ['jobs'],
  request: { params: z.object({ id: JobId }) },
  responses: {
    200: { content: { 'video/mp4': { schema: z.string().openapi({ format: 'binary' }) } }, description: 'The video.' },
    206: { content: { 'video/mp4': { schema: z.string().openapi({ format: 'binary' }) } }, description: 'Part of the video.' },
    404: errorResponse('No such job, or its provider serves videos directly.'),
    409: errorResponse('The job has no video (not succeeded).'),
  },
});

const trackRoute = protectedRoute('jobs:write', {
  method: 'post',
  path: '/v1/jobs/track',
  summary: 'Track a job submitted to a provider elsewhere',
  description:
    'The job starts at `submitted`. Callbacks for it are accepted on the provider callback URL ' +
    '(`GET /v1/providers`), matched by the provider task id.',
  tags: ['jobs'],
  request: { body: { content: { 'application/json': { schema: TrackJobBody } }, required: true } },
  responses: {
    201: jsonResponse(Job, 'The tracked job.'),
    409: errorResponse('This provider task is already tracked; `details.job_id` names the job.'),
  },
});

const getRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/jobs/{id}',
  summary: 'Get a job',
  description:
    'With `wait=N`, a long-poll: the answer comes as soon as the job is terminal (at once if it already is), ' +
    'or after N seconds with the job as it is then.',
  tags: ['jobs'],
  request: {
    params: z.object({ id: JobId }),
    query: z.object({
      wait: z.coerce
        .number()
        .int()
        .min(0)
        .max(MAX_WAIT_S)
        .default(0)
        .openapi({ description: `Seconds (0–${MAX_WAIT_S}) to hold the request until the job is terminal.` }),
    }),
  },
  responses: { 200: jsonResponse(Job, 'The job.'), 404: errorResponse('No such job.') },
});

const eventsRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/jobs/{id}/events',
  summary: "A job's events, in sequence order",
  tags: ['jobs'],
  request: { params: z.object({ id: JobId }), query: PageQuery },
  responses: {
    200: jsonResponse(page(JobEvent), '`next_cursor` is the last sequence returned when more follow.'),
    404: errorResponse('No such job.'),
  },
});

const callbacksRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/jobs/{id}/callbacks',
  summary: 'The callbacks stored for a job, oldest first, each with its verdict',
  tags: ['jobs'],
  request: { params: z.object({ id: JobId }), query: PageQuery },
  responses: {
    200: jsonResponse(page(CallbackReceipt), '`next_cursor` is the last receipt id returned when more follow.'),
    404: errorResponse('No such job.'),
  },
});

/** An event as the API shows it: in a job's events, the event feed and the event stream. */
export function eventView(e: EventRow) {
  return {
    event_id: e.eventId,
    job_id: e.jobId,
    sequence: e.sequence,
    type: e.type,
    created_at: e.createdAt.toISOString(),
    data: e.data,
  };
}

export function receiptView(r: ReceiptRow) {
  return {
    id: r.id,
    provider: r.provider,
    job_id: r.jobId,
    route: r.route,
    verdict: r.verdict,
    reason: r.reason,
    headers: r.headers,
    body: r.body.toString('utf8'),
    body_size: r.bodySize,
    source_address: r.sourceAddress,
    received_at: r.receivedAt.toISOString(),
  };
}

export function registerJobRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(submitRoute, async (c) => {
    const key = c.req.valid('header')['idempotency-key'];
    const { deps, principal } = c.var;
    const notifyUrl = c.req.valid('json').notify_url;
    if (notifyUrl) assertTargetAllowed(notifyUrl, 'notify_url', deps.config.delivery.allow_private_targets);
    const { job, replayed } = await createJob(
      { db: deps.db, providers: deps.providers, notifier: deps.database.notifier },
      c.req.valid('json'),
      key ? { key, owner: principal.keyId } : null,
    );
    if (replayed) c.header('idempotent-replayed', 'true');
    return c.json(jobView(job), 202);
  });
  app.openapi(refreshRoute, async (c) => {
    const { deps } = c.var;
    const job = await refreshJob({ ...deps, publicBaseUrl: deps.config.publicBaseUrl }, c.req.valid('param').id);
    return c.json(jobView(job), 200);
  });
  app.openapi(cancelRoute, async (c) => {
    return c.json(jobView(await cancelJob(c.var.deps.db, c.req.valid('param').id)), 200);
  });
  app.openapi(contentRoute, async (c) => {
    // A streamed body passed through as-is; the typed JSON responses do not describe it.
    return (await streamJobContent(c.var.deps, c.req.valid('param').id, c.req.header('range'))) as never;
  });
  app.openapi(trackRoute, async (c) => {
    const { deps } = c.var;
    const notifyUrl = c.req.valid('json').notify_url;
    if (notifyUrl) assertTargetAllowed(notifyUrl, 'notify_url', deps.config.delivery.allow_private_targets);
    const job = await trackJob({ ...deps, notifier: deps.database.notifier }, c.req.valid('json'));
    return c.json(jobView(job), 201);
  });
  app.openapi(getRoute, async (c) => {
    const { deps } = c.var;
    const waitMs = c.req.valid('query').wait * 1000;
    const ctx = { db: deps.db, notifier: deps.database.notifier };
    const id = c.req.valid('param').id;
    if (waitMs === 0) return c.json(jobView(await getJob(deps.db, id)), 200);
    // A waiter ends when its client leaves or when the relay shuts down, whichever comes first.
    const { signal, release } = linkedSignal(c.req.raw.signal, deps.closing);
    try {
      return c.json(jobView(await waitForTerminalJob(ctx, id, waitMs, signal)), 200);
    } finally {
      release();
    }
  });
  app.openapi(eventsRoute, async (c) => {
    const { limit, after } = c.req.valid('query');
    const p = await listJobEvents(c.var.deps.db, c.req.valid('param').id, limit, after);
    return c.json({ data: p.data.map(eventView), next_cursor: p.next_cursor }, 200);
  });
  app.openapi(callbacksRoute, async (c) => {
    const { limit, after } = c.req.valid('query');
    const p = await listJobReceipts(c.var.deps.db, c.req.valid('param').id, limit, after);
    return c.json({ data: p.data.map(receiptView), next_cursor: p.next_cursor }, 200);
  });
}
