// Paged listing of a volume's live needle ids in ascending order, straight from the
// in-memory map. Each page is one pass over the map keeping the `limit` smallest ids past
// the cursor in a bounded max-heap: O(n log limit) per page and no state between pages,
// where sorting the whole map every page would make a full listing quadratic in practice.
import { idFromParts, idParts, type NeedleMap } from './needle-map.ts';

export const MAX_LIST_LIMIT = 10_000;

export interface NeedleListPage {
  needles: Array<{ id: bigint; size: number }>;
  /** Cursor for the next page; absent on the last one. */
  next?: bigint;
}

export function listNeedles(map: NeedleMap, after: bigint, limit: number): NeedleListPage {
  const [aLo, aHi] = idParts(after);
  const hi = new Uint32Array(limit);
  const lo = new Uint32Array(limit);
  const size = new Uint32Array(limit);
  let n = 0;
  let more = false;
  // (hi, lo) compared as one u64 without allocating bigints per slot.
  const greater = (h1: number, l1: number, h2: number, l2: number) =>
    h1 > h2 || (h1 === h2 && l1 > l2);
  const swap = (i: number, j: number) => {
    const th = hi[i]!;
    const tl = lo[i]!;
    const ts = size[i]!;
    hi[i] = hi[j]!;
    lo[i] = lo[j]!;
    size[i] = size[j]!;
    hi[j] = th;
    lo[j] = tl;
    size[j] = ts;
  };
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && greater(hi[l]!, lo[l]!, hi[m]!, lo[m]!)) m = l;
      if (r < n && greater(hi[r]!, lo[r]!, hi[m]!, lo[m]!)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  map.forEach((l, h, _off, s) => {
    if (!greater(h, l, aHi, aLo)) return;
    if (n < limit) {
      hi[n] = h;
      lo[n] = l;
      size[n] = s;
      let i = n++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!greater(hi[i]!, lo[i]!, hi[p]!, lo[p]!)) break;
        swap(i, p);
        i = p;
      }
      return;
    }
    more = true;
    if (n > 0 && greater(hi[0]!, lo[0]!, h, l)) {
      hi[0] = h;
      lo[0] = l;
      size[0] = s;
      siftDown(0);
    }
  });
  const needles: NeedleListPage['needles'] = [];
  for (let i = 0; i < n; i++) needles.push({ id: idFromParts(lo[i]!, hi[i]!), size: size[i]! });
  needles.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const page: NeedleListPage = { needles };
  if (more && n > 0) page.next = needles[n - 1]!.id;
  return page;
}
