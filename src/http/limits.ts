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
 * the fast path for callbacks served by @hono/node-server, without building a web stream.
 */
export async function readIncomingExactly(incoming: AsyncIterable<Buffer>, length: number): Promise<Uint8Array> {
  const out = Buffer.allocUnsafe(length);
  let offset = 0;
  for await (const chunk of incoming) {
    if (offset + chunk.length > length) throw new BodyTooLargeError('body is longer than its Content-Length');
    chunk.copy(out, offset);
    offset += chunk.length;
  }
  return offset === length ? out : out.subarray(0, offset);
}
