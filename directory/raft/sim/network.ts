// The simulated world: one clock, one event queue, one seeded PRNG, and a network that
// loses, delays, reorders, duplicates and partitions messages. Everything the simulation
// does is driven from here, so a seed replays exactly.

export class EventQueue {
  private heap: Array<{ at: number; seq: number; fn: () => void }> = [];
  private seq = 0;
  now = 0;

  at(time: number, fn: () => void): void {
    const h = this.heap;
    h.push({ at: time, seq: this.seq++, fn });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.less(parent, i)) break;
      [h[parent], h[i]] = [h[i] as (typeof h)[0], h[parent] as (typeof h)[0]];
      i = parent;
    }
  }

  after(delay: number, fn: () => void): void {
    this.at(this.now + delay, fn);
  }

  /** Runs events up to `until`; returns the number run. */
  runUntil(until: number, maxEvents: number): number {
    let n = 0;
    while (this.heap.length > 0 && n < maxEvents) {
      const top = this.heap[0] as (typeof this.heap)[0];
      if (top.at > until) break;
      this.pop();
      this.now = top.at;
      top.fn();
      n++;
    }
    if (n < maxEvents) this.now = until;
    return n;
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a] as (typeof this.heap)[0];
    const y = this.heap[b] as (typeof this.heap)[0];
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as (typeof h)[0];
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(l, m)) m = l;
      if (r < h.length && this.less(r, m)) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i] as (typeof h)[0], h[m] as (typeof h)[0]];
      i = m;
    }
  }
}

export interface NetConfig {
  loss: number;
  duplicate: number;
  minDelay: number;
  jitter: number;
  /** Share of messages held back much longer (reordering across heartbeats). */
  slow: number;
}

/** Directed links that drop everything: a -> b blocked. Symmetric cuts block both ways. */
export class Network {
  private readonly blocked = new Set<string>();
  healthy = false;
  /** What the faults did to messages (counted only: the random draws are unchanged). */
  readonly stats = { lost: 0, duplicated: 0, heldBack: 0, cut: 0 };

  constructor(
    private readonly q: EventQueue,
    private readonly rnd: () => number,
    public cfg: NetConfig,
  ) {}

  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Splits into two sides; cross traffic is dropped both ways, or one way only if asymmetric. */
  partition(a: string[], b: string[], asymmetric: boolean): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        if (!asymmetric) this.block(y, x);
      }
    }
  }

  isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  /** `reliableOnce`: requests over a connection are never duplicated (unlike Raft traffic here). */
  send(from: string, to: string, deliver: () => void, reliableOnce = false): void {
    if (this.isBlocked(from, to)) {
      this.stats.cut++;
      return;
    }
    const c = this.healthy ? { loss: 0, duplicate: 0, minDelay: 1, jitter: 3, slow: 0 } : this.cfg;
    if (this.rnd() < c.loss) {
      this.stats.lost++;
      return;
    }
    const copies = !reliableOnce && this.rnd() < c.duplicate ? 2 : 1;
    if (copies > 1) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      let d = c.minDelay + Math.floor(this.rnd() * c.jitter);
      if (this.rnd() < c.slow) {
        d += 20 + Math.floor(this.rnd() * 200);
        this.stats.heldBack++;
      }
      // A cut that appears while the message is in flight also drops it.
      this.q.after(d, () => {
        if (!this.isBlocked(from, to)) deliver();
        else this.stats.cut++;
      });
    }
  }
}

/**
 * A network with faults drawn from the seed (loss up to `maxLoss`, jitter up to
 * `maxJitter` ticks): both simulators use it, and the draw order is part of every seed's
 * history, so it lives in one place.
 */
export function randomNetwork(
  q: EventQueue,
  rnd: () => number,
  maxLoss: number,
  maxJitter: number,
): Network {
  return new Network(q, rnd, {
    loss: rnd() * maxLoss,
    duplicate: rnd() * 0.05,
    minDelay: 1,
    jitter: 2 + Math.floor(rnd() * maxJitter),
    slow: rnd() * 0.03,
  });
}

/** A run's violations (the first 20) and its trace, stamped with the simulated time. */
export function runLog(q: EventQueue, verbose: boolean | undefined) {
  const violations: string[] = [];
  return {
    violations,
    violate(m: string): void {
      if (violations.length < 20) violations.push(`t=${q.now} ${m}`);
    },
    trace(m: string): void {
      if (verbose) console.log(`t=${q.now} ${m}`);
    },
  };
}
