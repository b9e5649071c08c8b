// Loopback ports for tests and benches that must know a port before the server on it
// starts (Raft peers, `cluster up` with its fixed offsets, a closed port to partition a replica).
import net from 'node:net';

/** Ports that were free a moment ago (all held at once, so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.createServer();
      return new Promise<net.Server>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      });
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** Whether `port` on 127.0.0.1 can be listened on right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A base port P with P+1 .. P+span all free a moment ago, for `cluster up --port-base P`
 * (it puts its processes at fixed offsets from P). Bounded: 50 random blocks at most.
 */
export async function freePortBase(span = 30): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 3_000) * 10;
    let ok = true;
    for (let p = base + 1; p <= base + span && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free block of loopback ports');
}
