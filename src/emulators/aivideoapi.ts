import { randomUUID } from 'node:crypto';
import { errorTypes, fileUrl, progressFor, statusName, unixS, type KindDefinition } from './emulator.js';

/**
 * aivideoapi (seed 001): `{code, msg, data:{taskId}}` on submit, the task document at
 * `/v1/tasks/{id}`, and unsigned callbacks that POST that same document.
 */
export const aivideoapi: KindDefinition = {
  kind: 'aivideoapi',
  submitPath: '/v1/videos/generations',
  statusPath: /^\/v1\/tasks\/([^/]+)$/,
  statuses: { initial: 'pending', processing: 'processing', succeeded: 'completed', failed: 'failed' },
  newTaskId: () => randomUUID(),
  checkSubmit(body) {
    const input = body.input;
    if (!input || typeof input !== 'object' || Array.isArray(input)) return "'input' is required.";
    return typeof (input as Record<string, unknown>).prompt === 'string' ? null : "'input.prompt' is required.";
  },
  callbackUrl: (body) => (typeof body.callback_url === 'string' && body.callback_url ? body.callback_url : null),
  submitAnswer: (task) => ({ code: 200, msg: 'success', data: { taskId: task.id } }),
  statusDocument(task, phase, ctx) {
    const input = task.submitBody.input as Record<string, unknown>;
    return {
      id: task.id,
      status: statusName(aivideoapi, phase),
      model: task.submitBody.model,
      created_at: unixS(task.createdAt),
      progress: progressFor(task, phase, ctx.now),
      ...(phase === 'succeeded'
        ? {
            completed_at: unixS(task.finishAt),
            output: { urls: [fileUrl(ctx, task.id)], metadata: { resolution: input.resolution ?? '720p' } },
          }
        : {}),
      ...(phase === 'failed' ? { error: { code: 'upstream_error', message: 'Video generation failed' } } : {}),
    };
  },
  errorBody: (_status, code, message) => ({ error: { code, message, type: errorTypes[code] ?? 'api_error' } }),
  callback(task, stale, _options, ctx) {
    const phase = stale ? 'processing' : task.outcome === 'succeed' ? 'succeeded' : 'failed';
    const event = { processing: 'task.processing', succeeded: 'task.completed', failed: 'task.failed' }[phase];
    return {
      url: task.callbackUrl!,
      body: JSON.stringify(aivideoapi.statusDocument(task, phase, ctx)),
      headers: (timestampS) => ({ 'X-Event': event, 'X-Task-Id': task.id, 'X-Timestamp': String(timestampS) }),
    };
  },
};
