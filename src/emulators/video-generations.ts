import { randomBytes } from 'node:crypto';
import { errorTypes, fileUrl, progressFor, statusName, unixS, type KindDefinition } from './emulator.js';

/**
 * video-generations (seed 002): a `video.generation.job` at `/v1/videos/{task_id}`; no callbacks,
 * so it is polled. It alone has an `unknown` status (see `Emulator.setUnknown`).
 */
export const videoGenerations: KindDefinition = {
  kind: 'video-generations',
  submitPath: '/v1/video/generations',
  statusPath: /^\/v1\/videos\/([^/]+)$/,
  statuses: { initial: 'queued', processing: 'in_progress', succeeded: 'completed', failed: 'failed', unknown: 'unknown' },
  newTaskId: () => `task_${randomBytes(12).toString('base64url')}`,
  // The seed's schema does not force a prompt.
  checkSubmit: () => null,
  callbackUrl: () => null,
  submitAnswer: (task) => ({
    id: task.id,
    task_id: task.id,
    object: 'video.generation.job',
    model: task.submitBody.model,
    status: 'queued',
    progress: 0,
    created_at: unixS(task.createdAt),
  }),
  statusDocument: (task, phase, ctx) => ({
    id: task.id,
    task_id: task.id,
    object: 'video.generation.job',
    model: task.submitBody.model,
    status: statusName(videoGenerations, phase),
    progress: progressFor(task, phase, ctx.now),
    ...(phase === 'succeeded' ? { video_url: fileUrl(ctx, task.id) } : {}),
  }),
  errorBody: (_status, code, message) => ({ error: { code, message, type: errorTypes[code] ?? 'api_error' } }),
};
