/**
 * The shapes the client sends and receives, inferred from the zod schemas the relay validates and
 * documents its routes with: one source, so the client cannot drift from the API. Type-only imports:
 * none of the server's code is loaded by the client at run time.
 */
import type { z } from '@hono/zod-openapi';
import type { FeedPage, FeedQuery } from '../api/events.js';
import type { TrackJobBody } from '../api/jobs.js';
import type { JobList, ListQuery } from '../api/jobs-list.js';
import type { CallbackReceipt as CallbackReceiptSchema, Job as JobSchema, JobEvent as JobEventSchema, page, PageQuery as PageQuerySchema } from '../api/schemas.js';
import type { ErrorBody } from '../errors.js';
import type { JobRequestSchema } from '../jobs/request.js';

export type Job = z.output<typeof JobSchema>;
export type JobStatus = Job['status'];
export type JobEvent = z.output<typeof JobEventSchema>;
export type CallbackReceipt = z.output<typeof CallbackReceiptSchema>;

/** The body of `POST /v1/jobs`. */
export type JobRequest = z.input<typeof JobRequestSchema>;
/** The body of `POST /v1/jobs/track`. */
export type TrackJobRequest = z.input<typeof TrackJobBody>;

/**
 * The filters of `GET /v1/jobs`, as the relay reads them, plus `metadata`: pairs that must all be
 * in a job's metadata (sent as `metadata[KEY]=VALUE`, which the query schema cannot describe).
 */
export type ListJobsQuery = Partial<z.output<typeof ListQuery>> & { metadata?: Record<string, string> };
export type JobPage = z.output<typeof JobList>;

export type PageQuery = Partial<z.output<typeof PageQuerySchema>>;
export type JobEventPage = z.output<ReturnType<typeof page<typeof JobEventSchema>>>;
export type CallbackReceiptPage = z.output<ReturnType<typeof page<typeof CallbackReceiptSchema>>>;

export type EventFeedQuery = Partial<z.output<typeof FeedQuery>>;
export type EventFeedPage = z.output<typeof FeedPage>;

/** The `error` member of every error response. */
export type ErrorDetail = z.output<typeof ErrorBody>['error'];
export type ErrorCode = ErrorDetail['code'];
