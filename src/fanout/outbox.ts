import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { deliveries, type EventRow, type JobRow, subscriptions } from '../db/schema.js';
import { idTimePrefix, newId } from '../ids.js';
import { defaultEventTypes } from './payload.js';

/**
 * The outbox: inside the transaction that appends `event`, one delivery per enabled subscription
 * that wants it (event type, provider, metadata containment) and one for the job's `notify_url`.
 * One INSERT … SELECT, so the subscriptions are read under the same snapshot that commits the
 * event: a subscription created after the event never receives it, one created before always does.
 * A trigger wakes the delivery workers on every replica when this commits.
 */
export async function enqueueDeliveries(tx: Tx, job: JobRow, event: EventRow): Promise<void> {
  const s = subscriptions;
  await tx.execute(sql`
    insert into ${deliveries} (id, subscription_id, job_id, event_id, event_type, next_attempt_at)
    select ${idTimePrefix('dlv')} || substr(md5(random()::text || ${s.id}), 1, 16), ${s.id}, ${job.id}, ${event.eventId}, ${event.type}, now()
    from ${s}
    where ${s.disabledAt} is null
      and ${event.type} = any(${s.eventTypes})
      and (${s.providers} is null or ${job.provider} = any(${s.providers}))
      and ${JSON.stringify(job.metadata)}::jsonb @> ${s.metadata}`);

  // A notify_url has no way to choose event types: it gets the outcomes, like a subscription that does not choose.
  if (job.notifyUrl && (defaultEventTypes as readonly string[]).includes(event.type)) {
    await tx.insert(deliveries).values({
      id: newId('dlv'),
      url: job.notifyUrl,
      jobId: job.id,
      eventId: event.eventId,
      eventType: event.type,
      nextAttemptAt: sql`now()` as unknown as Date,
    });
  }
}
