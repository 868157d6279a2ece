import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dbKind } from '../helpers/db.js';

const DEMO = join(import.meta.dirname, '../../dist/demo.js');

describe('npm run demo', () => {
  // The demo always runs on its own throw-away PGlite database: once is enough.
  it.skipIf(dbKind !== 'pglite')('runs every job to its expected end and every outcome reaches the subscriber, signed', { timeout: 60_000 }, async () => {
    expect(existsSync(DEMO), 'dist/demo.js is missing: run `npm run build`').toBe(true);
    const proc = spawn(process.execPath, [DEMO], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => proc.on('exit', r));
    expect(code, out).toBe(0);
    expect(out).not.toMatch(/BAD SIGNATURE|did not end as expected/);
    expect(out.match(/(succeeded|failed) \(signed\)/g)).toHaveLength(8);
  });
});
