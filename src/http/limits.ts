import type { Readable } from 'node:stream';

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

/**
 * Reads a body stream into bytes, refusing more than `limit` without reading past it. A declared
 * `Content-Length` is trusted only to refuse early; the bytes actually read decide.
 */
export async function readStreamLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  declaredLength: string | null,
): Promise<Uint8Array> {
  if (declaredLength !== null && Number(declaredLength) > limit) {
    await body?.cancel().catch(() => {});
    throw new BodyTooLargeError(`body is larger than ${limit} bytes`);
  }
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLargeError(`body is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Reads a Node request stream whose `Content-Length` (≤ `limit`) Node's parser already holds it to:
 * the fast path for callbacks served straight from Node, without building a web stream. Through the
 * stream's events rather than `for await`, whose async iterator costs more than the read on a body
 * of a few hundred bytes. A stream that errors, or closes before its end, rejects; so does one
 * longer than `length` (which Node's parser does not let happen), destroying it as `for await` would.
 */
export function readIncomingExactly(incoming: Readable, length: number): Promise<Uint8Array> {
  // No event would come from a stream already over: what it held was read by someone else.
  if (incoming.readableEnded) return Promise.resolve(new Uint8Array(0));
  if (incoming.destroyed) return Promise.reject(new Error('the request closed before its body ended'));
  return new Promise((resolve, reject) => {
    const out = Buffer.allocUnsafe(length);
    let offset = 0;
    const finish = (err: Error | null) => {
      incoming.off('data', onData).off('end', onEnd).off('error', finish).off('close', onClose);
      if (err) reject(err);
      else resolve(offset === length ? out : out.subarray(0, offset));
    };
    const onData = (chunk: Buffer) => {
      if (offset + chunk.length > length) {
        finish(new BodyTooLargeError('body is longer than its Content-Length'));
        incoming.destroy();
        return;
      }
      chunk.copy(out, offset);
      offset += chunk.length;
    };
    const onEnd = () => finish(null);
    const onClose = () => finish(new Error('the request closed before its body ended'));
    incoming.on('data', onData).on('end', onEnd).on('error', finish).on('close', onClose);
  });
}
