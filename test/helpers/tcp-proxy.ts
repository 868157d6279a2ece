import net from 'node:net';

/**
 * A TCP proxy on loopback that can be taken down and brought back on the same port: a stand-in
 * for a database server or a subscriber that goes away, without touching the real one (other test
 * files share it). Down means every piped connection is destroyed and new ones are refused.
 */
export interface TcpProxy {
  port: number;
  /** Connections piped right now. */
  open(): number;
  /** Destroys every piped connection and stops listening (new connections are refused). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // A reset on either side is the point of the exercise, not a failure of the test.
    s.on('error', () => {});
  };
  const onConnection = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    track(client);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  let server = net.createServer(onConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  let listening = true;

  const down = async () => {
    if (listening) {
      listening = false;
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    }
    for (const s of sockets) s.destroy();
  };
  return {
    port,
    open: () => sockets.size / 2,
    down,
    async up() {
      if (listening) return;
      server = net.createServer(onConnection);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    close: down,
  };
}
