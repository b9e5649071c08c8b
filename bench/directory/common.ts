// Shared by the directory bench's phases: the records it commits, its buckets and keys, and
// rounding for its JSON.
import crypto from 'node:crypto';
import type { ObjectRecord } from '../../directory/model/api.ts';
import { mix32 } from '../lib/prng.ts';
import { type LatencySummary, summarize } from '../lib/summary.ts';

export const COMMIT_BUCKET = 'commitbench';
export const LIST_BUCKET = 'listbench';
export const ACCESS_KEY = 'DIRBENCHKEY00000';
export const SECRET_KEY = 'dirbenchsecret000000000000000000000000000';
export const STATE_FILE = 'bench-directory.json';

/** Fixed-width keys, so key order is index order: obj/000123456. */
export function objectKey(i: number): string {
  return `obj/${String(i).padStart(9, '0')}`;
}

/** A small object record as the gateway would commit it after storing one needle. */
export function objectRecord(i: number, owner: string, now: number): ObjectRecord {
  const h = mix32(i);
  const size = 512 + (h % (64 * 1024));
  return {
    key: objectKey(i),
    size,
    etag: crypto.createHash('md5').update(`etag-${i}`).digest('hex'),
    lastModified: now,
    contentType: 'application/octet-stream',
    userMeta: {
      app: 'bench',
      uploader: `client-${h % 97}`,
      'trace-id': h.toString(16).padStart(8, '0'),
    },
    chunks: [
      {
        volumeId: 1 + (h % 64),
        needleId: String(1_000_000_000_000 + i),
        cookie: mix32(h ^ 0x5bd1e995),
        size,
      },
    ],
    owner,
  };
}

/** What a ListObjectsV2 answer holds, read with regexes (the bench's own XML is simple). */
export function parseListV2(xml: string): {
  keys: number;
  first?: string;
  last?: string;
  truncated: boolean;
  next?: string;
} {
  const keys = xml.match(/<Key>/g)?.length ?? 0;
  const first = /<Key>([^<]*)<\/Key>/.exec(xml)?.[1];
  const li = xml.lastIndexOf('<Key>');
  const last = li >= 0 ? xml.slice(li + 5, xml.indexOf('</Key>', li)) : undefined;
  const truncated = /<IsTruncated>true<\/IsTruncated>/.test(xml);
  const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
  return { keys, first, last, truncated, next };
}

/** A growable array of latency samples (ms). */
export class Samples {
  private buf = new Float64Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = x;
  }
  summary(): LatencySummary {
    return summarize(this.buf, this.n);
  }
}

/** What a --reuse dir keeps between runs (in STATE_FILE). */
export interface SavedState {
  ports: number[];
  secret: string;
  loaded: number;
}

export const round = (x: number, d = 2) => +x.toFixed(d);

export function roundSummary(s: LatencySummary): LatencySummary {
  return {
    ...s,
    mean: round(s.mean, 3),
    variance: round(s.variance, 3),
    p50: round(s.p50, 3),
    p90: round(s.p90, 3),
    p99: round(s.p99, 3),
    p999: round(s.p999, 3),
    max: round(s.max, 3),
    under: Object.fromEntries(Object.entries(s.under).map(([k, v]) => [k, round(v, 4)])),
  };
}
