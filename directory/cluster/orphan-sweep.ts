// Reclaims orphan needles: data written to stores that no committed record points at — a
// gateway died between writing a needle and committing the object, a replicated write
// failed on one replica after others stored it, a commit failed ambiguously. Compaction
// only reclaims tombstoned needles, so these would otherwise stay for good.
//
// Mark and sweep with a grace period, on the directory leader: each pass lists every
// volume's live needles on each of its replicas (a tombstone retried by a gateway that then
// restarted, or a replicated write that failed after one copy, leaves a needle on some
// replicas only) and subtracts the needles that object and part records refer to. A needle
// is tombstoned (on every replica) only when it was already an orphan in a pass at least
// `graceMs` earlier and still is: a write in flight at the first pass has committed (or
// failed) long before — the grace must exceed the longest time between writing a needle
// and committing its record (a slow multipart part).
import type { MetadataStore } from '../model/api.ts';
import type { VolumeRecord } from '../model/topology.ts';

export interface NeedleLister {
  /** Live needle ids of volume `vid` on the node at `url`. */
  list(url: string, vid: number): Promise<string[]>;
  /** Tombstones a needle on the node at `url` (idempotent). */
  remove(url: string, vid: number, needleId: string): Promise<void>;
}

export interface SweepResult {
  volumes: number;
  candidates: number;
  removed: number;
}

export class OrphanSweeper {
  /** volume → needle → when first seen unreferenced. Leader memory only: a new leader restarts marking. */
  private readonly seen = new Map<number, Map<string, number>>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly stores: NeedleLister,
    private readonly graceMs: number,
  ) {}

  async pass(
    volumes: VolumeRecord[],
    urlOf: (nodeId: string) => string | undefined,
    now = Date.now(),
  ): Promise<SweepResult> {
    // Listed first, references second: a needle committed in between is then referenced.
    const listed = new Map<number, { ids: string[]; urls: string[] }>();
    for (const v of volumes) {
      const urls = v.replicas.map(urlOf).filter((u): u is string => u !== undefined);
      if (urls.length !== v.replicas.length || urls.length === 0) continue; // not all healthy: skip
      const ids = new Set<string>();
      for (const u of urls) for (const id of await this.stores.list(u, v.id)) ids.add(id);
      listed.set(v.id, { ids: [...ids], urls });
    }
    const refs = await this.references();
    const result: SweepResult = { volumes: listed.size, candidates: 0, removed: 0 };
    for (const [vid, { ids, urls }] of listed) {
      const used = refs.get(vid) ?? new Set<string>();
      const prev = this.seen.get(vid) ?? new Map<string, number>();
      const next = new Map<string, number>();
      for (const id of ids) {
        if (used.has(id)) continue;
        const since = prev.get(id) ?? now;
        if (now - since >= this.graceMs && prev.has(id)) {
          for (const u of urls) await this.stores.remove(u, vid, id);
          result.removed++;
        } else {
          next.set(id, since);
          result.candidates++;
        }
      }
      this.seen.set(vid, next);
    }
    return result;
  }

  /** Every (volume → needle ids) that an object or an upload part refers to. */
  private async references(): Promise<Map<number, Set<string>>> {
    const refs = new Map<number, Set<string>>();
    const add = (chunks: Array<{ volumeId: number; needleId: string }>) => {
      for (const c of chunks) {
        let s = refs.get(c.volumeId);
        if (!s) refs.set(c.volumeId, (s = new Set()));
        s.add(c.needleId);
      }
    };
    for (const b of await this.meta.listBuckets()) {
      let after: string | undefined;
      for (;;) {
        const page = await this.meta.listObjects(b.name, { after, maxKeys: 1000 });
        for (const o of page.objects) add(o.chunks);
        if (!page.isTruncated || page.last === undefined) break;
        after = page.last;
      }
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        const ups = await this.meta.listUploads(b.name, {
          keyMarker,
          uploadIdMarker,
          maxUploads: 1000,
        });
        for (const u of ups.uploads) {
          let marker: number | undefined;
          for (;;) {
            const parts = await this.meta.listParts(b.name, u.key, u.uploadId, {
              marker,
              max: 1000,
            });
            for (const p of parts.parts) add(p.chunks);
            if (!parts.isTruncated || parts.parts.length === 0) break;
            marker = parts.parts[parts.parts.length - 1]?.partNumber;
          }
        }
        if (!ups.isTruncated) break;
        keyMarker = ups.nextKeyMarker;
        uploadIdMarker = ups.nextUploadIdMarker;
      }
    }
    return refs;
  }
}
