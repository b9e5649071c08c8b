// The hot-object tables (model/hot.ts) as replicated commands: the same contract as
// commands.ts — pure functions of (state seen through the Tx, command). Each write replaces
// one entry whole, so none reads the state: the leader's policy (cluster/hotness.ts) is the
// only writer and decides from its own view.

import {
  type ExtraReplicaRecord,
  HOT_LEVELS,
  type HotLevel,
  type HotObjectRecord,
} from '../model/hot.ts';
import type { Command } from '../model/methods.ts';
import * as K from './keys.ts';
import type { Tx } from './tx.ts';

/** The commands applied here (commands.ts hands them over by op). */
export type HotCommand = Extract<
  Command,
  { op: 'putHotObject' | 'deleteHotObject' | 'setExtraReplicas' }
>;

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const U64 = /^\d{1,20}$/;

function fail(what: string, v: unknown): never {
  throw new Error(`${what}: bad value ${JSON.stringify(v) ?? String(v)}`);
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(what, v);
  return v;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) fail(what, v);
  return v as number;
}

function needle(v: unknown): string {
  if (typeof v !== 'string' || !U64.test(v) || BigInt(v) > 0xffff_ffff_ffff_ffffn) {
    fail('needleId', v);
  }
  return v;
}

const volume = (v: unknown) => int(v, 'volumeId', 1, 0xffff_ffff);
const cookie = (v: unknown) => int(v, 'cookie', 0, 0xffff_ffff);

/**
 * The record as stored: only the declared fields, checked. Built afresh, so what a replica
 * stores does not depend on extra fields the proposer sent; `next` is kept for cooling only.
 */
export function checkHotObject(r: HotObjectRecord): HotObjectRecord {
  if (r === null || typeof r !== 'object') fail('hot object', r);
  if (!HOT_LEVELS.includes(r.level)) fail('level', r.level);
  const out: HotObjectRecord = {
    bucket: text(r.bucket, 'bucket'),
    key: text(r.key, 'key'),
    volumeId: volume(r.volumeId),
    needleId: needle(r.needleId),
    cookie: cookie(r.cookie),
    size: int(r.size, 'size', 0, Number.MAX_SAFE_INTEGER),
    level: r.level as HotLevel,
    since: int(r.since, 'since', 0, Number.MAX_SAFE_INTEGER),
    reads: int(r.reads, 'reads', 0, Number.MAX_SAFE_INTEGER),
  };
  if (out.level === 'cooling') {
    const next = r.next ?? null;
    if (next !== null && next !== 'replicas' && next !== 'store') fail('next', r.next);
    out.next = next;
  }
  K.hotKey(out.bucket, out.key); // encodable (no lone surrogates, no 00 in the bucket)
  return out;
}

export function checkExtraReplicas(r: ExtraReplicaRecord): ExtraReplicaRecord {
  if (r === null || typeof r !== 'object') fail('extra replicas', r);
  if (!Array.isArray(r.stores)) fail('stores', r.stores);
  const stores = r.stores.map((s) => {
    if (typeof s !== 'string' || !NODE_ID.test(s)) fail('store id', s);
    return s;
  });
  if (new Set(stores).size !== stores.length) fail('stores (must be distinct)', stores);
  const out: ExtraReplicaRecord = {
    volumeId: volume(r.volumeId),
    needleId: needle(r.needleId),
    cookie: cookie(r.cookie),
    stores,
    bucket: text(r.bucket, 'bucket'),
    key: text(r.key, 'key'),
  };
  K.hotKey(out.bucket, out.key);
  return out;
}

/** Throws when the command is malformed (commands.ts checkCommand, prefetch). */
export function hotPrefetch(c: HotCommand): string[] {
  switch (c.op) {
    case 'putHotObject':
      checkHotObject(c.args[0]);
      return [];
    case 'deleteHotObject':
      K.hotKey(text(c.args[0], 'bucket'), text(c.args[1], 'key'));
      return [];
    case 'setExtraReplicas':
      checkExtraReplicas(c.args[0]);
      return [];
    default: {
      const unknown: never = c;
      throw new Error(`unknown command ${String((unknown as { op: unknown }).op)}`);
    }
  }
}

export async function applyHot(tx: Tx, c: HotCommand): Promise<void> {
  switch (c.op) {
    case 'putHotObject': {
      const r = checkHotObject(c.args[0]);
      tx.put(K.hotKey(r.bucket, r.key), JSON.stringify(r));
      return;
    }
    case 'deleteHotObject':
      tx.del(K.hotKey(text(c.args[0], 'bucket'), text(c.args[1], 'key')));
      return;
    case 'setExtraReplicas': {
      const r = checkExtraReplicas(c.args[0]);
      const k = K.xrepKey(r.volumeId, r.needleId);
      if (r.stores.length === 0) tx.del(k);
      else tx.put(k, JSON.stringify(r));
      return;
    }
    default: {
      // Unreachable for a well-typed command (a missing case does not compile).
      const unknown: never = c;
      throw new Error(`unknown command ${String((unknown as { op: unknown }).op)}`);
    }
  }
}
