import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyTooLargeError, readIncomingExactly } from '../../src/http/limits.js';

describe('readIncomingExactly: a request body of a declared length, from the stream events', () => {
  it('reads a body sent in pieces, and an empty one', async () => {
    const s = new PassThrough();
    const read = readIncomingExactly(s, 11);
    s.write('hello ');
    s.end('world');
    expect(Buffer.from(await read).toString()).toBe('hello world');

    const empty = new PassThrough();
    const none = readIncomingExactly(empty, 0);
    empty.end();
    expect((await none).byteLength).toBe(0);
  });

  it('gives what came when the stream ends short', async () => {
    const s = new PassThrough();
    const read = readIncomingExactly(s, 10);
    s.end('abc');
    expect(Buffer.from(await read).toString()).toBe('abc');
  });

  it('refuses more than the declared length, and stops reading', async () => {
    const s = new PassThrough();
    const read = readIncomingExactly(s, 3);
    s.write('abcd');
    await expect(read).rejects.toBeInstanceOf(BodyTooLargeError);
    expect(s.destroyed).toBe(true);
  });

  it('rejects when the stream errors or closes before its end', async () => {
    const failing = new PassThrough();
    const failed = readIncomingExactly(failing, 5);
    failing.write('ab');
    failing.destroy(new Error('socket hang up'));
    await expect(failed).rejects.toThrow('socket hang up');

    const closing = new PassThrough();
    const closed = readIncomingExactly(closing, 5);
    closing.write('ab');
    closing.destroy();
    await expect(closed).rejects.toThrow(/closed before its body ended/);
  });

  it('settles at once on a stream that is already over', async () => {
    const ended = new PassThrough();
    ended.end('gone');
    ended.resume();
    await new Promise((r) => ended.once('end', r));
    expect((await readIncomingExactly(ended, 4)).byteLength).toBe(0);

    const destroyed = new PassThrough();
    destroyed.destroy();
    await expect(readIncomingExactly(destroyed, 4)).rejects.toThrow(/closed before its body ended/);
  });
});
