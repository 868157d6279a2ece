import type { JobRequest, RuleViolation } from '../jobs/request.js';

/**
 * A small collector for request-rule checks, so each adapter's rules read as a list:
 * `r.oneOf('duration', req.duration, [6, 10], 'toapis.gemini_omni.duration')`.
 */
export class Rules {
  readonly violations: RuleViolation[] = [];

  fail(field: string, rule: string, message: string): this {
    this.violations.push({ field, rule, message });
    return this;
  }

  /** `value`, when present, must be one of `allowed`. */
  oneOf<T>(field: string, value: T | undefined, allowed: readonly T[], rule: string): this {
    if (value !== undefined && !allowed.includes(value)) {
      this.fail(field, rule, `${field} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}; got ${JSON.stringify(value)}`);
    }
    return this;
  }

  required(field: string, value: unknown, rule: string, why = ''): this {
    if (value === undefined || value === null || value === '') this.fail(field, rule, `${field} is required${why ? ` ${why}` : ''}`);
    return this;
  }

  /** Array length within [min, max] when the array is present. */
  count(field: string, value: readonly unknown[] | undefined, min: number, max: number, rule: string, why = ''): this {
    const n = value?.length ?? 0;
    if (value !== undefined && (n < min || n > max)) {
      this.fail(field, rule, `${field} takes ${min === max ? min : `${min}–${max}`} item(s)${why ? ` ${why}` : ''}; got ${n}`);
    }
    return this;
  }

  range(field: string, value: number | undefined, min: number, max: number, rule: string): this {
    if (value !== undefined && (value < min || value > max)) this.fail(field, rule, `${field} must be between ${min} and ${max}; got ${value}`);
    return this;
  }

  /** Fields of the normalised request this provider has no place for: refused rather than silently dropped. */
  unsupported(req: JobRequest, fields: readonly (keyof JobRequest)[], rule: string): this {
    for (const f of fields) {
      if (req[f] !== undefined) this.fail(f, rule, `${f} is not supported by this provider; remove it (or pass a native field in provider_options)`);
    }
    return this;
  }
}

/** A `provider_options` value as a string, or undefined when absent (a non-string is reported). */
export function optionString(r: Rules, req: JobRequest, name: string, rule: string): string | undefined {
  const v = req.provider_options?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    r.fail(`provider_options.${name}`, rule, `provider_options.${name} must be a string`);
    return undefined;
  }
  return v;
}

/** Drops undefined values so a provider body carries only what was asked for. */
export function compact<T extends Record<string, unknown>>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
