import { describe, expect, it } from 'vitest';
import { bucketShape } from '../../src/providers/budget.js';

describe('status budget bucket', () => {
  it('never lets a window of a second or more exceed the limit, with 20 ms of requests to spare', () => {
    for (const perMinute of [60, 300, 3000, 9000, 12_000, 60_000]) {
      const { burst, perSecond } = bucketShape(perMinute);
      const limit = perMinute / 60;
      expect(burst).toBeGreaterThanOrEqual(1);
      // A window of W seconds sees at most burst + perSecond × W tokens' worth of (whole) requests.
      for (const w of [1, 2, 10, 60]) expect(Math.floor(burst + perSecond * (w + 0.02))).toBeLessThanOrEqual(limit * w);
    }
  });

  it('uses at least 95 % of a limit of 3,000 a minute or more (the old shape left 15 % unused)', () => {
    for (const perMinute of [3000, 9000, 12_000]) expect(bucketShape(perMinute).perSecond).toBeGreaterThanOrEqual((0.95 * perMinute) / 60);
  });
});
