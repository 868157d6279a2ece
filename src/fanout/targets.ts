import { AppError } from '../errors.js';
import { checkTargetUrl } from './guard.js';

/** Creation-time guard for a webhook target: a 400 naming the field and the rule that refused it. */
export function assertTargetAllowed(url: string, field: string, allowPrivate: boolean): void {
  const r = checkTargetUrl(url, { allowPrivate });
  if (!r.ok) throw new AppError('invalid_request', `${field}: ${r.message}`, [{ field, rule: r.rule, message: r.message }]);
}
