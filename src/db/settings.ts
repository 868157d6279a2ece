import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from './client.js';
import { settings } from './schema.js';

/**
 * The server secret callback tokens are derived from: RELAY_SECRET when set, otherwise one generated
 * on first start and kept in the database, so every replica and every restart agree on it.
 */
export async function loadServerSecret(db: Db, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  await db
    .insert(settings)
    .values({ key: 'server_secret', value: randomBytes(32).toString('base64url') })
    .onConflictDoNothing();
  const [row] = await db.select().from(settings).where(eq(settings.key, 'server_secret'));
  if (!row) throw new Error('server secret could not be stored');
  return row.value;
}
