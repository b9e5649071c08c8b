// The narrow slice of the Kubernetes API the directory uses (issue 13): its own pod's
// labels, and the store pods it watches. Two implementations: client-node.ts (the real API
// server, through @kubernetes/client-node) and fake.ts (in memory, for tests). The shapes
// below are the API's own JSON (core/v1 Pod, the watch event envelope, meta/v1 Status),
// trimmed to the fields read here; fixtures/pods.json holds recorded samples.

/** A core/v1 Pod as the API server sends it (the fields this code reads). */
export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    /** Set when the pod is being deleted (graceful termination under way). */
    deletionTimestamp?: string;
    ownerReferences?: Array<{ apiVersion?: string; kind: string; name: string; uid?: string }>;
  };
  spec?: { nodeName?: string; hostname?: string; subdomain?: string };
  status?: {
    /** Pending | Running | Succeeded | Failed | Unknown */
    phase?: string;
    conditions?: Array<{
      type: string;
      status: string;
      reason?: string;
      lastTransitionTime?: string;
    }>;
    podIP?: string;
  };
}

/** One event of a watch (`?watch=1`): the envelope's `type` and `object`. */
export interface PodEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Pod;
}

/** A failed API call, with the HTTP status the API server answered (0: none, e.g. refused). */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** 401/403: the service account may not do this. Not worth retrying. */
export const isDenied = (e: unknown): boolean =>
  e instanceof KubeApiError && (e.status === 401 || e.status === 403);

export interface KubeApi {
  /** Merge-patches metadata.labels of one pod (a null value removes a label). */
  patchPodLabels(ns: string, pod: string, labels: Record<string, string | null>): Promise<void>;
  /** The pods matching a label selector (`k=v,k2=v2`). */
  listPods(ns: string, selector: string): Promise<Pod[]>;
  /**
   * Watches the pods matching `selector`: every pod that exists now first arrives as
   * ADDED, then changes as they happen; a broken watch is re-established (pods already
   * known arrive again as ADDED or MODIFIED, pods gone meanwhile as DELETED). `onError`
   * hears of each failure (the watch goes on retrying). Returns a stop function.
   */
  watchPods(
    ns: string,
    selector: string,
    onEvent: (e: PodEvent) => void,
    onError?: (e: unknown) => void,
  ): () => void;
  /** spec.replicas of a StatefulSet, or null when it does not exist. */
  statefulSetReplicas(ns: string, name: string): Promise<number | null>;
}

/** Ready condition True and not being deleted. */
export function podReady(p: Pod): boolean {
  if (p.metadata.deletionTimestamp) return false;
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Terminal or lost: the containers will not run again (Failed, Succeeded, Unknown). */
export function podFailed(p: Pod): boolean {
  const phase = p.status?.phase;
  return phase === 'Failed' || phase === 'Succeeded' || phase === 'Unknown';
}

/** The StatefulSet that owns a pod and the pod's ordinal in it, or null. */
export function statefulSetMember(p: Pod): { set: string; ordinal: number } | null {
  const owner = p.metadata.ownerReferences?.find((o) => o.kind === 'StatefulSet');
  const m = /^(.*)-(\d+)$/.exec(p.metadata.name);
  if (!m) return null;
  const set = owner?.name ?? (m[1] as string);
  if (`${set}-${m[2]}` !== p.metadata.name) return null;
  return { set, ordinal: Number(m[2]) };
}

/** A label value as the API accepts it: at most 63 of [A-Za-z0-9._-], alphanumeric ends. */
export function validLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(v));
}
