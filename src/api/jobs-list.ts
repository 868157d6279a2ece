import { type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { AppError } from '../errors.js';
import { listJobs } from '../jobs/list.js';
import { jobStatuses } from '../jobs/states.js';
import { jobView } from '../jobs/view.js';
import { protectedRoute, statusFilter } from './openapi.js';
import { Job } from './schemas.js';

const StatusFilter = statusFilter(jobStatuses, 'jobs', ['succeeded', 'failed']);

const Timestamp = (description: string) =>
  z.iso.datetime({ offset: true }).optional().openapi({ description, example: '2026-11-22T10:00:00Z' });

export const ListQuery = z.object({
  status: StatusFilter,
  provider: z.string().min(1).max(63).optional().openapi({ description: 'Only jobs at this provider.' }),
  created_after: Timestamp('Only jobs created strictly after this ISO 8601 time.'),
  created_before: Timestamp('Only jobs created strictly before this ISO 8601 time.'),
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ description: 'Page size, 1–200.' }),
  cursor: z.string().max(400).optional().openapi({ description: 'The `next_cursor` of the previous page.' }),
});

export const JobList = z
  .object({
    data: z.array(Job),
    next_cursor: z.string().nullable().openapi({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
  })
  .openapi('JobList');

const listRoute = protectedRoute('jobs:read', {
  method: 'get',
  path: '/v1/jobs',
  summary: 'List jobs, newest first',
  description:
    'Filters combine with AND. Metadata is matched by equality with `metadata[KEY]=VALUE` (for example ' +
    '`metadata[order_id]=A-17`); several keys must all match. Paging is by cursor: a page costs the same however ' +
    'deep it is, and jobs created while paging do not shift it, so every older job is listed exactly once. ' +
    'An unknown query parameter is a 400.',
  tags: ['jobs'],
  request: { query: ListQuery },
  responses: {
    200: { content: { 'application/json': { schema: JobList } }, description: 'A page of jobs.' },
  },
});

const knownParams = new Set(Object.keys(ListQuery.shape));
const METADATA_PARAM = /^metadata\[(.+)\]$/;

function invalid(field: string, message: string): AppError {
  return new AppError('invalid_request', `${field}: ${message}`, [{ field, message }]);
}

/**
 * The `metadata[KEY]=VALUE` pairs of a query, which the query schema cannot describe. Any other
 * parameter the schema does not know is refused, so a misspelt filter never silently lists everything.
 */
function metadataFilter(query: Record<string, string[]>): Record<string, string> {
  // No prototype: `metadata[__proto__]=x` must be a filter like any other, not a no-op.
  const metadata: Record<string, string> = Object.create(null);
  for (const [param, values] of Object.entries(query)) {
    if (knownParams.has(param)) continue;
    const key = METADATA_PARAM.exec(param)?.[1];
    if (key === undefined) {
      throw invalid(param, param.startsWith('metadata') ? 'write metadata filters as metadata[KEY]=VALUE' : 'unknown query parameter');
    }
    if (key.length > 100) throw invalid(param, 'metadata keys are at most 100 characters');
    if (values.length !== 1) throw invalid(param, 'give each metadata key once');
    const value = values[0]!;
    if (value.length > 1000) throw invalid(param, 'metadata values are at most 1000 characters');
    metadata[key] = value;
  }
  if (Object.keys(metadata).length > 50) throw invalid('metadata', 'at most 50 metadata filters');
  return metadata;
}

export function registerJobListRoutes(app: OpenAPIHono<AppEnv>) {
  app.openapi(listRoute, async (c) => {
    const q = c.req.valid('query');
    const page = await listJobs(c.var.deps.db, {
      statuses: q.status,
      provider: q.provider,
      createdAfter: q.created_after,
      createdBefore: q.created_before,
      metadata: metadataFilter(c.req.queries()),
      limit: q.limit,
      cursor: q.cursor,
    });
    return c.json({ data: page.data.map(jobView), next_cursor: page.next_cursor }, 200);
  });
}
