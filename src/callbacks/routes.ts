import { getConnInfo } from '@hono/node-server/conninfo';
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../context.js';
import { errorResponse } from '../api/openapi.js';
import type { IncomingMessage } from 'node:http';
import { MAX_CALLBACK_BYTES, readBodyLimited } from './body.js';
import { declaredCallbackLength, nodeHeaders, readDeclaredBody } from './listener.js';
import { type IncomingCallback, receiveCallback, type CallbackContext } from './receive.js';

const Accepted = z
  .object({ ok: z.literal(true), verdict: z.string(), job_id: z.string(), status: z.string() })
  .openapi('CallbackAccepted');

const responses = {
  200: { content: { 'application/json': { schema: Accepted } }, description: 'Stored and applied (also for a duplicate).' },
  400: errorResponse('Body is not a JSON object the provider would send.'),
  401: errorResponse('Bad token.'),
  404: errorResponse('Unknown provider or job.'),
  413: errorResponse(`Body over ${MAX_CALLBACK_BYTES} bytes.`),
  415: errorResponse('Content-Type is not JSON.'),
  503: errorResponse('Could not be stored, or the provider could not confirm it yet: retry.'),
} as const;

const rawBody = {
  content: { 'application/json': { schema: z.object({}).passthrough().openapi({ description: "The provider's callback document, read as raw bytes." }) } },
  required: true,
};

const Provider = z.string().openapi({ param: { name: 'provider', in: 'path' } });
const Token = z.string().openapi({ param: { name: 'token', in: 'path' } });

const perJob = createRoute({
  method: 'post',
  path: '/callbacks/{provider}/{job_id}/{token}',
  summary: "A job's own callback URL (the relay puts it in callback_url)",
  tags: ['callbacks'],
  request: {
    params: z.object({ provider: Provider, job_id: z.string().openapi({ param: { name: 'job_id', in: 'path' } }), token: Token }),
    body: rawBody,
  },
  responses,
});

const perProvider = createRoute({
  method: 'post',
  path: '/callbacks/{provider}/{token}',
  summary: 'A provider-wide callback URL, for jobs tracked by task id',
  tags: ['callbacks'],
  request: { params: z.object({ provider: Provider, token: Token }), body: rawBody },
  responses,
});

function sourceAddress(c: Context<AppEnv>): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // not served by @hono/node-server (in-process tests)
  }
}

/**
 * Where the callback's headers and bytes come from. Served by @hono/node-server with a declared
 * length within the limit (what providers send), straight from Node's request — no fetch Request
 * with its web stream and abort signal is built. Any other case (chunked, too long, in-process
 * tests) goes through the fetch Request. (The running server serves most callbacks before they
 * reach the app at all: see listener.ts.)
 */
function callbackSource(c: Context<AppEnv>): Pick<IncomingCallback, 'headers' | 'readBody'> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const length = incoming ? declaredCallbackLength(incoming) : null;
  if (incoming && length !== null) return { headers: nodeHeaders(incoming), readBody: readDeclaredBody(incoming, length) };
  return { headers: c.req.raw.headers, readBody: (limit) => readBodyLimited(c.req.raw, limit) };
}

export function registerCallbackRoutes(app: OpenAPIHono<AppEnv>, ctx: (c: Context<AppEnv>) => CallbackContext) {
  const handle = async (c: Context<AppEnv>, jobId: string | null) => {
    const outcome = await receiveCallback(ctx(c), {
      provider: c.req.param('provider')!,
      jobId,
      token: c.req.param('token')!,
      ...callbackSource(c),
      sourceAddress: sourceAddress(c),
    });
    return c.json({ ok: true as const, verdict: outcome.verdict, job_id: outcome.jobId, status: outcome.status }, 200);
  };
  // The body is read here as raw bytes, so these routes are registered for the document only and
  // handled without the JSON validator (which would parse the body before the token is checked).
  app.openAPIRegistry.registerPath(perJob);
  app.openAPIRegistry.registerPath(perProvider);
  app.post('/callbacks/:provider/:job_id/:token', (c) => handle(c, c.req.param('job_id')));
  app.post('/callbacks/:provider/:token', (c) => handle(c, null));
}
