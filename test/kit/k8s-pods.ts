// Runs rendered Kubernetes manifests (StatefulSets, Deployments, Services) as local
// processes, the way a kubelet would start them, for test/k8s-run.test.ts:
//  - each pod's containers get command + args exactly as written (the image ENTRYPOINT
//    `kubestorage` when there is no command), `$(VAR)` expanded by Kubernetes' rules, and
//    the environment from `value`, `valueFrom` (fieldRef, configMapKeyRef, secretKeyRef) and
//    `envFrom`, plus what the runtime adds (HOSTNAME, the image's ENV, KUBERNETES_SERVICE_*);
//  - volumes are directories: a volumeClaimTemplate is one per pod kept across restarts
//    (the PVC), an emptyDir is fresh for each start (a new pod), a ConfigMap or Secret is
//    written out as files;
//  - every pod has its own loopback address (Linux routes all of 127/8 to lo) and listens on
//    the manifest's ports; a Service with a cluster IP gets an address of its own and a TCP
//    proxy that spreads connections over the ready pods it selects (as kube-proxy does);
//  - DNS: as root, each pod runs in its own mount and UTS namespace (`unshare`) with an
//    /etc/hosts naming every pod and Service (short and long forms), an /etc/resolv.conf
//    with the namespace's search path, and its pod name as host name; otherwise the names
//    are replaced by addresses in the strings (printed);
//  - readiness is the pod's readinessProbe (httpGet or tcpSocket), polled every 500 ms;
//  - a container of another image than kubestorage (the Redis component's redis:7-alpine)
//    runs its `command` as found on this machine's PATH (Debian's /usr/bin/redis-server):
//    it must name one, the runner knows only the kubestorage image's entrypoint and ENV.
// What cannot be as in a container is replaced in the strings handed to the process
// (command, args, env values, mounted files) and every replacement is recorded:
// container paths of mounts -> their directories here, and 0.0.0.0 -> the pod's address
// (all pods share one network namespace, so two pods cannot both listen on 0.0.0.0:7001).
import { type ChildProcess, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { exited, killPid, type Proc, run, startProcess, stopChild } from './processes.ts';
import { sleep, until } from './until.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is untyped.
export type Obj = any;

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLUSTER_DOMAIN = 'cluster.local';

/** Whether `kubectl kustomize` can render the overlays (kustomize v5: kubectl 1.27+). */
export function kustomizeAvailable(): { ok: boolean; reason: string } {
  const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, reason: 'kubectl not found (1.27+ needed)' };
  const major = Number(/Kustomize Version: v(\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
  if (major < 5) return { ok: false, reason: `kubectl's kustomize is v${major}, v5 needed` };
  return { ok: true, reason: '' };
}

/** `kubectl kustomize DIR`, parsed. */
export function render(dir: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => {
    if (d.errors.length > 0) throw new Error(`${dir}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

/** Whether pods can get their own /etc/hosts and host name (root, unshare, mount). */
export function namespacesAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync(
    'unshare',
    ['--mount', '--uts', '/bin/sh', '-c', 'mount --bind /dev/null /etc/hosts && hostname t'],
    { encoding: 'utf8', timeout: 10_000 },
  );
  return r.status === 0;
}

/** Kubernetes' $(VAR) expansion: $$ escapes a $, unknown references stay as written. */
export function expand(s: string, env: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name?: string) => {
    if (m === '$$') return '$';
    return name !== undefined && env.has(name) ? env.get(name)! : m;
  });
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

/** Whether a container runs the kubestorage image (any registry, any tag). */
export function isKubestorageImage(image: string | undefined): boolean {
  const name = (image ?? '').replace(/@.*$/, '').replace(/:[^/:]*$/, '');
  return name.split('/').at(-1) === 'kubestorage';
}

/** The image's ENTRYPOINT and final-stage ENV, from the Dockerfile. */
function imageConfig(): { entrypoint: string[]; cmd: string[]; env: Record<string, string> } {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const stages = text.split(/^FROM .*$/m);
  const last = stages[stages.length - 1]!;
  const env: Record<string, string> = {};
  for (const m of last.matchAll(/^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$/gm)) env[m[1]!] = m[2]!;
  const json = (re: RegExp) => {
    const m = re.exec(last);
    return m ? (JSON.parse(m[1]!) as string[]) : [];
  };
  return {
    entrypoint: json(/^ENTRYPOINT\s+(\[.*\])\s*$/m),
    cmd: json(/^CMD\s+(\[.*\])\s*$/m),
    env,
  };
}

export interface Substitution {
  pod: string;
  where: string;
  from: string;
  to: string;
}

export interface Pod {
  name: string;
  workload: Obj;
  ordinal: number;
  ip: string;
  node: string;
  zone: string;
  labels: Record<string, string>;
  proc?: Proc;
  ready: boolean;
  starts: number;
  /** Exits the test did not cause: the kubelet restarts the container (restartPolicy Always). */
  crashes: Array<{ code: number | null; signal: string | null; output: string }>;
  /** Set while the test kills or stops it: that exit is no crash. */
  stopping?: boolean;
  log: string;
  /** Host directories of the current start's volumes, by volume name. */
  volumes: Map<string, string>;
}

interface Service {
  obj: Obj;
  ip?: string; // none: headless
  servers: net.Server[];
}

export interface ClusterOptions {
  /** Scratch root: volumes, hosts files, logs. */
  root: string;
  /** First three octets of the loopback addresses, e.g. "127.81.3". */
  net: string;
  /** Node zones, pod i of each workload on node i (zone i mod n). */
  zones: string[];
  /** Secrets the cluster operator creates (not in the render), name -> key -> value. */
  secrets?: Record<string, Record<string, string>>;
  /** Runs each pod in own mount/UTS namespace with its hosts file (default: if possible). */
  namespaces?: boolean;
  log?: (line: string) => void;
}

/** A kubelet, a scheduler, kube-proxy and a cluster DNS for rendered manifests. */
export class LocalCluster {
  readonly objs: Obj[];
  readonly pods: Pod[] = [];
  readonly services: Service[] = [];
  readonly substitutions: Substitution[] = [];
  readonly namespaces: boolean;
  private readonly image = imageConfig();
  private readonly binDir: string;
  private readonly probeTimer: NodeJS.Timeout;
  private stopped = false;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    objs: Obj[],
    private readonly opts: ClusterOptions,
  ) {
    this.objs = [...objs];
    for (const [name, data] of Object.entries(opts.secrets ?? {})) {
      if (!this.objs.some((o) => o.kind === 'Secret' && o.metadata.name === name)) {
        const enc = Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        );
        this.objs.push({ kind: 'Secret', metadata: { name }, data: enc });
      }
    }
    this.namespaces = opts.namespaces ?? namespacesAvailable();
    fs.chmodSync(opts.root, 0o755); // pods may run as another user (runAsUser)
    this.binDir = path.join(opts.root, 'bin');
    fs.mkdirSync(this.binDir, { recursive: true });
    // The image links /usr/local/bin/kubestorage to bin/kubestorage.js (a node shebang).
    fs.symlinkSync(path.join(ROOT, 'bin/kubestorage.js'), path.join(this.binDir, 'kubestorage'));
    this.schedule();
    this.probeTimer = setInterval(() => void this.probeAll(), 500);
    this.probeTimer.unref();
  }

  private log(line: string): void {
    (this.opts.log ?? ((l) => console.log(l)))(line);
  }

  /** The namespace of the render's workloads. */
  get namespace(): string {
    return this.objs.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')?.metadata
      ?.namespace;
  }

  private byKind(kind: string): Obj[] {
    return this.objs.filter((o) => o.kind === kind);
  }

  private find(kind: string, name: string, optional = false): Obj | undefined {
    const o = this.objs.find((x) => x.kind === kind && x.metadata.name === name);
    if (!o && !optional) throw new Error(`no ${kind}/${name} (render or opts.secrets)`);
    return o;
  }

  /** Pods of every StatefulSet and Deployment, addresses, nodes, zones; Service addresses. */
  private schedule(): void {
    let host = 10;
    for (const w of [...this.byKind('StatefulSet'), ...this.byKind('Deployment')]) {
      const hpa = this.byKind('HorizontalPodAutoscaler').find(
        (h) =>
          h.spec.scaleTargetRef.kind === w.kind && h.spec.scaleTargetRef.name === w.metadata.name,
      );
      const replicas = w.spec.replicas ?? hpa?.spec.minReplicas ?? 1;
      const start = w.spec.ordinals?.start ?? 0;
      const templateHash = crypto
        .createHash('sha256')
        .update(JSON.stringify(w.spec.template))
        .digest('hex')
        .slice(0, 9);
      for (let i = 0; i < replicas; i++) {
        const ordinal = start + i;
        const name =
          w.kind === 'StatefulSet'
            ? `${w.metadata.name}-${ordinal}`
            : `${w.metadata.name}-${templateHash}-${crypto.createHash('sha256').update(`${ordinal}`).digest('hex').slice(0, 5)}`;
        const zone = this.opts.zones[i % this.opts.zones.length]!;
        const labels: Record<string, string> = {
          ...w.spec.template.metadata?.labels,
          // What PodTopologyLabelsAdmission (Kubernetes 1.35+) copies from the node.
          'topology.kubernetes.io/zone': zone,
        };
        if (w.kind === 'StatefulSet') {
          labels['statefulset.kubernetes.io/pod-name'] = name;
          labels['apps.kubernetes.io/pod-index'] = String(ordinal);
        } else labels['pod-template-hash'] = templateHash;
        this.pods.push({
          name,
          workload: w,
          ordinal,
          ip: `${this.opts.net}.${host++}`,
          node: `node-${i}`,
          zone,
          labels,
          ready: false,
          starts: 0,
          crashes: [],
          log: path.join(this.opts.root, 'logs', `${name}.log`),
          volumes: new Map(),
        });
      }
    }
    let svcHost = 200;
    for (const s of this.byKind('Service')) {
      const headless = s.spec.clusterIP === 'None';
      this.services.push({
        obj: s,
        ip: headless ? undefined : `${this.opts.net}.${svcHost++}`,
        servers: [],
      });
    }
    fs.mkdirSync(path.join(this.opts.root, 'logs'), { recursive: true });
  }

  pod(name: string): Pod {
    const p = this.pods.find((x) => x.name === name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  podsOf(workload: string): Pod[] {
    return this.pods.filter((p) => p.workload.metadata.name === workload);
  }

  private selected(s: Obj): Pod[] {
    return this.pods.filter((p) => s.spec.selector && matches(s.spec.selector, p.labels));
  }

  /** DNS: name -> addresses (what cluster DNS answers), every form a pod could ask for. */
  dnsTable(): Map<string, string[]> {
    const ns = this.namespace;
    const table = new Map<string, string[]>();
    const forms = (short: string) => [
      short,
      `${short}.${ns}`,
      `${short}.${ns}.svc`,
      `${short}.${ns}.svc.${CLUSTER_DOMAIN}`,
    ];
    const add = (names: string[], ip: string) => {
      for (const n of names) table.set(n, [...(table.get(n) ?? []), ip]);
    };
    for (const s of this.services) {
      const name = s.obj.metadata.name;
      if (s.ip) add(forms(name), s.ip);
      else for (const p of this.selected(s.obj)) add(forms(name), p.ip);
    }
    // StatefulSet pods under their governing headless Service: <pod>.<service>.
    for (const p of this.pods) {
      const svc = p.workload.kind === 'StatefulSet' ? p.workload.spec.serviceName : undefined;
      if (svc && this.services.some((s) => s.obj.metadata.name === svc && !s.ip))
        add(forms(`${p.name}.${svc}`), p.ip);
    }
    return table;
  }

  /** The address and port of a Service's port (by name or number), as the test reaches it. */
  serviceUrl(name: string, port?: string | number): string {
    const s = this.services.find((x) => x.obj.metadata.name === name);
    if (!s?.ip) throw new Error(`Service ${name}: none with a cluster IP`);
    const p = s.obj.spec.ports.find(
      (x: Obj) => port === undefined || x.name === port || x.port === port,
    );
    return `http://${s.ip}:${p.port}`;
  }

  /** kube-proxy: a TCP proxy on each Service port, to the ready pods it selects. */
  async startServices(): Promise<void> {
    for (const s of this.services) {
      if (!s.ip) continue;
      for (const port of s.obj.spec.ports) {
        let next = 0;
        const server = net.createServer((client) => {
          const ready = this.selected(s.obj).filter((p) => p.ready);
          if (ready.length === 0) {
            client.destroy();
            return;
          }
          const pod = ready[next++ % ready.length]!;
          const target = this.containerPort(pod, port.targetPort ?? port.port);
          const upstream = net.connect(target, pod.ip);
          this.sockets.add(client).add(upstream);
          client.pipe(upstream).pipe(client);
          const end = () => {
            client.destroy();
            upstream.destroy();
            this.sockets.delete(client);
            this.sockets.delete(upstream);
          };
          client.on('error', end);
          upstream.on('error', end);
          client.on('close', end);
          upstream.on('close', end);
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port.port, s.ip, () => resolve());
        });
        s.servers.push(server);
      }
    }
  }

  /** A named or numbered port of the pod's containers. */
  private containerPort(pod: Pod, port: string | number): number {
    if (typeof port === 'number') return port;
    if (/^\d+$/.test(port)) return Number(port);
    for (const c of pod.workload.spec.template.spec.containers)
      for (const p of c.ports ?? []) if (p.name === port) return p.containerPort;
    throw new Error(`${pod.name}: no container port named ${port}`);
  }

  /** A container's environment, as the kubelet builds it (envFrom, then env in order). */
  private containerEnv(pod: Pod, c: Obj): Map<string, string> {
    const env = new Map<string, string>();
    const configMap = (name: string, optional?: boolean) => this.find('ConfigMap', name, optional);
    const secret = (name: string, optional?: boolean) => this.find('Secret', name, optional);
    const secretData = (s: Obj): Record<string, string> => ({
      ...Object.fromEntries(
        Object.entries(s?.data ?? {}).map(([k, v]) => [
          k,
          Buffer.from(v as string, 'base64').toString(),
        ]),
      ),
      ...s?.stringData,
    });
    for (const from of c.envFrom ?? []) {
      const prefix = from.prefix ?? '';
      const data = from.configMapRef
        ? configMap(from.configMapRef.name, from.configMapRef.optional)?.data
        : secretData(secret(from.secretRef.name, from.secretRef.optional));
      for (const [k, v] of Object.entries(data ?? {})) env.set(prefix + k, v as string);
    }
    for (const e of c.env ?? []) {
      const vf = e.valueFrom;
      let v: string | undefined;
      if (!vf) v = expand(e.value ?? '', env);
      else if (vf.fieldRef) v = this.fieldRef(pod, vf.fieldRef.fieldPath);
      else if (vf.configMapKeyRef) {
        const r = vf.configMapKeyRef;
        v = configMap(r.name, r.optional)?.data?.[r.key];
        if (v === undefined && !r.optional)
          throw new Error(`${pod.name}: no key ${r.key} in ${r.name}`);
      } else if (vf.secretKeyRef) {
        const r = vf.secretKeyRef;
        v = secretData(secret(r.name, r.optional) ?? {})[r.key];
        if (v === undefined && !r.optional)
          throw new Error(`${pod.name}: no key ${r.key} in ${r.name}`);
      } else throw new Error(`${pod.name} env ${e.name}: unsupported source ${JSON.stringify(vf)}`);
      if (v !== undefined) env.set(e.name, v);
    }
    return env;
  }

  private fieldRef(pod: Pod, f: string): string {
    const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(f);
    if (label) {
      const src =
        label[1] === 'labels'
          ? pod.labels
          : (pod.workload.spec.template.metadata?.annotations ?? {});
      return src[label[2]!] ?? '';
    }
    const fields: Record<string, string> = {
      'metadata.name': pod.name,
      'metadata.namespace': this.namespace,
      'metadata.uid': crypto.createHash('sha256').update(pod.name).digest('hex').slice(0, 32),
      'spec.nodeName': pod.node,
      'spec.serviceAccountName': pod.workload.spec.template.spec.serviceAccountName ?? 'default',
      'status.podIP': pod.ip,
      'status.podIPs': pod.ip,
      'status.hostIP': pod.ip,
    };
    const v = fields[f];
    if (v === undefined) throw new Error(`${pod.name}: unsupported fieldRef ${f}`);
    return v;
  }

  /** Makes (or reuses, for claims) the host directory of each volume the containers mount. */
  private materialize(pod: Pod, containers: Obj[]): void {
    const spec = pod.workload.spec.template.spec;
    const podDir = path.join(this.opts.root, 'pods', `${pod.name}-${pod.starts}`);
    fs.mkdirSync(podDir, { recursive: true, mode: 0o755 });
    pod.volumes = new Map();
    const fsGroup = spec.securityContext?.fsGroup;
    const used = new Set(containers.flatMap((c) => (c.volumeMounts ?? []).map((m: Obj) => m.name)));
    const files: Array<() => void> = [];
    for (const name of used) {
      const claim = (pod.workload.spec.volumeClaimTemplates ?? []).find(
        (t: Obj) => t.metadata.name === name,
      );
      const vol = spec.volumes?.find((v: Obj) => v.name === name);
      let dir: string;
      if (claim) {
        // The PVC <claim>-<pod>: kept across restarts of the pod.
        dir = path.join(this.opts.root, 'pvc', `${name}-${pod.name}`);
        const fresh = !fs.existsSync(dir);
        fs.mkdirSync(dir, { recursive: true });
        if (fresh && fsGroup !== undefined) {
          // What the kubelet does for fsGroup: group-owned, group-writable, setgid.
          fs.chownSync(dir, 0, fsGroup);
          fs.chmodSync(dir, 0o2770);
        }
      } else if (vol?.emptyDir) {
        dir = path.join(podDir, `empty-${name}`);
        fs.mkdirSync(dir, { recursive: true });
        fs.chmodSync(dir, 0o1777);
      } else if (vol?.configMap || vol?.secret) {
        dir = path.join(podDir, `${vol.configMap ? 'cm' : 'secret'}-${name}`);
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        const target = dir;
        files.push(() => this.writeVolumeFiles(pod, vol, target));
      } else if (vol?.projected) {
        dir = path.join(podDir, `projected-${name}`);
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        for (const src of vol.projected.sources ?? []) {
          if (src.serviceAccountToken) {
            // No API server here: a token that opens nothing.
            fs.writeFileSync(path.join(dir, src.serviceAccountToken.path), 'no-api-server-here\n');
          } else if (src.configMap) {
            const cm = this.find('ConfigMap', src.configMap.name, true);
            for (const it of src.configMap.items ?? []) {
              // kube-root-ca.crt is published in every namespace by Kubernetes: empty here.
              fs.writeFileSync(path.join(dir, it.path), cm?.data?.[it.key] ?? '');
            }
          } else throw new Error(`${pod.name}: volume ${name}: unsupported projection`);
        }
      } else {
        throw new Error(`${pod.name}: volume ${name}: unsupported type ${JSON.stringify(vol)}`);
      }
      pod.volumes.set(name, dir);
    }
    // After every directory exists: mounted text is substituted with the pod's mount paths.
    for (const f of files) f();
  }

  /** A ConfigMap's or Secret's keys as files (items honoured); ConfigMap text substituted. */
  private writeVolumeFiles(pod: Pod, vol: Obj, dir: string): void {
    let data: Record<string, Buffer>;
    if (vol.configMap) {
      const cm = this.find('ConfigMap', vol.configMap.name, vol.configMap.optional) ?? {};
      data = Object.fromEntries([
        ...Object.entries(cm.data ?? {}).map(([k, v]) => [
          k,
          Buffer.from(this.substitute(pod, `file ${vol.configMap.name}/${k}`, v as string)),
        ]),
        ...Object.entries(cm.binaryData ?? {}).map(([k, v]) => [
          k,
          Buffer.from(v as string, 'base64'),
        ]),
      ]);
    } else {
      const s = this.find('Secret', vol.secret.secretName, vol.secret.optional) ?? {};
      data = Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v as string, 'base64')]),
      );
    }
    const items: Array<{ key: string; path: string }> =
      (vol.configMap ?? vol.secret).items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
    for (const it of items) {
      const file = path.join(dir, it.path);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
      fs.writeFileSync(file, data[it.key] ?? Buffer.alloc(0), { mode: 0o644 });
    }
  }

  /** A container's mounts: container path -> host path, longest first. */
  private mounts(pod: Pod, c: Obj): Array<[string, string]> {
    return (c.volumeMounts ?? [])
      .map((m: Obj): [string, string] => {
        const dir = pod.volumes.get(m.name)!;
        return [m.mountPath, m.subPath ? path.join(dir, m.subPath) : dir];
      })
      .sort((a: [string, string], b: [string, string]) => b[0].length - a[0].length);
  }

  /** The replacements for this pod's strings: mount paths, 0.0.0.0, and DNS without namespaces. */
  private replacements(pod: Pod, c?: Obj): Array<[RegExp, string, string]> {
    const out: Array<[RegExp, string, string]> = [];
    const containers = c ? [c] : pod.workload.spec.template.spec.containers;
    for (const cc of containers)
      for (const [from, to] of this.mounts(pod, cc))
        out.push([new RegExp(`(?<![\\w.\\-/])${escapeRe(from)}(?![\\w.\\-])`, 'g'), from, to]);
    out.push([/(?<![\d.])0\.0\.0\.0(?![\d.])/g, '0.0.0.0', pod.ip]);
    if (!this.namespaces) {
      const names = [...this.dnsTable().entries()].sort((a, b) => b[0].length - a[0].length);
      for (const [name, ips] of names)
        out.push([
          new RegExp(`(?<![\\w.\\-])${escapeRe(name)}(?![\\w\\-]|\\.[A-Za-z])`, 'g'),
          name,
          ips[0]!,
        ]);
    }
    return out;
  }

  /** One pass over `s`: at each place the longest match of any replacement wins. */
  private substitute(pod: Pod, where: string, s: string, c?: Obj): string {
    const hits: Array<{ at: number; len: number; from: string; to: string }> = [];
    for (const [re, from, to] of this.replacements(pod, c))
      for (const m of s.matchAll(re)) hits.push({ at: m.index, len: m[0].length, from, to });
    hits.sort((a, b) => a.at - b.at || b.len - a.len);
    let out = '';
    let pos = 0;
    for (const hit of hits) {
      if (hit.at < pos) continue;
      out += s.slice(pos, hit.at) + hit.to;
      pos = hit.at + hit.len;
      if (
        !this.substitutions.some(
          (x) => x.pod === pod.name && x.where === where && x.from === hit.from,
        )
      )
        this.substitutions.push({ pod: pod.name, where, from: hit.from, to: hit.to });
    }
    return out + s.slice(pos);
  }

  /** The process of container `c` in `pod`: what to spawn and with which environment. */
  private processOf(
    pod: Pod,
    c: Obj,
  ): { cmd: string; args: string[]; env: Record<string, string>; argv: string[] } {
    const spec = pod.workload.spec.template.spec;
    const kenv = this.containerEnv(pod, c);
    const ours = isKubestorageImage(c.image);
    if (!ours && !c.command)
      throw new Error(`${pod.name} ${c.name}: image ${c.image} without a command`);
    const image = ours ? this.image : { entrypoint: [], cmd: [], env: {} };
    const command: string[] = (c.command ?? image.entrypoint).map((s: string) =>
      c.command ? expand(s, kenv) : s,
    );
    const args: string[] = (c.args ?? (c.command ? [] : image.cmd)).map((s: string) =>
      expand(s, kenv),
    );
    const argv = [...command, ...args].map((s, i) =>
      this.substitute(pod, `${c.name} argv[${i}]`, s, c),
    );
    const dir = path.join(this.opts.root, 'pods', `${pod.name}-${pod.starts}`);
    const env: Record<string, string> = {
      PATH: `${this.binDir}:${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      ...image.env,
      HOSTNAME: pod.name,
      HOME: dir,
      // Always set by the kubelet; nothing listens there (no API server here).
      KUBERNETES_SERVICE_HOST: `${this.opts.net}.254`,
      KUBERNETES_SERVICE_PORT: '443',
    };
    for (const [k, v] of kenv) env[k] = this.substitute(pod, `${c.name} env ${k}`, v, c);
    if (!this.namespaces) return { cmd: argv[0]!, args: argv.slice(1), env, argv };

    const hosts = path.join(dir, 'hosts');
    const lines = ['127.0.0.1 localhost', `${pod.ip} ${pod.name}`];
    for (const [name, ips] of this.dnsTable()) for (const ip of ips) lines.push(`${ip} ${name}`);
    fs.writeFileSync(hosts, `${lines.join('\n')}\n`, { mode: 0o644 });
    const resolv = path.join(dir, 'resolv.conf');
    const ns = this.namespace;
    fs.writeFileSync(
      resolv,
      // No name server: every name of the cluster is in /etc/hosts; others fail at once.
      `search ${ns}.svc.${CLUSTER_DOMAIN} svc.${CLUSTER_DOMAIN} ${CLUSTER_DOMAIN}\nnameserver 127.255.255.254\noptions ndots:5 timeout:1 attempts:1\n`,
      { mode: 0o644 },
    );
    const sc = { ...spec.securityContext, ...c.securityContext };
    const user =
      sc.runAsUser !== undefined
        ? [
            'setpriv',
            `--reuid=${sc.runAsUser}`,
            `--regid=${sc.runAsGroup ?? sc.runAsUser}`,
            spec.securityContext?.fsGroup !== undefined
              ? `--groups=${spec.securityContext.fsGroup}`
              : '--clear-groups',
            '--',
          ]
        : [];
    const args2 = [
      '--mount',
      '--uts',
      '/bin/sh',
      '-c',
      'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && hostname "$3" && shift 3 && exec "$@"',
      'pod',
      hosts,
      resolv,
      pod.name,
      ...user,
      ...argv,
    ];
    return { cmd: 'unshare', args: args2, env, argv };
  }

  /**
   * Starts the pod: fresh emptyDirs, the claims it had, its init containers run to
   * completion in order, then its container (one per pod here) as a long-running process.
   */
  async start(pod: Pod): Promise<void> {
    const spec = pod.workload.spec.template.spec;
    if (spec.containers.length !== 1)
      throw new Error(`${pod.name}: ${spec.containers.length} containers, the runner runs one`);
    const c = spec.containers[0];
    this.materialize(pod, [...(spec.initContainers ?? []), c]);
    const logFd = fs.openSync(pod.log, 'a');
    for (const init of spec.initContainers ?? []) {
      const p = this.processOf(pod, init);
      const r = await run(p.cmd, p.args, {
        env: p.env,
        cwd: ROOT,
        timeoutMs: 60_000,
        allowFail: true,
      });
      fs.writeSync(
        logFd,
        `--- init ${init.name}: ${JSON.stringify(p.argv)} exit ${r.code}\n${r.stdout}${r.stderr}`,
      );
      this.log(
        `[k8s-run] ${pod.name} init ${init.name}: ${p.argv.join(' ')} -> exit ${r.code} ${r.stdout.trim()}`,
      );
      if (r.code !== 0)
        throw new Error(`${pod.name}: init container ${init.name} failed: ${r.stderr}`);
    }
    const p = this.processOf(pod, c);
    pod.starts++;
    pod.ready = false;
    const proc = startProcess(p.cmd, p.args, { env: p.env, cwd: ROOT, detached: true });
    fs.writeSync(logFd, `--- start ${pod.starts}: ${JSON.stringify(p.argv)}\n`);
    const write = (b: Buffer) => fs.writeSync(logFd, b);
    proc.child.stdout?.on('data', write);
    proc.child.stderr?.on('data', write);
    proc.child.once('close', () => fs.closeSync(logFd));
    pod.proc = proc;
    pod.stopping = false;
    proc.child.once('exit', (code, signal) => {
      if (pod.stopping || this.stopped) return;
      // restartPolicy Always: the kubelet starts the container again (after 10 s, doubling;
      // 1 s here), the pod keeps its volumes.
      pod.crashes.push({ code, signal, output: proc.output().slice(-2000) });
      this.log(
        `[k8s-run] ${pod.name} exited (${code ?? signal}), restarting: ${proc.output().slice(-500)}`,
      );
      setTimeout(() => {
        if (!this.stopped && pod.proc === proc)
          this.start(pod).catch((e) => this.log(`[k8s-run] ${pod.name} restart failed: ${e}`));
      }, 1_000).unref();
    });
    this.log(
      `[k8s-run] started ${pod.name} (${pod.ip}, ${pod.zone}) pid ${proc.child.pid}: ${p.argv.join(' ')}`,
    );
  }

  /** The container's environment as written (before substitutions), e.g. for credentials. */
  envOf(pod: Pod): Map<string, string> {
    return this.containerEnv(pod, pod.workload.spec.template.spec.containers[0]);
  }

  async startAll(): Promise<void> {
    await Promise.all(this.pods.map((p) => this.start(p)));
  }

  /** kill -9 the pod's process (its process group), and waits until it is gone. */
  async kill(pod: Pod): Promise<void> {
    const child = pod.proc?.child as ChildProcess;
    pod.ready = false;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    pod.stopping = true;
    this.log(`[k8s-run] kill -9 ${pod.name} pid ${child.pid}`);
    if (!killPid(-(child.pid as number))) killPid(child.pid as number);
    await exited(child);
  }

  private async probe(pod: Pod): Promise<boolean> {
    const c = pod.workload.spec.template.spec.containers[0];
    const tcp = c.readinessProbe?.tcpSocket;
    if (tcp) {
      // Ready once the port takes a connection (the kubelet's tcpSocket probe).
      const port = this.containerPort(pod, tcp.port);
      const ms = (c.readinessProbe.timeoutSeconds ?? 1) * 1000;
      return new Promise<boolean>((resolve) => {
        const sock = net.connect(port, pod.ip);
        const done = (ok: boolean) => {
          clearTimeout(timer);
          sock.destroy();
          resolve(ok);
        };
        const timer = setTimeout(() => done(false), ms);
        sock.once('connect', () => done(true));
        sock.once('error', () => done(false));
      });
    }
    const p = c.readinessProbe?.httpGet;
    if (!p) return true;
    const port = this.containerPort(pod, p.port);
    try {
      const res = await fetch(`http://${pod.ip}:${port}${p.path ?? '/'}`, {
        signal: AbortSignal.timeout((c.readinessProbe.timeoutSeconds ?? 1) * 1000),
      });
      await res.arrayBuffer();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }

  private async probeAll(): Promise<void> {
    await Promise.all(
      this.pods.map(async (p) => {
        const child = p.proc?.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) {
          p.ready = false;
          return;
        }
        p.ready = await this.probe(p);
      }),
    );
  }

  /** Waits until every given pod's readinessProbe passes; fails early if one exits. */
  async waitReady(pods: Pod[], ms: number): Promise<void> {
    await until(
      `readiness of ${pods.map((p) => p.name).join(', ')}`,
      async () => {
        const states = await Promise.all(pods.map((p) => this.probe(p)));
        states.forEach((ok, i) => {
          if (ok) pods[i]!.ready = true;
        });
        return states.every(Boolean) || false;
      },
      ms,
      { everyMs: 250 },
    ).catch((e) => {
      for (const p of pods.filter((x) => !x.ready))
        this.log(`[k8s-run] ${p.name} not ready; its output:\n${p.proc?.output().slice(-3000)}`);
      throw e;
    });
  }

  /** The printed plan: pods, addresses, DNS, and every substitution made. */
  describe(): string {
    const lines = [
      `namespace ${this.namespace}; DNS via ${this.namespaces ? 'per-pod /etc/hosts (unshare --mount --uts)' : 'names replaced by addresses'}`,
    ];
    for (const p of this.pods)
      lines.push(
        `  pod ${p.name}  ip ${p.ip}  node ${p.node}  zone ${p.zone}  starts ${p.starts}  crashes ${p.crashes.length}`,
      );
    for (const s of this.services)
      lines.push(`  service ${s.obj.metadata.name}  ${s.ip ? `cluster IP ${s.ip}` : 'headless'}`);
    lines.push('  substitutions (pod, where: from -> to):');
    for (const s of this.substitutions)
      lines.push(`    ${s.pod}, ${s.where}: ${s.from} -> ${s.to}`);
    return lines.join('\n');
  }

  /** Stops every pod (SIGTERM, then SIGKILL by PID) and every proxy. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.probeTimer);
    for (const p of this.pods) p.stopping = true;
    await Promise.all(this.pods.map((p) => (p.proc ? stopChild(p.proc.child, 5_000) : undefined)));
    for (const sock of this.sockets) sock.destroy();
    for (const s of this.services)
      for (const srv of s.servers) await new Promise<void>((r) => srv.close(() => r()));
    await sleep(0);
  }
}
