// Loopback ports for tests and benches that must know a port before the server on it
// starts (Raft peers, `cluster up` with its fixed offsets, a closed port to partition a replica).
import net from 'node:net';

/** Listens on `port` (0: any); resolves to the server, or null when it is taken. */
function hold(port: number): Promise<net.Server | null> {
  const s = net.createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/**
 * Ports that were free a moment ago (all held at once, so they differ). Picked below Linux's
 * ephemeral range (32768+), where the kernel hands out source ports of outgoing connections
 * that could take the port between now and the server's listen. Bounded: 50 tries per port.
 */
export async function freePorts(n: number): Promise<number[]> {
  const held: net.Server[] = [];
  for (let tries = 0; held.length < n && tries < 50 * n; tries++) {
    // 10000-19999 here, 20000-32767 for freePortBase: the two never pick the same port.
    const s = await hold(10_000 + Math.floor(Math.random() * 10_000));
    if (s) held.push(s);
  }
  const ports = held.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  if (ports.length < n) throw new Error(`only ${ports.length} of ${n} free loopback ports`);
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** Whether `port` on 127.0.0.1 can be listened on right now. */
export async function portFree(port: number): Promise<boolean> {
  const s = await hold(port);
  if (s) await new Promise((r) => s.close(r));
  return s !== null;
}

/**
 * A base port P with P+1 .. P+span all free a moment ago, for `cluster up --port-base P`
 * (it puts its processes at fixed offsets from P). Bounded: 50 random blocks at most.
 */
export async function freePortBase(span = 30): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below Linux's ephemeral range (32768+): outgoing connections take their source
    // port from there, and one of them took a port `cluster up` was about to listen on.
    const base = 20_000 + Math.floor(Math.random() * 1_200) * 10;
    let ok = true;
    for (let p = base + 1; p <= base + span && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free block of loopback ports');
}
