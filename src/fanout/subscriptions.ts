import { desc, eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { toPage } from '../db/rows.js';
import { type SubscriptionRow, subscriptions } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { EventType } from '../jobs/states.js';
import { defaultEventTypes } from './payload.js';
import { disableSubscriptions } from './record.js';
import { generateSecret, secretProblem } from './signing.js';
import { assertTargetAllowed } from './targets.js';

/** How long a rotated-out secret keeps signing, so receivers can switch without missing a delivery. */
export const ROTATION_GRACE_MS = 24 * 3600 * 1000;

export interface SubscriptionContext {
  db: Db;
  /** Configured provider names, so a typo in `providers` is refused rather than matching nothing. */
  providerNames: ReadonlySet<string>;
  allowPrivateTargets: boolean;
}

export interface SubscriptionInput {
  url: string;
  description?: string | null | undefined;
  event_types?: EventType[] | undefined;
  providers?: string[] | null | undefined;
  metadata?: Record<string, string> | undefined;
  secret?: string | undefined;
}

export interface SubscriptionPatch extends Partial<Omit<SubscriptionInput, 'secret'>> {
  enabled?: boolean | undefined;
}

function invalid(field: string, message: string): AppError {
  return new AppError('invalid_request', `${field}: ${message}`, [{ field, message }]);
}

function checkProviders(ctx: SubscriptionContext, providers: string[] | null | undefined) {
  for (const [i, p] of (providers ?? []).entries()) {
    if (!ctx.providerNames.has(p)) throw invalid(`providers.${i}`, `no provider named "${p}" is configured`);
  }
}

function checkSecret(secret: string | undefined) {
  const problem = secret === undefined ? null : secretProblem(secret);
  if (problem) throw invalid('secret', problem);
}

export async function createSubscription(ctx: SubscriptionContext, input: SubscriptionInput): Promise<SubscriptionRow> {
  assertTargetAllowed(input.url, 'url', ctx.allowPrivateTargets);
  checkProviders(ctx, input.providers);
  checkSecret(input.secret);
  const [row] = await ctx.db
    .insert(subscriptions)
    .values({
      id: newId('sub'),
      url: input.url,
      description: input.description ?? null,
      eventTypes: [...new Set(input.event_types ?? defaultEventTypes)],
      providers: input.providers?.length ? [...new Set(input.providers)] : null,
      metadata: input.metadata ?? {},
      secret: input.secret ?? generateSecret(),
    })
    .returning();
  return row!;
}

export async function getSubscription(db: Db, id: string): Promise<SubscriptionRow> {
  const [row] = await db.select().from(subscriptions).where(eq(subscriptions.id, id));
  if (!row) throw new AppError('not_found', `subscription ${id} not found`);
  return row;
}

/** Newest first; keyset by id (ids sort by creation time). */
export async function listSubscriptions(db: Db, limit: number, cursor?: string) {
  const rows = await db
    .select()
    .from(subscriptions)
    .where(cursor ? lt(subscriptions.id, cursor) : undefined)
    .orderBy(desc(subscriptions.id))
    .limit(limit + 1);
  return toPage(rows, limit, (last) => last.id);
}

/**
 * Changes what a subscription receives or where. `enabled: false` disables it by hand (its pending
 * deliveries wait); `enabled: true` re-enables one however it was disabled, clears its failing
 * streak and makes its waiting deliveries due at once.
 */
export async function updateSubscription(ctx: SubscriptionContext, id: string, patch: SubscriptionPatch): Promise<SubscriptionRow> {
  if (patch.url !== undefined) assertTargetAllowed(patch.url, 'url', ctx.allowPrivateTargets);
  checkProviders(ctx, patch.providers);
  return ctx.db.transaction(async (tx) => {
    const [current] = await tx.select().from(subscriptions).where(eq(subscriptions.id, id)).for('update');
    if (!current) throw new AppError('not_found', `subscription ${id} not found`);
    const set: Partial<typeof subscriptions.$inferInsert> = { updatedAt: new Date() };
    if (patch.url !== undefined) set.url = patch.url;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.event_types !== undefined) set.eventTypes = [...new Set(patch.event_types)];
    if (patch.providers !== undefined) set.providers = patch.providers?.length ? [...new Set(patch.providers)] : null;
    if (patch.metadata !== undefined) set.metadata = patch.metadata;
    if (patch.enabled === true && current.disabledAt) {
      Object.assign(set, { disabledAt: null, disabledReason: null, failingSince: null });
      await tx.execute(sql`
        update deliveries set next_attempt_at = now(), updated_at = now()
        where subscription_id = ${id} and status = 'pending' and next_attempt_at is null`);
    }
    await tx.update(subscriptions).set(set).where(eq(subscriptions.id, id));
    if (patch.enabled === false) await disableSubscriptions(tx, [id], 'manual');
    const [row] = await tx.select().from(subscriptions).where(eq(subscriptions.id, id));
    return row!;
  });
}

/** Deletes a subscription with its deliveries and their attempts. */
export async function deleteSubscription(db: Db, id: string): Promise<SubscriptionRow> {
  const [row] = await db.delete(subscriptions).where(eq(subscriptions.id, id)).returning();
  if (!row) throw new AppError('not_found', `subscription ${id} not found`);
  return row;
}

/**
 * A new secret (generated, or the caller's); the old one keeps signing alongside it for 24 h. A
 * second rotation within that time retires the oldest at once: two secrets at most.
 */
export async function rotateSubscriptionSecret(db: Db, id: string, secret?: string): Promise<SubscriptionRow> {
  checkSecret(secret);
  const [row] = await db
    .update(subscriptions)
    .set({
      previousSecret: sql`${subscriptions.secret}`,
      previousSecretExpiresAt: new Date(Date.now() + ROTATION_GRACE_MS),
      secret: secret ?? generateSecret(),
      updatedAt: new Date(),
    })
    .where(eq(subscriptions.id, id))
    .returning();
  if (!row) throw new AppError('not_found', `subscription ${id} not found`);
  return row;
}
