import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** Raw bytes, exactly as received. postgres.js hands back a Buffer and PGlite a Uint8Array; both become a Buffer. */
const bytea = customType<{ data: Buffer; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  toDriver: (value) => value,
  fromDriver: (value) => Buffer.from(value),
});

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Small key/value facts the relay keeps about itself, such as the generated server secret. */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export const apiKeys = pgTable('api_keys', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** The first characters of the key, so an operator can tell keys apart without the secret. */
  prefix: text('prefix').notNull(),
  /** SHA-256 of the whole key, hex. Keys are 32 random bytes, so a slow hash would add nothing. */
  hash: text('hash').notNull().unique(),
  scopes: text('scopes').array().notNull(),
  createdAt: createdAt(),
  lastUsedAt: tstz('last_used_at'),
  revokedAt: tstz('revoked_at'),
});

export type JobStatus = 'queued' | 'submitted' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'expired';
export interface JobError {
  code: string;
  message: string;
  source: 'provider' | 'relay';
}
export interface JobResult {
  video_urls: string[];
  raw: unknown;
}

export const jobs = pgTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    provider: text('provider').notNull(),
    model: text('model'),
    providerTaskId: text('provider_task_id'),
    status: text('status').$type<JobStatus>().notNull(),
    progress: integer('progress'),
    input: jsonb('input').$type<Record<string, unknown>>().notNull().default({}),
    result: jsonb('result').$type<JobResult>(),
    error: jsonb('error').$type<JobError>(),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    notifyUrl: text('notify_url'),
    /** `Idempotency-Key` of the submission, scoped to the API key that sent it. */
    idempotencyKey: text('idempotency_key'),
    idempotencyOwner: text('idempotency_owner'),
    /** SHA-256 of the submitted request, so a reused key with a different request is refused. */
    requestHash: text('request_hash'),
    /** When the job's next piece of background work (submission) is due; null when none is. */
    dueAt: tstz('due_at'),
    /** A worker holds the job until then; an expired lease may be claimed again. */
    leaseUntil: tstz('lease_until'),
    /** Submission attempts made so far. */
    attempts: integer('attempts').notNull().default(0),
    /**
     * Set, and committed, before a submit request leaves; cleared when its outcome is recorded.
     * A job found with it set after its lease expired may have reached the provider: it is never re-sent.
     */
    submitInFlightSince: tstz('submit_in_flight_since'),
    lastError: jsonb('last_error').$type<JobError>(),
    /** Status polls made, and consecutive failed ones (5xx, network) and `task_not_found` answers. */
    polls: integer('polls').notNull().default(0),
    pollFailures: integer('poll_failures').notNull().default(0),
    notFoundCount: integer('not_found_count').notNull().default(0),
    /**
     * When `progress` was last read by a poll, and the first non-zero progress seen with its time:
     * the two ends of the baseline the poll scheduler estimates the finishing time from.
     */
    progressAt: tstz('progress_at'),
    progressBase: integer('progress_base'),
    progressBaseAt: tstz('progress_base_at'),
    /** The sequence number of the job's newest event; the next event takes this + 1. */
    eventSeq: integer('event_seq').notNull().default(0),
    createdAt: createdAt(),
    submittedAt: tstz('submitted_at'),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
    completedAt: tstz('completed_at'),
  },
  (t) => [
    uniqueIndex('jobs_provider_task_uq')
      .on(t.provider, t.providerTaskId)
      .where(sql`${t.providerTaskId} is not null`),
    index('jobs_created_idx').on(t.createdAt, t.id),
    uniqueIndex('jobs_idempotency_uq')
      .on(t.idempotencyOwner, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    index('jobs_submit_due_idx')
      .on(t.dueAt)
      .where(sql`${t.status} = 'queued' and ${t.dueAt} is not null`),
    // `metadata[key]=value` filters (containment), however rare the match.
    index('jobs_metadata_idx').using('gin', sql`${t.metadata} jsonb_path_ops`),
    index('jobs_poll_due_idx')
      .on(t.provider, t.dueAt)
      .where(sql`${t.status} in ('submitted', 'processing', 'expired') and ${t.dueAt} is not null`),
  ],
);

