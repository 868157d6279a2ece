import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { deliveries, type EventRow, type JobRow, subscriptions } from '../db/schema.js';
import { idTimePrefix, newId } from '../ids.js';
import { defaultEventTypes } from './payload.js';

export interface NewEvent {
  job: JobRow;
  event: Pick<EventRow, 'eventId' | 'type'>;
}

/**
 * The outbox: inside the transaction that appends the events, one delivery per event and enabled
 * subscription that wants it (event type, provider, metadata containment), and one per event for
 * its job's `notify_url`. One INSERT … SELECT for all of them, so the subscriptions are read under
 * the same snapshot that commits the events: a subscription created after an event never receives
 * it, one created before always does. A trigger wakes the delivery workers on every replica when
 * this commits.
 */
export async function enqueueDeliveries(tx: Tx, events: readonly NewEvent[]): Promise<void> {
  if (!events.length) return;
  const s = subscriptions;
  const rows = events.map(({ job, event }) => ({
    event_id: event.eventId,
    type: event.type,
    job_id: job.id,
    provider: job.provider,
    metadata: job.metadata,
  }));
  await tx.execute(sql`
    insert into ${deliveries} (id, subscription_id, job_id, event_id, event_type, next_attempt_at)
    select ${idTimePrefix('dlv')} || substr(md5(random()::text || ${s.id} || e.event_id), 1, 16),
           ${s.id}, e.job_id, e.event_id, e.type, now()
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
           as e(event_id text, type text, job_id text, provider text, metadata jsonb)
    join ${s} on ${s.disabledAt} is null
      and e.type = any(${s.eventTypes})
      and (${s.providers} is null or e.provider = any(${s.providers}))
      and e.metadata @> ${s.metadata}`);

  // A notify_url has no way to choose event types: it gets the outcomes, like a subscription that does not choose.
  const notify = events.filter(({ job, event }) => job.notifyUrl && (defaultEventTypes as readonly string[]).includes(event.type));
  if (notify.length) {
    await tx.insert(deliveries).values(
      notify.map(({ job, event }) => ({
        id: newId('dlv'),
        url: job.notifyUrl,
        jobId: job.id,
        eventId: event.eventId,
        eventType: event.type,
        nextAttemptAt: sql`now()` as unknown as Date,
      })),
    );
  }
}
