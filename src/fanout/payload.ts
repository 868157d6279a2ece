import type { EventRow } from '../db/schema.js';
import type { EventType } from '../jobs/states.js';

/** What a subscription receives when it does not choose: the outcomes, not the steps. */
export const defaultEventTypes: readonly EventType[] = ['job.succeeded', 'job.failed', 'job.canceled', 'job.expired'];

/**
 * The body every target of an event receives (SPEC "Events and fan-out"). Built from the stored
 * event alone, so every attempt and every subscriber get the same bytes.
 */
export function deliveryBody(event: Pick<EventRow, 'eventId' | 'type' | 'sequence' | 'data' | 'createdAt'>): string {
  return JSON.stringify({
    type: event.type,
    timestamp: event.createdAt.toISOString(),
    data: { event_id: event.eventId, sequence: event.sequence, job: event.data },
  });
}
