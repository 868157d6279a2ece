import { type OpenAPIHono, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { AppEnv } from '../context.js';
import { AppError } from '../errors.js';
import { linkedSignal } from '../http/signals.js';
import { cursorAfter, decodeCursor, followFeed, readFeed } from '../events/feed.js';
import { eventView } from './jobs.js';
import { errorResponse, protectedRoute } from './openapi.js';
import { JobEvent } from './schemas.js';

const HEARTBEAT_MS = 15_000;
const MAX_STREAMS = 200;

const After = z
  .string()
  .max(200)
  .optional()
  .openapi({ description: 'A cursor from an earlier page or stream message; omitted, the feed starts at its oldest event.' });

export const FeedPage = z
  .object({
    data: z.array(JobEvent),
    next_cursor: z.string().openapi({ description: 'Pass as `after` to continue; the same cursor again when nothing was new.' }),
    has_more: z.boolean().openapi({ description: 'Whether more events are already waiting after this page.' }),
  })
  .openapi('EventFeedPage');

export const FeedQuery = z.object({
  after: After,
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const feedRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/events',
  summary: 'Every job event, in commit order',
  description:
    'For services that pull instead of receiving webhooks: follow `next_cursor` and every event is returned exactly ' +
    'once, in the order the changes committed, including an event whose transaction began earlier but committed later.',
  tags: ['events'],
  request: { query: FeedQuery },
  responses: {
    200: { content: { 'application/json': { schema: FeedPage } }, description: 'A page of the feed.' },
  },
});

const streamRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/events/stream',
  summary: 'The event feed as Server-Sent Events',
  description:
    'Each message has `id:` the cursor after its event, `event:` the event type and `data:` the event JSON. ' +
    'On reconnect, `Last-Event-ID` (which EventSource sends by itself) resumes after the last message received; ' +
    'without it, `after` says where to start. A comment line is sent every 15 s to keep the connection open.',
  tags: ['events'],
  request: {
    query: z.object({ after: After }),
    headers: z.object({ 'last-event-id': z.string().max(200).optional() }),
  },
  responses: {
    200: {
      content: { 'text/event-stream': { schema: z.string() } },
      description: 'The stream; it runs until the client disconnects.',
    },
    400: errorResponse('The cursor is not one the relay gave out.'),
    429: errorResponse('Too many streams are open on this replica.'),
  },
});

export function registerEventRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(feedRoute, async (c) => {
    const { after, limit } = c.req.valid('query');
    const page = await readFeed(c.var.deps.db, decodeCursor(after), limit);
    return c.json({ data: page.events.map(eventView), next_cursor: page.cursor, has_more: page.more }, 200);
  });

  let openStreams = 0;
  app.openapi(streamRoute, (c) => {
    const { deps, log } = c.var;
    // Each stream re-reads the feed on every wake-up; past this many, new ones are turned away.
    if (openStreams >= MAX_STREAMS) {
      throw new AppError('rate_limited', `too many open event streams (${MAX_STREAMS}); use GET /v1/events or retry later`);
    }
    const after = decodeCursor(c.req.valid('header')['last-event-id'] || c.req.valid('query').after);
    const linked = linkedSignal(c.req.raw.signal, deps.closing);
    const request = linked.signal;
    openStreams++;
    return streamSSE(c, async (stream) => {
      const gone = new AbortController();
      const leave = () => gone.abort();
      stream.onAbort(leave);
      request.addEventListener('abort', leave, { once: true });
      if (request.aborted) leave();
      const heartbeat = setInterval(() => void stream.write(': keep-alive\n\n'), HEARTBEAT_MS);
      try {
        await stream.write(': stream open\n\n');
        const ctx = { db: deps.db, notifier: deps.database.notifier };
        for await (const event of followFeed(ctx, after, gone.signal)) {
          await stream.writeSSE({ id: cursorAfter(event), event: event.type, data: JSON.stringify(eventView(event)) });
        }
      } catch (err) {
        // Ending the stream is enough: the client reconnects with Last-Event-ID and resumes here.
        log.warn({ err }, 'event stream stopped');
      } finally {
        clearInterval(heartbeat);
        request.removeEventListener('abort', leave);
        linked.release();
        openStreams--;
      }
    }) as never;
  });
}