export const jobEvents = pgTable(
  'job_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    eventId: text('event_id').notNull().unique(),
    /**
     * No foreign key to `jobs` (nor on `callback_receipts.job_id`): rows are written only in the
     * statement that updated or read the job, and jobs are never deleted, so a key would only add a
     * lookup of the job for every event and receipt on the hottest write (migration 0008).
     */
    jobId: text('job_id').notNull(),
    sequence: integer('sequence').notNull(),
    type: text('type').notNull(),
    /** The job as it was right after this change. */
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    /**
     * The event's place in commit order, set by a trigger as its transaction commits (null until
     * then, so only inside that transaction): the event feed's order and cursor. See src/events/feed.ts.
     */
    commitSeq: bigint('commit_seq', { mode: 'number' }),
  },
  (t) => [
    uniqueIndex('job_events_job_seq_uq').on(t.jobId, t.sequence),
    uniqueIndex('job_events_commit_seq_uq').on(t.commitSeq),
    // Retention finds old events by age.
    index('job_events_created_idx').on(t.createdAt),
  ],
);

/**
 * One token bucket per provider and kind of call, shared by every replica: a replica takes tokens
 * with one row-locking UPDATE before it calls the provider, so the limit holds for all of them
 * together. `pausedUntil` holds the whole provider back after a 429.
 */
export const providerBudgets = pgTable(
  'provider_budgets',
  {
    provider: text('provider').notNull(),
    kind: text('kind').$type<'status' | 'submit'>().notNull(),
    tokens: doublePrecision('tokens').notNull(),
    refilledAt: tstz('refilled_at').notNull().defaultNow(),
    pausedUntil: tstz('paused_until'),
  },
  (t) => [primaryKey({ columns: [t.provider, t.kind] })],
);

export type ReceiptVerdict =
  | 'applied' // moved the job forward
  | 'updated' // same state, newer progress
  | 'duplicate' // nothing new
  | 'stale' // an earlier state than the job already has
  | 'contradicted' // the provider's status endpoint disagreed; its answer was applied instead
  | 'ignored' // a status the relay does not act on
  | 'unauthorized'
  | 'unknown_job'
  | 'malformed'
  | 'too_large'
  | 'unsupported_media_type'
  | 'unverifiable'; // the provider could not be asked to confirm; the provider is told to retry

export const callbackReceipts = pgTable(
  'callback_receipts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    provider: text('provider').notNull(),
    /** The job it was applied to, when one was found. */
    jobId: text('job_id'),
    /** For rejected requests: the job id the URL named, unverified. */
    claimedJobId: text('claimed_job_id'),
    route: text('route').$type<'job' | 'provider'>().notNull(),
    /** The provider's id of this delivery (a webhook id), where it sends one: repeats are duplicates. */
    deliveryId: text('delivery_id'),
    verdict: text('verdict').$type<ReceiptVerdict>().notNull(),
    reason: text('reason'),
    headers: jsonb('headers').$type<Record<string, string>>().notNull(),
    /** The body as received; for rejected requests only its first bytes. */
    body: bytea('body').notNull(),
    bodySize: integer('body_size').notNull(),
    sourceAddress: text('source_address'),
    receivedAt: tstz('received_at').notNull().defaultNow(),
  },
  (t) => [
    index('callback_receipts_job_idx').on(t.jobId, t.id),
    index('callback_receipts_received_idx').on(t.receivedAt),
    index('callback_receipts_delivery_idx')
      .on(t.provider, t.deliveryId)
      .where(sql`${t.deliveryId} is not null`),
    index('callback_receipts_rejected_idx')
      .on(t.id)
      .where(sql`${t.jobId} is null`),
  ],
);


/**
 * A subscriber webhook. `secret` signs every delivery; after a rotation `previousSecret` signs too
 * until `previousSecretExpiresAt`, so a subscriber can switch keys without missing a delivery.
 */
