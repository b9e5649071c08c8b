// The two parts of a report's answer that are not the table itself (cache/README.md): the
// table as a delta against the version the gateway holds, and the lease renewals.
import type { ObjectRecord } from '../model/api.ts';
import type { ExtraReplicaRecord, HotObjectRecord, HotSnapshot, ReadReport } from '../model/hot.ts';
import { recordStamp } from '../model/record-stamp.ts';
import type { ChangeTable, TableDelta } from './change-table.ts';

/**
 * The changes since the version a gateway holds (`epoch:objects:extras`), when it is one
 * of this leadership's and still within reach; null: send the whole table. The table grows
 * and changes a little at a time, and sending it whole to every gateway at every change
 * cost the leader more than the reads it saved.
 */
export function tableDelta(
  epoch: string,
  have: string | undefined,
  recs: ChangeTable<HotObjectRecord>,
  extras: { since(v: number): TableDelta<ExtraReplicaRecord> | null } | undefined,
): Pick<HotSnapshot, 'objects' | 'extra' | 'delta'> | null {
  const m = /^([^:]*):(\d+):(\d+)$/.exec(have ?? '');
  if (!m || m[1] !== epoch) return null;
  const objects = recs.since(Number(m[2]));
  const extra = extras ? extras.since(Number(m[3])) : { changed: [], removed: [] };
  if (!objects || !extra) return null;
  return {
    objects: objects.changed,
    extra: extra.changed,
    delta: {
      // hotObjectKey: bucket NUL key; hotNeedleKey: volumeId/needleId.
      removed: objects.removed.map((k) => {
        const i = k.indexOf('\x00');
        return [k.slice(0, i), k.slice(i + 1)];
      }),
      extraRemoved: extra.removed.map((k) => {
        const i = k.indexOf('/');
        return [Number(k.slice(0, i)), k.slice(i + 1)];
      }),
    },
  };
}

export interface RecordReads {
  getObject(bucket: string, key: string): Promise<ObjectRecord | null>;
  getObjects?: (keys: [bucket: string, key: string][]) => Promise<(ObjectRecord | null)[]>;
}

/**
 * Which of the gateway's record copies are still the current record. `meta` must read the
 * committed state as of after the report arrived (the leader after its barrier, or the
 * embedded database), so a confirmed copy may be used up to leaseMs after the report was
 * sent: a write committed later is acknowledged only leaseMs after its commit.
 */
export async function confirmRenewals(
  meta: RecordReads,
  r: ReadReport,
): Promise<Pick<HotSnapshot, 'renewed'>> {
  const want = r.renew;
  if (!want || want.length === 0) return {};
  const keys = want.map(([b, k]): [string, string] => [b, k]);
  const recs = meta.getObjects
    ? await meta.getObjects(keys)
    : await Promise.all(keys.map(([b, k]) => meta.getObject(b, k)));
  return { renewed: want.map((w, i) => recs[i] != null && recordStamp(recs[i]) === w[2]) };
}
