// The directory replica's pod labels (issue 13, after the paper): its role, its Raft state
// and its health, kept current from the replica's own status:
//
//   kubestorage.io/role        kube-storage-directory
//   kubestorage.io/raft-state  leader | follower | candidate | learner
//   kubestorage.io/health      Running | Initializing | Busy | Offline
//
// so `kubectl get pods -L kubestorage.io/raft-state,kubestorage.io/health` shows the group
// and a Service may select `kubestorage.io/raft-state=leader`. An addition, never a
// dependency: a failed patch is retried a few times and logged once, never thrown into the
// replica; a 401/403 (no token, RBAC denied) turns the publisher off with one warning.
import type { Logger } from '../../common/log.ts';
import { isDenied, type KubeApi } from './api.ts';

export const LABEL_ROLE = 'kubestorage.io/role';
export const LABEL_RAFT_STATE = 'kubestorage.io/raft-state';
export const LABEL_HEALTH = 'kubestorage.io/health';
export const DIRECTORY_ROLE = 'kube-storage-directory';

export type Health = 'Running' | 'Initializing' | 'Busy' | 'Offline';

/** What the labels are computed from: RaftHost.status() has these fields. */
export interface ReplicaState {
  role: string;
  leaderId: string | null;
  commitIndex: number;
  appliedIndex: number;
}

/** How far behind the commit index a replica may apply and still be Running (= /readyz). */
export const BUSY_LAG = 1000;

/**
 * The health word: Running once a leader is known and this replica has caught up (what
 * /readyz calls ready); Busy while it applies a backlog; Offline when it has lost the
 * leader (no quorum reachable) or is shutting down (`s` null); Initializing until it has
 * been Running once.
 */
export function health(s: ReplicaState | null, everRunning: boolean): Health {
  if (s === null) return 'Offline';
  if (s.leaderId === null) return everRunning ? 'Offline' : 'Initializing';
  if (s.commitIndex - s.appliedIndex > BUSY_LAG) return everRunning ? 'Busy' : 'Initializing';
  return 'Running';
}

export function directoryLabels(s: ReplicaState | null, everRunning: boolean) {
  const labels: Record<string, string> = {
    [LABEL_ROLE]: DIRECTORY_ROLE,
    [LABEL_HEALTH]: health(s, everRunning),
  };
  if (s) labels[LABEL_RAFT_STATE] = s.role;
  return labels;
}

export interface LabelPublisherOptions {
  api: KubeApi;
  namespace: string;
  pod: string;
  status: () => ReplicaState;
  logger: Logger;
  /** How often the replica's status is looked at (default 500 ms). */
  pollMs?: number;
  /** A change is published once it has held this long (elections flap; default 1 s). */
  debounceMs?: number;
  /** Attempts per change before giving up until the labels change again (default 5). */
  maxAttempts?: number;
  /** First retry delay, doubled each attempt (default 500 ms). */
  retryMs?: number;
  /** The current labels are patched again this often, should anyone edit them (5 min). */
  resyncMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

const same = (a: Record<string, string> | null, b: Record<string, string>) =>
  a !== null &&
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(b).every(([k, v]) => a[k] === v);

export class LabelPublisher {
  private timer: NodeJS.Timeout | undefined;
  private everRunning = false;
  private seen: Record<string, string> | null = null;
  private seenAt = 0;
  private published: Record<string, string> | null = null;
  private publishedAt = 0;
  private inFlight: Promise<void> | null = null;
  private attempts = 0;
  private nextAttemptAt = 0;
  private errorLogged = false;
  /** Off for good after a 401/403. */
  disabled = false;
  readonly stats = { patches: 0, failures: 0 };

  constructor(private readonly o: LabelPublisherOptions) {}

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.o.pollMs ?? 500);
    this.timer.unref();
  }

  /**
   * Stops; with `final`, one last bounded attempt to say Offline (the replica is going
   * away), never longer than `finalMs`.
   */
  async stop(final = false, finalMs = 1000): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
    if (!final || this.disabled) return;
    const labels = { ...directoryLabels(null, this.everRunning) };
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      this.o.api.patchPodLabels(this.o.namespace, this.o.pod, labels).catch(() => {}),
      new Promise((r) => {
        t = setTimeout(r, finalMs);
      }),
    ]);
    clearTimeout(t);
  }

  /** The labels the replica's status asks for now. */
  current(): Record<string, string> {
    let s: ReplicaState | null;
    try {
      s = this.o.status();
    } catch {
      s = null;
    }
    const labels = directoryLabels(s, this.everRunning);
    if (labels[LABEL_HEALTH] === 'Running') this.everRunning = true;
    return labels;
  }

  /** One look at the replica; patches when due. Exposed for tests. */
  tick(): void {
    const now = (this.o.now ?? Date.now)();
    if (this.disabled) return;
    const want = this.current();
    if (!same(this.seen, want)) {
      this.seen = want;
      this.seenAt = now;
      this.attempts = 0;
      this.nextAttemptAt = 0;
    }
    if (this.inFlight || now < this.nextAttemptAt) return;
    const resync = now - this.publishedAt >= (this.o.resyncMs ?? 300_000);
    if (same(this.published, want) && !resync) return;
    // The first labels go out at once; later changes once they have held a while.
    if (this.published !== null && now - this.seenAt < (this.o.debounceMs ?? 1000)) return;
    this.inFlight = this.patch(want).finally(() => {
      this.inFlight = null;
    });
  }

  /** Resolves when no patch is in flight (tests). */
  async settled(): Promise<void> {
    await this.inFlight;
  }

  private async patch(want: Record<string, string>): Promise<void> {
    const { api, namespace, pod, logger } = this.o;
    try {
      await api.patchPodLabels(namespace, pod, want);
      this.published = want;
      this.publishedAt = (this.o.now ?? Date.now)();
      this.attempts = 0;
      this.stats.patches++;
      if (this.errorLogged) logger.info({ pod, labels: want }, 'pod labels published again');
      this.errorLogged = false;
    } catch (e) {
      this.stats.failures++;
      const err = (e as Error).message;
      if (isDenied(e)) {
        this.disabled = true;
        clearInterval(this.timer);
        logger.warn(
          { pod, err },
          'Kubernetes API denied the pod label patch: label publishing off (the directory runs on without it; see k8s/components/kube-api)',
        );
        return;
      }
      this.attempts++;
      if (!this.errorLogged) {
        this.errorLogged = true;
        logger.warn({ pod, err }, 'pod label patch failed; retrying');
      }
      if (this.attempts >= (this.o.maxAttempts ?? 5)) {
        // Bounded: no more tries for these labels until they change or a resync is due.
        this.attempts = 0;
        this.nextAttemptAt = (this.o.now ?? Date.now)() + (this.o.resyncMs ?? 300_000);
      } else {
        this.nextAttemptAt =
          (this.o.now ?? Date.now)() + (this.o.retryMs ?? 500) * 2 ** (this.attempts - 1);
      }
    }
  }
}