export type DisabledReason = 'manual' | 'gone' | 'failing';

export const subscriptions = pgTable(
  'subscriptions',
  {
    id: text('id').primaryKey(),
    url: text('url').notNull(),
    description: text('description'),
    /** The event types it receives (the four terminal ones unless chosen). */
    eventTypes: text('event_types').array().notNull(),
    /** Only jobs at these providers; null = every provider. */
    providers: text('providers').array(),
    /** Only jobs whose metadata contains every one of these pairs; `{}` = every job. */
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    secret: text('secret').notNull(),
    previousSecret: text('previous_secret'),
    previousSecretExpiresAt: tstz('previous_secret_expires_at'),
    /** Set when the subscription stops receiving events, with why: by hand, a 410 answer, or failing for too long. */
    disabledAt: tstz('disabled_at'),
    disabledReason: text('disabled_reason').$type<DisabledReason>(),
    /** The first failure since the last success; a subscription failing for longer than the limit is disabled. */
    failingSince: tstz('failing_since'),
    createdAt: createdAt(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [index('subscriptions_enabled_idx').on(t.id).where(sql`${t.disabledAt} is null`)],
);

export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

/**
 * One event to one target: a subscription, or (`subscriptionId` null) the job's own `notify_url`.
 * Rows are written in the transaction that appends the event (the outbox), so an event is never
 * committed without its deliveries. `claims` is bumped by every claim and checked when the outcome
 * is recorded, so a worker whose lease ran out cannot overwrite the one that took over.
 */
export const deliveries = pgTable(
  'deliveries',
  {
    id: text('id').primaryKey(),
    subscriptionId: text('subscription_id').references(() => subscriptions.id, { onDelete: 'cascade' }),
    /** The target of a `notify_url` delivery; null for subscriptions (their current URL is used). */
    url: text('url'),
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    eventId: text('event_id')
      .notNull()
      .references(() => jobEvents.eventId, { onDelete: 'cascade' }),
    eventType: text('event_type').notNull(),
    status: text('status').$type<DeliveryStatus>().notNull().default('pending'),
    /** Attempts whose outcome was recorded. */
    attempts: integer('attempts').notNull().default(0),
    /** When the next attempt is due; null when none is (delivered, dead, or its subscription is disabled). */
    nextAttemptAt: tstz('next_attempt_at'),
    leaseUntil: tstz('lease_until'),
    claims: integer('claims').notNull().default(0),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
    deliveredAt: tstz('delivered_at'),
  },
  (t) => [
    uniqueIndex('deliveries_event_target_uq').on(t.eventId, t.subscriptionId).where(sql`${t.subscriptionId} is not null`),
    index('deliveries_due_idx')
      .on(t.nextAttemptAt)
      .where(sql`${t.status} = 'pending' and ${t.nextAttemptAt} is not null`),
    index('deliveries_subscription_idx').on(t.subscriptionId, t.id),
    index('deliveries_job_idx').on(t.jobId, t.id),
    index('deliveries_status_idx').on(t.status, t.id),
    index('deliveries_created_idx').on(t.createdAt),
  ],
);

/** What happened on each attempt, for the operator: status code, latency, error, the start of the answer. */
export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    deliveryId: text('delivery_id')
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    startedAt: tstz('started_at').notNull(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms').notNull(),
    error: text('error'),
    responseExcerpt: text('response_excerpt'),
  },
  (t) => [index('delivery_attempts_delivery_idx').on(t.deliveryId, t.id), index('delivery_attempts_started_idx').on(t.startedAt)],
);

export type JobRow = typeof jobs.$inferSelect;
export type EventRow = typeof jobEvents.$inferSelect;
export type ReceiptRow = typeof callbackReceipts.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type SubscriptionRow = typeof subscriptions.$inferSelect;
export type DeliveryRow = typeof deliveries.$inferSelect;
export type DeliveryAttemptRow = typeof deliveryAttempts.$inferSelect;
