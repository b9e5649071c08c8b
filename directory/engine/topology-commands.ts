// The topology mutations (nodes, volumes) as replicated commands: the same contract as
// commands.ts — pure functions of (state seen through the Tx, command).
import { MetadataError } from '../model/api.ts';
import type { Command } from '../model/methods.ts';
import type { NodeRecord, NodeState, VolumeRecord, VolumeState } from '../model/topology.ts';
import * as K from './keys.ts';
import type { Tx } from './tx.ts';

/**
 * The commands applied here; commands.ts hands over what its own switch leaves, so a write
 * method declared in model/methods.ts and handled in neither place fails to compile.
 */
export type TopologyCommand = Extract<
  Command,
  { op: 'registerNode' | 'setNodeState' | 'createVolume' | 'updateVolume' }
>;

// Keyed by NodeState: a state added to the type and not here fails to compile.
const NODE_STATE_SET: Record<NodeState, true> = {
  online: true,
  offline: true,
  draining: true,
  removed: true,
};
const NODE_STATES = Object.keys(NODE_STATE_SET) as readonly NodeState[];
const VOLUME_STATES: readonly VolumeState[] = ['writable', 'readonly'];

export function topologyPrefetch(c: TopologyCommand): string[] {
  switch (c.op) {
    case 'registerNode':
      return [K.nodeKey(checkId(c.args[0].id))];
    case 'setNodeState':
      return [K.nodeKey(checkId(c.args[0]))];
    case 'createVolume':
      return [K.volumeKey(checkVolumeId(c.args[0].id))];
    case 'updateVolume':
      return [K.volumeKey(checkVolumeId(c.args[0]))];
    default: {
      // Unreachable for a well-typed command (a missing case does not compile); a command
      // from the wire that slipped past isKnownCommand still fails as its outcome.
      const unknown: never = c;
      throw new Error(`unknown command ${String((unknown as { op: unknown }).op)}`);
    }
  }
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
    throw new Error(`node id must be 1-64 of [A-Za-z0-9._-], got ${JSON.stringify(id)}`);
  }
  return id;
}

function checkIncarnation(inc: unknown): string | undefined {
  if (inc === undefined || inc === null) return undefined;
  if (typeof inc !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(inc)) {
    throw new Error(`incarnation must be 1-64 of [A-Za-z0-9._-], got ${JSON.stringify(inc)}`);
  }
  return inc;
}

/**
 * The record registerNode leaves: a new node as given (online unless it says otherwise); a
 * known one with its address, zone and capacity updated and its state kept, but:
 *  - removed, and `inc` differs from the incarnation recorded (or none was): a new data
 *    directory under the removed id (a StatefulSet scaled down, then up again). Re-admitted
 *    as offline, so the cluster manager reconciles it like any store coming back before it
 *    is online: no volume lists it after its drain, and whatever volumes its disk still has
 *    are trusted as replicas of nothing.
 *  - removed, same incarnation (or none given: a store too old to send one): stays removed,
 *    and keeps the incarnation it was removed with (an operator's remove is not undone by
 *    the old process heartbeating on).
 *  - online, and `inc` differs from a recorded one: the disk under this id is not the one
 *    the directory placed volumes on (a lost PVC, a wiped data directory). Marked offline,
 *    so each volume that lists it is synced back from a healthy replica before it serves.
 *  - otherwise a given incarnation is recorded.
 */
function registered(cur: NodeRecord | null, n: NodeRecord, inc: string | undefined): NodeRecord {
  if (!cur) {
    const rec: NodeRecord = { ...n, state: NODE_STATES.includes(n.state) ? n.state : 'online' };
    if (inc === undefined) delete rec.incarnation;
    return rec;
  }
  const rec: NodeRecord = { ...cur, url: n.url, zone: n.zone, capacity: n.capacity };
  if (inc === undefined || inc === cur.incarnation) return rec;
  if (cur.state === 'removed') {
    return {
      ...rec,
      incarnation: inc,
      state: 'offline',
      registeredAt: n.registeredAt,
      stateSince: n.stateSince,
    };
  }
  if (cur.state === 'online' && cur.incarnation !== undefined) {
    return { ...rec, incarnation: inc, state: 'offline', stateSince: n.stateSince };
  }
  return { ...rec, incarnation: inc };
}

