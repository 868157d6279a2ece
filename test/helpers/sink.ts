import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

/** What the sink does with a request: answer (status, headers, body), or `hang` to never answer. */
export type SinkBehaviour = (req: SinkRequest, nth: number) => { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/**
 * A webhook receiver on loopback for the fan-out tests: records every request per path and answers
 * as told (200 by default).
 */
export interface Sink {
  url(path: string): string;
  requests(path: string): SinkRequest[];
  on(path: string, behaviour: SinkBehaviour): void;
  /** Resolves once `path` has received `n` requests. */
  waitFor(path: string, n: number, timeoutMs?: number): Promise<SinkRequest[]>;
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const received = new Map<string, SinkRequest[]>();
  const behaviours = new Map<string, SinkBehaviour>();
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const record: SinkRequest = { path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      const list = received.get(path) ?? [];
      list.push(record);
      received.set(path, list);
      const answer = behaviours.get(path)?.(record, list.length) ?? { status: 200 };
      if (answer === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    requests: (path) => received.get(path) ?? [],
    on: (path, b) => void behaviours.set(path, b),
    async waitFor(path, n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while ((received.get(path)?.length ?? 0) < n) {
        if (Date.now() > deadline) throw new Error(`${path} received ${received.get(path)?.length ?? 0} of ${n} requests in ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return received.get(path)!;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
