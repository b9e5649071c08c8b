// The host's linearizable reads: callers waiting for the next read-index round, rounds the
// core was asked for (a follower's go to the leader, which may be dead: they expire), and
// confirmed ones waiting for this replica to apply their index.
import { NotLeaderError } from './host-options.ts';
import type { NodeId, ReadState } from './types.ts';

export interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export class ReadTracker {
  private waiting: Array<Waiter<void>> = [];
  /** Read-index requests in flight, with when they were asked. */
  private asked = new Map<string, { waiters: Array<Waiter<void>>; at: number }>();
  private atIndex: Array<{ index: number; waiters: Array<Waiter<void>> }> = [];
  private seq = 0;

  wait(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
    });
  }

  get hasWaiting(): boolean {
    return this.waiting.length > 0;
  }

  get hasAsked(): boolean {
    return this.asked.size > 0;
  }

  /** One read-index round for every caller waiting: the id to ask the core, or null. */
  ask(now: number): string | null {
    if (this.waiting.length === 0) return null;
    const id = `r${++this.seq}`;
    this.asked.set(id, { waiters: this.waiting, at: now });
    this.waiting = [];
    return id;
  }

  /** Rounds the core confirmed: served once this replica has applied their index. */
  confirmed(reads: ReadState[]): void {
    for (const r of reads) {
      const pending = this.asked.get(r.id);
      this.asked.delete(r.id);
      if (pending) this.atIndex.push({ index: r.index, waiters: pending.waiters });
    }
  }

  /** Rounds the core refused. */
  refused(ids: Array<{ id: string }>, lead: NodeId | null): void {
    for (const d of ids) {
      const pending = this.asked.get(d.id);
      this.asked.delete(d.id);
      for (const w of pending?.waiters ?? []) w.reject(new NotLeaderError(lead));
    }
  }

  /** Fails the rounds asked before `limit` (or all): the caller retries. */
  fail(lead: NodeId | null, limit = Number.POSITIVE_INFINITY): void {
    for (const [id, r] of this.asked) {
      if (!(r.at < limit)) continue;
      this.asked.delete(id);
      const err = new NotLeaderError(lead);
      for (const w of r.waiters) w.reject(err);
    }
  }

  release(applied: number): void {
    if (this.atIndex.length === 0) return;
    const still: typeof this.atIndex = [];
    for (const r of this.atIndex) {
      if (r.index <= applied) for (const w of r.waiters) w.resolve();
      else still.push(r);
    }
    this.atIndex = still;
  }

  rejectAll(err: Error): void {
    for (const w of this.waiting) w.reject(err);
    for (const r of this.asked.values()) for (const w of r.waiters) w.reject(err);
    for (const r of this.atIndex) for (const w of r.waiters) w.reject(err);
  }
}
