import { sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../db/client.js';
import { providerBudgets } from '../db/schema.js';

export type BudgetKind = 'status' | 'submit';

export interface Grant {
  granted: number;
  /** When nothing was granted: how long until a token (or the end of a pause). */
  waitMs: number;
}

/**
 * The bucket's shape for a limit of `perMinute`: a burst of 20 ms worth (at least one token),
 * refilled at the limit less the burst and less 20 ms worth, so that no window of one second or
 * more, in particular no minute, sees more than the limit (burst + rate × W ≤ perMinute / 60 × W
 * for every W ≥ 1 s), with room for requests that leave up to 20 ms late and arrive together with
 * the next ones. The small burst keeps what is left unused small: 4 % at 3,000 a minute (a tenth
 * of a second's burst, with half a burst spare, left 15 %).
 */
export function bucketShape(perMinute: number): { burst: number; perSecond: number } {
  const perSecond = perMinute / 60;
  const burst = Math.max(1, Math.floor(perSecond / 50));
  return { burst, perSecond: Math.max(perSecond * 0.98 - burst, perSecond / 2) };
}

/**
 * Provider rate limits held in Postgres, so they hold across replicas: each take is one UPDATE
 * that locks the provider's row for a moment, refills by the time elapsed, and grants what is there.
 */
export class ProviderBudgets {
  private readonly ensured = new Set<string>();

  constructor(private readonly db: Db) {}

  private async ensure(provider: string, kind: BudgetKind, burst: number) {
    const key = `${provider}\u0000${kind}`;
    if (this.ensured.has(key)) return;
    await this.db.insert(providerBudgets).values({ provider, kind, tokens: burst }).onConflictDoNothing();
    this.ensured.add(key);
  }

  /** Takes up to `want` tokens now (possibly none: then `waitMs` says when to ask again). */
  async take(provider: string, kind: BudgetKind, perMinute: number, want: number): Promise<Grant> {
    const { burst, perSecond } = bucketShape(perMinute);
    await this.ensure(provider, kind, burst);
    const result = await this.db.execute(sql`
      with cur as (
        select provider, kind, paused_until,
               least(${burst}::float8, tokens + extract(epoch from (clock_timestamp() - refilled_at)) * ${perSecond}::float8) as avail
        from provider_budgets
        where provider = ${provider} and kind = ${kind}
        for update
      ), g as (
        select *,
               case when paused_until > clock_timestamp() then 0
                    else greatest(0, least(${want}::int, floor(avail)::int)) end as granted
        from cur
      )
      update provider_budgets b
      set tokens = g.avail - g.granted, refilled_at = clock_timestamp()
      from g
      where b.provider = g.provider and b.kind = g.kind
      returning g.granted as granted, g.avail as avail,
                greatest(0, extract(epoch from (g.paused_until - clock_timestamp())))::float8 as paused_s`);
    const [row] = rowsOf<{ granted: number; avail: number; paused_s: number | null }>(result);
    const granted = Number(row?.granted ?? 0);
    if (granted > 0) return { granted, waitMs: 0 };
    const pausedMs = Number(row?.paused_s ?? 0) * 1000;
    // Wait for a whole burst (or what was asked for, if less), not for the first token: a loop
    // woken for every token would make a claim per request.
    const refillMs = ((Math.min(want, burst) - Number(row?.avail ?? 0)) / perSecond) * 1000;
    return { granted: 0, waitMs: Math.max(1, Math.ceil(Math.max(pausedMs, refillMs))) };
  }

  /** Returns tokens taken but not used. */
  async giveBack(provider: string, kind: BudgetKind, perMinute: number, n: number): Promise<void> {
    if (n <= 0) return;
    const { burst } = bucketShape(perMinute);
    await this.db.execute(sql`
      update provider_budgets set tokens = least(${burst}::float8, tokens + ${n}::float8)
      where provider = ${provider} and kind = ${kind}`);
  }

  /** Holds every replica's calls of this kind to the provider back until `until` (a 429's `Retry-After`). */
  async pause(provider: string, kind: BudgetKind, until: Date): Promise<void> {
    await this.db.execute(sql`
      update provider_budgets
      set paused_until = greatest(coalesce(paused_until, ${until.toISOString()}::timestamptz), ${until.toISOString()}::timestamptz)
      where provider = ${provider} and kind = ${kind}`);
  }
}
