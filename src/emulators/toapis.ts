import { createHmac, randomBytes } from 'node:crypto';
import { errorTypes, fileUrl, progressFor, statusName, unixS, type DocContext, type EmulatedTask, type KindDefinition, type Phase } from './emulator.js';

/**
 * toapis (seeds 000, 003): a `generation.task` document on submit and at
 * `/v1/videos/generations/{id}`, and signed webhooks (`X-ToAPIs-Webhook-*`, HMAC-SHA256 over
 * `id.timestamp.body`) when the submit named a `callback_url`.
 */

const RESULT_TTL_S = 24 * 3600;

function generation(task: EmulatedTask, phase: Phase, ctx: DocContext) {
  return {
    status: statusName(toapis, phase),
    progress: progressFor(task, phase, ctx.now),
    result: phase === 'succeeded' ? { type: 'video', data: [{ url: fileUrl(ctx, task.id), format: 'mp4' }] } : null,
    error: phase === 'failed' ? { code: 'generation_failed', message: 'Video generation failed' } : null,
  };
}

export const toapis: KindDefinition = {
  kind: 'toapis',
  submitPath: '/v1/videos/generations',
  statusPath: /^\/v1\/videos\/generations\/([^/]+)$/,
  statuses: { initial: 'queued', processing: 'in_progress', succeeded: 'completed', failed: 'failed' },
  newTaskId: () => `task_${randomBytes(12).toString('hex')}`,
  checkSubmit: (body) => (typeof body.prompt === 'string' && body.prompt ? null : "'prompt' is required."),
  callbackUrl: (body) => (typeof body.callback_url === 'string' && body.callback_url ? body.callback_url : null),
  submitAnswer: (task) => ({
    id: task.id,
    object: 'generation.task',
    model: task.submitBody.model,
    status: 'queued',
    progress: 0,
    created_at: unixS(task.createdAt),
  }),
  statusDocument(task, phase, ctx) {
    const { status, progress, result, error } = generation(task, phase, ctx);
    const done = phase === 'succeeded' || phase === 'failed';
    return {
      id: task.id,
      object: 'generation.task',
      model: task.submitBody.model,
      status,
      progress,
      created_at: unixS(task.createdAt),
      ...(done ? { completed_at: unixS(task.finishAt) } : {}),
      ...(result ? { expires_at: unixS(task.finishAt) + RESULT_TTL_S, result } : {}),
      ...(error ? { error } : {}),
    };
  },
  errorBody: (_status, code, message) => ({ error: { code, message, type: errorTypes[code] ?? 'api_error' } }),
  callback(task, stale, options, ctx) {
    const phase = stale ? 'processing' : task.outcome === 'succeed' ? 'succeeded' : 'failed';
    // The documented types are the two terminal ones; the stale one only exists to test ordering.
    const type = { processing: 'generation.processing', succeeded: 'generation.completed', failed: 'generation.failed' }[phase];
    const id = `wh_${randomBytes(12).toString('hex')}`;
    const body = JSON.stringify({
      id,
      type,
      created_at: unixS(ctx.now),
      data: { task_id: task.id, ...generation(task, phase, ctx) },
    });
    const secret = options.webhookSecret;
    return {
      url: task.callbackUrl!,
      body,
      headers: (timestampS) => ({
        'X-ToAPIs-Webhook-Id': id,
        'X-ToAPIs-Webhook-Timestamp': String(timestampS),
        ...(secret ? { 'X-ToAPIs-Webhook-Signature': `v1=${signToapis(secret, id, timestampS, body)}` } : {}),
      }),
    };
  },
};

/** Lower-case hex HMAC-SHA256 of `id.timestamp.body`, as the relay verifies it. */
export function signToapis(secret: string, id: string, timestampS: number, body: string): string {
  return createHmac('sha256', secret).update(`${id}.${timestampS}.${body}`).digest('hex');
}
