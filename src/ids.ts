import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** Random bytes are drawn 4 KiB at a time: one call to the system per 256 ids, not one per id. */
let pool = Buffer.alloc(0);
function randomChunk(): Buffer {
  if (pool.length < 16) pool = randomBytes(4096);
  const chunk = pool.subarray(0, 16);
  pool = pool.subarray(16);
  return chunk;
}

/**
 * A ULID-style id: 48 bits of milliseconds then 80 random bits, in lower-case Crockford base32,
 * so ids sort by creation time and reveal nothing guessable.
 */
export function newId(prefix: string, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomChunk();
  let rand = '';
  for (let i = 0; i < 16; i++) rand += CROCKFORD[bytes[i]! % 32];
  return `${prefix}_${time}${rand}`;
}

/** The time part of a `newId` (prefix included), for ids the database completes with its own random part. */
export function idTimePrefix(prefix: string, now = Date.now()): string {
  return newId(prefix, now).slice(0, prefix.length + 1 + 10);
}
