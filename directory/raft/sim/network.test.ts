// The simulator's clock and network: if these misorder or leak messages, every seeded run
// tests something other than what it claims.
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../common/payload.ts';
import { EventQueue, type NetConfig, Network } from './network.ts';

const lossy: NetConfig = { loss: 0.5, duplicate: 0.3, minDelay: 1, jitter: 10, slow: 0.2 };

describe('EventQueue', () => {
  it('runs events by time, then in insertion order for equal times', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    // Enough events at few distinct times to exercise the heap's sift paths.
    const rnd = mulberry32(7);
    const want: Array<{ at: number; name: string }> = [];
    for (let i = 0; i < 200; i++) {
      const at = Math.floor(rnd() * 10);
      const name = `e${i}`;
      want.push({ at, name });
      q.at(at, () => seen.push(name));
    }
    expect(q.runUntil(100, 1_000)).toBe(200);
    // A stable sort by time is exactly "time, then insertion order".
    expect(seen).toEqual(want.sort((a, b) => a.at - b.at).map((e) => e.name));
  });

  it('advances the clock to each event and to `until`, and leaves later events queued', () => {
    const q = new EventQueue();
    const times: number[] = [];
    q.at(5, () => {
      times.push(q.now);
      q.after(3, () => times.push(q.now)); // scheduled relative to the event's own time
    });
    q.at(20, () => times.push(q.now));
    expect(q.runUntil(10, 100)).toBe(2);
    expect(times).toEqual([5, 8]);
    expect(q.now).toBe(10);
    expect(q.runUntil(30, 100)).toBe(1);
    expect(times).toEqual([5, 8, 20]);
  });

  it('stops after maxEvents without jumping the clock past unrun events', () => {
    const q = new EventQueue();
    let n = 0;
    for (let t = 1; t <= 5; t++) q.at(t, () => n++);
    expect(q.runUntil(100, 2)).toBe(2);
    expect(n).toBe(2);
    expect(q.now).toBe(2);
    expect(q.runUntil(100, 100)).toBe(3);
  });
});

/** Sends `count` messages a -> b and returns how many deliveries happened. */
function pump(net: Network, q: EventQueue, from: string, to: string, count: number): number {
  let got = 0;
  for (let i = 0; i < count; i++) net.send(from, to, () => got++);
  q.runUntil(q.now + 1_000, 1_000_000);
  return got;
}

describe('Network', () => {
  it('drops everything on a blocked link, in that direction only', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(1), { ...lossy, loss: 0, duplicate: 0 });
    net.block('a', 'b');
    expect(pump(net, q, 'a', 'b', 50)).toBe(0);
    expect(pump(net, q, 'b', 'a', 50)).toBe(50);
    net.heal();
    expect(pump(net, q, 'a', 'b', 50)).toBe(50);
  });

  it('symmetric partitions cut both ways; one-way partitions only from the first side', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(2), { ...lossy, loss: 0, duplicate: 0 });
    net.partition(['a'], ['b', 'c'], false);
    for (const [x, y] of [
      ['a', 'b'],
      ['b', 'a'],
      ['a', 'c'],
      ['c', 'a'],
    ] as const) {
      expect(net.isBlocked(x, y), `${x}>${y}`).toBe(true);
    }
    expect(net.isBlocked('b', 'c')).toBe(false); // same side
    net.heal();
    net.partition(['a'], ['b', 'c'], true);
    expect(net.isBlocked('a', 'b')).toBe(true);
    expect(net.isBlocked('b', 'a')).toBe(false);
    expect(pump(net, q, 'a', 'c', 20)).toBe(0);
    expect(pump(net, q, 'c', 'a', 20)).toBe(20);
  });

  it('drops a message already in flight when a cut appears before it lands', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(3), { ...lossy, loss: 0, duplicate: 0, slow: 0 });
    let got = 0;
    net.send('a', 'b', () => got++); // delay ≥ minDelay = 1
    net.block('a', 'b');
    q.runUntil(1_000, 100);
    expect(got).toBe(0);
  });

  it('loses and duplicates under the faulty config', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(4), lossy);
    let got = 0;
    const perMsg = new Map<number, number>();
    for (let i = 0; i < 1_000; i++) {
      net.send('a', 'b', () => {
        got++;
        perMsg.set(i, (perMsg.get(i) ?? 0) + 1);
      });
    }
    q.runUntil(10_000, 1_000_000);
    expect(perMsg.size).toBeLessThan(1_000); // some lost
    expect([...perMsg.values()].some((n) => n === 2)).toBe(true); // some duplicated
    expect(got).toBeGreaterThan(0);
  });

  it('reliableOnce requests are never duplicated', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(5), { ...lossy, loss: 0, duplicate: 1 });
    let got = 0;
    for (let i = 0; i < 100; i++) net.send('c1', 'n1', () => got++, true);
    q.runUntil(10_000, 1_000_000);
    expect(got).toBe(100);
  });

  it('healthy mode loses nothing, duplicates nothing and delivers within a few ms', () => {
    const q = new EventQueue();
    const net = new Network(q, mulberry32(6), { ...lossy, loss: 1, duplicate: 1 });
    net.healthy = true;
    let got = 0;
    let latest = 0;
    for (let i = 0; i < 500; i++) {
      net.send('a', 'b', () => {
        got++;
        latest = Math.max(latest, q.now);
      });
    }
    q.runUntil(10_000, 1_000_000);
    expect(got).toBe(500);
    expect(latest).toBeLessThanOrEqual(4); // minDelay 1 + jitter < 3
  });
});
