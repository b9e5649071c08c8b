// Which store nodes get the replicas of a new (or re-replicated) volume: distinct nodes
// always, distinct zones while there are zones left, the least-filled first. Pure, so the
// choice is testable and explainable.

export interface Candidate {
  id: string;
  zone: string;
  used: number;
  capacity: number;
  /** Volumes the node already holds: new volumes spread even before any bytes land. */
  volumes?: number;
}

/**
 * Picks `count` nodes from `candidates` (all assumed healthy), avoiding `exclude` (nodes
 * that already hold the volume) and preferring zones not in `zonesTaken`. Null when there
 * are not enough distinct nodes.
 */
export function chooseReplicas<T extends Candidate>(
  candidates: T[],
  count: number,
  exclude: ReadonlySet<string> = new Set(),
  zonesTaken: readonly string[] = [],
): T[] | null {
  const fill = (c: Candidate) => (c.capacity > 0 ? c.used / c.capacity : 1);
  const pool = candidates
    .filter((c) => !exclude.has(c.id))
    .sort(
      (a, b) =>
        (a.volumes ?? 0) - (b.volumes ?? 0) || fill(a) - fill(b) || a.id.localeCompare(b.id),
    );
  const chosen: T[] = [];
  const zones = new Set(zonesTaken);
  for (const c of pool) {
    if (chosen.length === count) break;
    if (!zones.has(c.zone)) {
      chosen.push(c);
      zones.add(c.zone);
    }
  }
  for (const c of pool) {
    if (chosen.length === count) break;
    if (!chosen.includes(c)) chosen.push(c);
  }
  return chosen.length === count ? chosen : null;
}
