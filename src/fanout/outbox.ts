import { type SQL, sql } from 'drizzle-orm';
import { deliveries, type EventRow, type JobRow, subscriptions } from '../db/schema.js';
import { idTimePrefix, newId } from '../ids.js';
import { defaultEventTypes } from './payload.js';
import { jsonParam } from '../db/json.js';
import type { WriteShape } from '../jobs/transition.js';

export interface NewEvent {
  job: JobRow;
  event: Pick<EventRow, 'eventId' | 'type'>;
}

/** What the outbox CTEs write, each one query parameter. */
export interface OutboxValues {
  /** The events to fan out to subscriptions (JSON). */
  fanned: string;
  /** The deliveries to jobs' `notify_url`s (JSON). */
  notify: string;
  /** The time prefix of the subscription deliveries' ids. */
  deliveryPrefix: string;
}

export type OutboxParams = { [K in keyof OutboxValues]: unknown };

export function outboxValues(events: readonly NewEvent[]): OutboxValues {
  const fanned = events.map(({ job, event }) => ({
    event_id: event.eventId,
    type: event.type,
    job_id: job.id,
    provider: job.provider,
    metadata: job.metadata,
  }));
  // A notify_url has no way to choose event types: it gets the outcomes, like a subscription that does not choose.
  const notify = events
    .filter(({ job, event }) => job.notifyUrl && (defaultEventTypes as readonly string[]).includes(event.type))
    .map(({ job, event }) => ({ id: newId('dlv'), url: job.notifyUrl, job_id: job.id, event_id: event.eventId, type: event.type }));
  return { fanned: jsonParam(fanned), notify: jsonParam(notify), deliveryPrefix: idTimePrefix('dlv') };
}

/**
 * The outbox, as CTEs (starting with a comma) for the statement that appends the events: one
 * delivery per event and enabled subscription that wants it (event type, provider, metadata
 * containment), and one per outcome event for its job's `notify_url`. Written by the same statement
 * as the events, so the subscriptions are read under the snapshot that commits them: a subscription
 * created after an event never receives it, one created before always does. A trigger on
 * `deliveries` wakes the delivery workers on every replica when this commits. `p` holds the values
 * (`outboxValues`) or placeholders for them: the text depends only on `shape`.
 */
export function outboxCtes(p: OutboxParams, shape: WriteShape, onlyJobsIn?: SQL): SQL {
  if (shape === 'jobs') return sql``;
  const s = subscriptions;
  // For a statement that writes only the jobs it could lock (see writeCtes).
  const only = (column: SQL) => (onlyJobsIn ? sql`where ${column} in ${onlyJobsIn}` : sql``);
  return sql`,
    fanned_out as (
      insert into ${deliveries} (id, subscription_id, job_id, event_id, event_type, next_attempt_at)
      select ${p.deliveryPrefix}::text || substr(md5(random()::text || ${s.id} || e.event_id), 1, 16),
             ${s.id}, e.job_id, e.event_id, e.type, now()
      from jsonb_to_recordset(${p.fanned}::jsonb)
             as e(event_id text, type text, job_id text, provider text, metadata jsonb)
      join ${s} on ${s.disabledAt} is null
        and e.type = any(${s.eventTypes})
        and (${s.providers} is null or e.provider = any(${s.providers}))
        and e.metadata @> ${s.metadata}
      ${only(sql`e.job_id`)}
    )${shape === 'notify' ? sql`,
    notified as (
      insert into ${deliveries} (id, url, job_id, event_id, event_type, next_attempt_at)
      select n.id, n.url, n.job_id, n.event_id, n.type, now()
      from jsonb_to_recordset(${p.notify}::jsonb) as n(id text, url text, job_id text, event_id text, type text)
      ${only(sql`n.job_id`)}
    )` : sql``}`;
}
