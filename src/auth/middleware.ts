import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../context.js';
import { AppError } from '../errors.js';
import { authenticate, hasScope, type Scope } from './keys.js';

/** Requires `Authorization: Bearer <key>` with `scope` (or admin). */
export function requireScope(scope: Scope) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new AppError('unauthorized', 'missing API key: send Authorization: Bearer <key>');
    const { db, config } = c.var.deps;
    const principal = await authenticate(db, match[1]!, config.adminKey);
    if (!principal) throw new AppError('unauthorized', 'invalid or revoked API key');
    if (!hasScope(principal, scope)) throw new AppError('forbidden', `this key lacks the "${scope}" scope`);
    c.set('principal', principal);
    await next();
  });
}
