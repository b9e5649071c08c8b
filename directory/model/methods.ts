// The metadata API's methods, each declared once: its typed signature and contract live in
// the interfaces (api.ts MetadataStore, topology.ts ClusterDirectory), its kind here. The
// network client, the wire server's dispatch, the client's retry rules, the replicated
// commands and the Raft replica's forwarding are all derived from this table, so a new
// method needs an entry here and its implementations, nothing else.
import type { BucketGuard, MetadataStore } from './api.ts';
import type { ClusterDirectory } from './topology.ts';

/** Everything served as POST /meta/<method>. */
export type MetaApi = MetadataStore & ClusterDirectory;

/**
 * - read: changes nothing. A client may repeat it on another replica after any failure; a
 *   Raft replica serves it from its state machine after a ReadIndex barrier.
 * - write: a replicated command (engine/commands.ts applies it). A call that may have
 *   reached a replica is never repeated (it could apply twice).
 * - replica-read / replica-write: not a command; each directory replica serves it with
 *   logic of its own (in-memory liveness, leader-side placement). LevelMetadata lacks them.
 */
export type MethodKind = 'read' | 'write' | 'replica-read' | 'replica-write';

export const META_METHODS = {
  createBucket: 'write',
  getBucket: 'read',
  deleteBucket: 'write',
  listBuckets: 'read',
  putObject: 'write',
  putObjectStored: 'write',
  getObject: 'read',
  deleteObject: 'write',
  listObjects: 'read',
  listObjectSummaries: 'read',
  createUpload: 'write',
  getUpload: 'read',
  putPart: 'write',
  listParts: 'read',
  completeUpload: 'write',
  abortUpload: 'write',
  listUploads: 'read',
  createUser: 'write',
  getUser: 'read',
  listUsers: 'read',
  deleteUser: 'write',
  addKey: 'write',
  getKey: 'read',
  listKeys: 'read',
  deleteKey: 'write',
  replaceKeySecret: 'write',
  allocateNeedleIds: 'write',
  allocateVolumeId: 'write',
  registerNode: 'write',
  setNodeState: 'write',
  listNodes: 'read',
  createVolume: 'write',
  getVolume: 'read',
  listVolumes: 'read',
  updateVolume: 'write',
  putHotObject: 'write',
  deleteHotObject: 'write',
  listHotObjects: 'read',
  setExtraReplicas: 'write',
  listExtraReplicas: 'read',
  heartbeat: 'replica-write',
  liveness: 'replica-read',
  allocateVolume: 'replica-write',
  reportReads: 'replica-write',
} as const satisfies Record<Exclude<keyof MetaApi, 'close'>, MethodKind>;

export type MetaMethod = keyof typeof META_METHODS;

type MethodsOf<K extends MethodKind> = {
  [M in MetaMethod]: (typeof META_METHODS)[M] extends K ? M : never;
}[MetaMethod];

/** The methods that are replicated commands. */
export type WriteMethod = MethodsOf<'write'>;
/** The methods a Raft replica serves from its state machine. */
export type ReadMethod = MethodsOf<'read'>;

const methodsOf = <K extends MethodKind>(...kinds: K[]): MethodsOf<K>[] =>
  (Object.keys(META_METHODS) as MetaMethod[]).filter((m) =>
    (kinds as MethodKind[]).includes(META_METHODS[m]),
  ) as MethodsOf<K>[];

export const WRITE_METHODS: readonly WriteMethod[] = methodsOf('write');
export const READ_METHODS: readonly ReadMethod[] = methodsOf('read');

/** Methods that change nothing, so repeating one on another replica is always harmless. */
export const READ_ONLY_METHODS: ReadonlySet<string> = new Set<string>(
  methodsOf('read', 'replica-read'),
);

/**
 * The bucket writes whose last argument carries the owner the write was allowed against
 * (BucketGuard, or a PutCondition that includes it), which the directory checks again at
 * commit. A gateway handler can call them only with it (gateway/access.ts GuardedMetadata,
 * derived from this list): a new guarded write is declared in api.ts and named here.
 */
export const GUARDED_WRITES = [
  'putObject',
  'deleteObject',
  'createUpload',
  'putPart',
  'completeUpload',
  'abortUpload',
  'deleteBucket',
] as const satisfies readonly WriteMethod[];

export type GuardedWrite = (typeof GUARDED_WRITES)[number];

/** `F` with its last argument required and carrying the owner (BucketGuard's bucketOwner). */
type WithGuard<F> = F extends (...args: infer A) => infer R
  ? Required<A> extends [...infer Head, infer Last]
    ? Last extends BucketGuard
      ? (...args: [...Head, Last & Required<BucketGuard>]) => R
      : never
    : never
  : never;

/** The guarded writes as a handler must call them: the guard given, its owner set. */
export type GuardedWrites = { [M in GuardedWrite]: WithGuard<MetadataStore[M]> };

/** One mutation as data: the method's name and exactly its arguments. */
export type Command = {
  [M in WriteMethod]: { op: M; args: Parameters<MetadataStore[M]> };
}[WriteMethod];

export type CommandOf<M extends WriteMethod> = Extract<Command, { op: M }>;

/** What applying a command of `op` yields: the method's resolved value. */
export type CommandResult<M extends WriteMethod> = Awaited<ReturnType<MetadataStore[M]>>;

/**
 * The arguments without trailing undefined ones: JSON turns those into null, and a command
 * must read the same after a JSON round trip (what Raft followers get from the log).
 */
export function trimArgs<A extends unknown[]>(args: A): A {
  let n = args.length;
  while (n > 0 && args[n - 1] === undefined) n--;
  return n === args.length ? args : (args.slice(0, n) as A);
}

/**
 * Puts `make(m)` on `proto` as method `m` for each of `methods` the class does not define
 * itself: a prototype method like a written one (no per-call cost beyond the call), where
 * the class declares the types by merging an interface (Pick<MetaApi, …>) with itself.
 */
export function defineMethods<T extends object>(
  proto: T,
  methods: readonly MetaMethod[],
  make: (m: MetaMethod) => (this: T, ...args: unknown[]) => unknown,
): void {
  for (const m of methods) {
    if (Object.hasOwn(proto, m)) continue;
    const fn = make(m);
    Object.defineProperty(fn, 'name', { value: m });
    Object.defineProperty(proto, m, { value: fn, writable: true, configurable: true });
  }
}
