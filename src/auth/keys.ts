import { createHash, randomBytes } from 'node:crypto';
import { and, count, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Database, Db } from '../db/client.js';
import { apiKeys } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { secretsEqual } from '../callbacks/tokens.js';

export const scopes = ['jobs:read', 'jobs:write', 'subscriptions:manage', 'admin'] as const;
export type Scope = (typeof scopes)[number];

export interface Principal {
  keyId: string;
  name: string;
  scopes: readonly Scope[];
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes('admin') || p.scopes.includes(scope);
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function generateKey(): string {
  return `crk_${randomBytes(32).toString('base64url')}`;
}

export async function createApiKey(db: Db, input: { name: string; scopes: readonly Scope[] }) {
  const key = generateKey();
  const [row] = await db
    .insert(apiKeys)
    .values({ id: newId('key'), name: input.name, prefix: key.slice(0, 10), hash: hashKey(key), scopes: [...input.scopes] })
    .returning();
  return { key, row: row! };
}

/** Every stored key, revoked ones included, newest first. */
export async function listApiKeys(db: Db) {
  return db.select().from(apiKeys).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id));
}

/** Revokes a key at once; revoking it again keeps the first revocation time. */
export async function revokeApiKey(db: Db, id: string) {
  const [row] = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(eq(apiKeys.id, id))
    .returning();
  if (!row) throw new AppError('not_found', `API key ${id} not found`);
  return row;
}

/** Finds who a bearer key belongs to: the RELAY_ADMIN_KEY, or a stored key that is not revoked. */
export async function authenticate(db: Db, key: string, adminKey: string | undefined): Promise<Principal | null> {
  if (adminKey && secretsEqual(key, adminKey)) return { keyId: 'env', name: 'RELAY_ADMIN_KEY', scopes: ['admin'] };
  if (!key.startsWith('crk_') || key.length > 200) return null;
  const [row] = await db
    .select({ id: apiKeys.id, name: apiKeys.name, scopes: apiKeys.scopes, lastUsedAt: apiKeys.lastUsedAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.hash, hashKey(key)), isNull(apiKeys.revokedAt)));
  if (!row) return null;
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    // At most one write per key a minute, so a busy key does not turn every read into a write.
    await db
      .update(apiKeys)
      .set({ lastUsedAt: new Date() })
      .where(eq(apiKeys.id, row.id))
      .catch(() => {});
  }
  return { keyId: row.id, name: row.name, scopes: row.scopes as Scope[] };
}

const LAST_USED_RESOLUTION_MS = 60_000;

// Distinct from the migration lock (…001) and the event commit-order lock (…002, see drizzle/0002).
const BOOTSTRAP_LOCK_KEY = 726_351_003;

/**
 * On the very first start, with no stored key and no RELAY_ADMIN_KEY, makes one admin key and
 * returns it so it can be printed once. Under an advisory lock, so two replicas make one key.
 */
export async function ensureBootstrapKey(database: Database, adminKey: string | undefined): Promise<string | null> {
  if (adminKey) return null;
  return database.withAdvisoryLock(BOOTSTRAP_LOCK_KEY, async (db) => {
    const [row] = await db.select({ n: count() }).from(apiKeys);
    if ((row?.n ?? 0) > 0) return null;
    const { key } = await createApiKey(db, { name: 'bootstrap-admin', scopes: ['admin'] });
    return key;
  });
}
