import { z } from '@hono/zod-openapi';
import { jobStatuses } from '../jobs/states.js';

export { MetadataSchema as Metadata } from '../jobs/request.js';

export const JobId = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'job_01jd2x…' });

export const JobErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  source: z.enum(['provider', 'relay']),
});

export const Job = z
  .object({
    id: z.string(),
    provider: z.string(),
    model: z.string().nullable(),
    provider_task_id: z.string().nullable(),
    status: z.enum(jobStatuses),
    progress: z.number().int().nullable(),
    input: z.record(z.string(), z.unknown()),
    result: z.object({ video_urls: z.array(z.string()), raw: z.unknown() }).nullable(),
    error: JobErrorSchema.nullable(),
    metadata: z.record(z.string(), z.string()),
    notify_url: z.string().nullable(),
    created_at: z.string(),
    submitted_at: z.string().nullable(),
    updated_at: z.string(),
    completed_at: z.string().nullable(),
  })
  .openapi('Job');

export const JobEvent = z
  .object({
    event_id: z.string(),
    job_id: z.string(),
    sequence: z.number().int(),
    type: z.string(),
    created_at: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('JobEvent');

export const CallbackReceipt = z
  .object({
    id: z.number().int(),
    provider: z.string(),
    job_id: z.string().nullable(),
    route: z.enum(['job', 'provider']),
    verdict: z.string(),
    reason: z.string().nullable(),
    headers: z.record(z.string(), z.string()),
    body: z.string().openapi({ description: 'The body as received (UTF-8); for rejected requests only its first KiB.' }),
    body_size: z.number().int(),
    source_address: z.string().nullable(),
    received_at: z.string(),
  })
  .openapi('CallbackReceipt');

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: z.coerce.number().int().min(0).optional().openapi({ description: 'Return items after this cursor.' }),
});

export function page<T extends z.ZodTypeAny>(item: T) {
  return z.object({ data: z.array(item), next_cursor: z.number().int().nullable() });
}
