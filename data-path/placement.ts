// Where new needles go. The embedded placement keeps one writable volume on the local
// store and moves to a fresh one when it fills; ids come from the directory in blocks so
// a PUT does not pay a metadata round trip for its needle id. The cluster issue replaces
// this with directory-assigned volumes on replicated stores, behind the same interface.
import { randomU32 } from '../common/random-pool.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import type { NeedleRef, NeedleStore } from '../store-node/api.ts';

export interface Placement {
  /**
   * A fresh needle address for `size` bytes, on a volume with `replicaCount` replicas
   * (the placement's default when absent; a single-node placement ignores it).
   */
  assign(size: number, replicaCount?: number): Promise<NeedleRef>;
  /** The volume refused a write as full: stop using it. */
  full(volumeId: number): void;
  /**
   * A write to `volumeId` failed with `err`: true when the caller should retry on another
   * volume (the placement has stopped using this one). Without it, only VolumeFull and
   * VolumeReadOnly are retried.
   */
  writeFailed?(volumeId: number, err: unknown): boolean;
}

const ID_BLOCK = 10_000;

export class EmbeddedPlacement implements Placement {
  private volumeId: number | null = null;
  private opening: Promise<number> | null = null;
  private next = 0n;
  private end = 0n;
  private refill: Promise<void> | null = null;
  private readonly exhausted = new Set<number>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: NeedleStore,
  ) {}

  async assign(_size: number): Promise<NeedleRef> {
    const volumeId = this.volumeId ?? (await this.openVolume());
    while (this.next >= this.end) {
      this.refill ??= this.meta.allocateNeedleIds(ID_BLOCK).then((b) => {
        this.next = b.first;
        this.end = b.first + BigInt(b.count);
        this.refill = null;
      });
      await this.refill;
    }
    const needleId = this.next++;
    return { volumeId, needleId, cookie: randomU32() };
  }

  full(volumeId: number): void {
    this.exhausted.add(volumeId);
    if (this.volumeId === volumeId) this.volumeId = null;
  }

  private openVolume(): Promise<number> {
    this.opening ??= (async () => {
      const st = await this.store.status();
      // Reuse the newest writable volume after a restart rather than adding one per start.
      const usable = st.volumes.filter((v) => !v.readOnly && !this.exhausted.has(v.id));
      let vid = usable.length > 0 ? Math.max(...usable.map((v) => v.id)) : 0;
      if (vid === 0) {
        vid = await this.meta.allocateVolumeId();
        await this.store.createVolume(vid);
      }
      this.volumeId = vid;
      return vid;
    })().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }
}
