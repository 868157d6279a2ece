import { createHmac, randomBytes } from 'node:crypto';
import { fakeVideo, progressFor, statusName, unixS, videoReply, type KindDefinition } from './emulator.js';

/**
 * openai-videos (seed 004): an OpenAI-style `video` object at `/v1/videos/{id}`, the video itself
 * at `/v1/videos/{id}/content` behind the same key, Google-style errors, and — only when both a
 * `whsec_` secret and a webhook URL are configured — Standard Webhooks on completion.
 */

/** Google's status names for the `{error:{code, message, status}}` body the seed shows. */
const googleStatus: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  416: 'OUT_OF_RANGE',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

export const openaiVideos: KindDefinition = {
  kind: 'openai-videos',
  submitPath: '/v1/videos',
  statusPath: /^\/v1\/videos\/([^/]+)$/,
  statuses: { initial: '', processing: 'in_progress', succeeded: 'completed', failed: 'failure' },
  // The seed's ids are the base64 of the upstream operation name.
  newTaskId: (body) =>
    Buffer.from(`models/${String(body.model)}/operations/${randomBytes(9).toString('hex')}`).toString('base64url'),
  checkSubmit: (body) => (typeof body.prompt === 'string' && body.prompt ? null : "'prompt' is required."),
  callbackUrl: (_body, options) => (options.webhookSecret && options.webhookUrl ? options.webhookUrl : null),
  submitAnswer: (task) => ({
    id: task.id,
    task_id: task.id,
    object: 'video',
    model: task.submitBody.model,
    status: '',
    progress: 0,
    created_at: unixS(task.createdAt),
  }),
  statusDocument: (task, phase, ctx) => ({
    id: task.id,
    task_id: task.id,
    model: task.submitBody.model,
    object: 'video',
    status: statusName(openaiVideos, phase),
    progress: progressFor(task, phase, ctx.now),
    created_at: unixS(task.createdAt),
    ...(phase === 'succeeded' || phase === 'failed' ? { completed_at: unixS(task.finishAt) } : {}),
    ...(phase === 'failed' ? { fail_reason: 'Video generation failed' } : {}),
  }),
  errorBody: (status, _code, message) => ({ error: { code: status, message, status: googleStatus[status] ?? 'UNKNOWN' } }),
  reads: [
    {
      path: /^\/v1\/videos\/([^/]+)\/content$/,
      reply(task, phase, req) {
        if (phase !== 'succeeded') {
          return { status: 404, json: openaiVideos.errorBody(404, 'not_found', 'The video is not ready.') };
        }
        const reply = videoReply(fakeVideo(task.id), req.headers.range);
        if (reply.status !== 416) return reply;
        return { ...reply, json: openaiVideos.errorBody(416, 'range_not_satisfiable', 'Range not satisfiable.'), bytes: undefined };
      },
    },
  ],
  callback(task, stale, options, ctx) {
    // Its events carry only the video id, so there is no stale state to send.
    if (stale || !options.webhookSecret) return null;
    const id = `evt_${randomBytes(12).toString('hex')}`;
    const body = JSON.stringify({
      id,
      object: 'event',
      created_at: unixS(ctx.now),
      type: task.outcome === 'succeed' ? 'video.completed' : 'video.failed',
      data: { id: task.id },
    });
    const secret = options.webhookSecret;
    return {
      url: task.callbackUrl!,
      body,
      headers: (timestampS) => ({
        'webhook-id': id,
        'webhook-timestamp': String(timestampS),
        'webhook-signature': `v1,${signStandardWebhook(secret, id, timestampS, body)}`,
      }),
    };
  },
};

/** Standard Webhooks: base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the base64 after `whsec_`. */
export function signStandardWebhook(secret: string, id: string, timestampS: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64');
}