function checkVolumeId(id: unknown): number {
  if (!Number.isInteger(id) || (id as number) < 1 || (id as number) > 0xffff_ffff) {
    throw new Error(`volume id out of range: ${String(id)}`);
  }
  return id as number;
}

function checkReplicas(replicas: unknown): string[] {
  if (!Array.isArray(replicas) || replicas.length === 0) throw new Error('replicas: non-empty');
  const ids = replicas.map(checkId);
  if (new Set(ids).size !== ids.length) throw new Error('replicas must be distinct nodes');
  return ids;
}

const precondition = (m: string) => new MetadataError('PreconditionFailed', m);

export async function applyTopology(tx: Tx, c: TopologyCommand): Promise<unknown> {
  switch (c.op) {
    case 'registerNode': {
      const n = c.args[0];
      const k = K.nodeKey(checkId(n.id));
      const inc = checkIncarnation(n.incarnation);
      const cur = parseNode(await tx.get(k));
      tx.put(k, JSON.stringify(registered(cur, n, inc)));
      return;
    }
    case 'setNodeState': {
      const [id, state, since, from] = c.args;
      if (!NODE_STATES.includes(state)) throw new Error(`bad node state ${String(state)}`);
      const k = K.nodeKey(checkId(id));
      const cur = parseNode(await tx.get(k));
      if (!cur) throw precondition(`no node ${id}`);
      if (from != null && cur.state !== from) {
        throw precondition(`node ${id} is ${cur.state}, not ${from}`);
      }
      // A removed id never comes back through a state change: its volumes were re-homed
      // on that understanding. Only a new incarnation re-admits it (registerNode).
      if (cur.state === 'removed' && state !== 'removed') {
        throw precondition(`node ${id} was removed for good`);
      }
      tx.put(k, JSON.stringify({ ...cur, state, stateSince: since }));
      return;
    }
    case 'createVolume': {
      const v = c.args[0];
      const k = K.volumeKey(checkVolumeId(v.id));
      checkReplicas(v.replicas);
      if ((await tx.get(k)) !== undefined) throw precondition(`volume ${v.id} exists`);
      tx.put(k, JSON.stringify({ ...v, version: 1 }));
      return;
    }
    case 'updateVolume': {
      const [id, expect, patch] = c.args;
      const k = K.volumeKey(checkVolumeId(id));
      const cur = parseVolume(await tx.get(k));
      if (!cur) throw precondition(`no volume ${id}`);
      if (cur.version !== expect) {
        throw precondition(`volume ${id} is at version ${cur.version}, not ${expect}`);
      }
      if (patch.state !== undefined && !VOLUME_STATES.includes(patch.state)) {
        throw new Error(`bad volume state ${String(patch.state)}`);
      }
      const next: VolumeRecord = {
        ...cur,
        replicas: patch.replicas ? checkReplicas(patch.replicas) : cur.replicas,
        state: patch.state ?? cur.state,
        version: cur.version + 1,
      };
      tx.put(k, JSON.stringify(next));
      return next;
    }
    default: {
      // Unreachable for a well-typed command (a missing case does not compile); a command
      // from the wire that slipped past isKnownCommand still fails as its outcome.
      const unknown: never = c;
      throw new Error(`unknown command ${String((unknown as { op: unknown }).op)}`);
    }
  }
}

export function parseNode(v: string | undefined): NodeRecord | null {
  return v === undefined ? null : (JSON.parse(v) as NodeRecord);
}

export function parseVolume(v: string | undefined): VolumeRecord | null {
  return v === undefined ? null : (JSON.parse(v) as VolumeRecord);
}
