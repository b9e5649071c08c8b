// The latest heartbeat of every store, as this directory replica received it. Not
// replicated: stores heartbeat to every replica, so a new leader already knows who is
// alive without a log entry per beat.
import type { Heartbeat, NodeLiveness } from '../model/topology.ts';

export class Liveness {
  private readonly beats = new Map<string, { h: Heartbeat; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  record(h: Heartbeat): void {
    this.beats.set(h.id, { h, at: this.now() });
  }

  get(id: string): { h: Heartbeat; silentMs: number } | undefined {
    const b = this.beats.get(id);
    return b && { h: b.h, silentMs: this.now() - b.at };
  }

  /** Heard from within `ms`. */
  isAlive(id: string, ms: number): boolean {
    const b = this.beats.get(id);
    return b !== undefined && this.now() - b.at <= ms;
  }

  list(): NodeLiveness[] {
    const t = this.now();
    return [...this.beats.values()].map(({ h, at }) => ({
      id: h.id,
      silentMs: t - at,
      load: h.load,
      used: h.used,
    }));
  }
}
