// The Kubernetes manifests (k8s/) and the Dockerfile, checked without a cluster:
//  - `kubectl kustomize` renders the base, both overlays and the optional components;
//  - every rendered object validates against its Kubernetes OpenAPI schema (kubernetes-models,
//    @kubernetes-models/prometheus-operator for the ServiceMonitor), and has no field the
//    schema does not know (the same objects type-checked against the models' declarations:
//    the OpenAPI schemas allow unknown properties, so a misspelt `readinesProbe` would pass);
//  - what the manifests must mean: probes, resources, security contexts, selectors that
//    select, references that resolve, the Raft quorum kept by the PDB, stores spread over
//    zones, no secret values outside dev, the directory topology consistent with the
//    replica count, and container arguments (no shell wrappers) that the kubestorage CLI
//    accepts and resolves as intended: each directory pod's id, bootstrap group and join,
//    each store's id, address and zone (the node-zone-lookup file included);
//  - the zone lookup script against a stand-in API server (HTTPS, self-signed);
//  - the Dockerfile's shape, and that it copies everything `kubestorage` imports.
// Docker itself is not run: there is no engine on these machines.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main as adminStoreMain } from '../cli/admin-store.ts';
import { main as directoryMain, topologyOf } from '../cli/directory.ts';
import { main as gatewayMain, parseDirectory } from '../cli/gateway.ts';
import { main as storeMain, storeZone } from '../cli/store.ts';
import { DEFAULT_CONFIG, loadConfig } from '../common/config.ts';
import { importGraph } from '../scripts/check-imports.ts';
import { tempDir } from './kit/temp-dirs.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const K8S = path.join(ROOT, 'k8s');

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is untyped; checks narrow it.
type Obj = any;

// kubectl with kustomize v5 (kubectl 1.27+): the overlays use `labels`, `replicas` and
// components. Debian's own kubernetes-client (1.20, kustomize v2) cannot render them.
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const kustomizeMajor = Number(/Kustomize Version: v(\d+)/.exec(kubectl.stdout ?? '')?.[1] ?? 0);
const HAVE_KUBECTL = kubectl.status === 0 && kustomizeMajor >= 5;
const KUBECTL_MISSING =
  kubectl.status === 0
    ? `kubectl's kustomize is v${kustomizeMajor}, v5 needed`
    : 'kubectl not found (kubectl 1.27+ needed)';
// In CI (process.env.CI) a missing kubectl fails the run instead of skipping the checks.
const IN_CI = Boolean(process.env.CI);
if (!HAVE_KUBECTL && !IN_CI) console.warn(`k8s manifests: ${KUBECTL_MISSING}: rendering skipped`);

/** `kubectl kustomize DIR`, parsed. */
function render(dir: string): Obj[] {
  const text = execFileSync('kubectl', ['kustomize', dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`${dir}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

const id = (o: Obj) => `${o.kind}/${o.metadata?.name}`;
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in the render`);
  return o;
};
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
const WORKLOADS = new Set(['StatefulSet', 'Deployment']);
/** A generated ConfigMap or Secret keeps its name before the hash suffix. */
const byPrefix = (objs: Obj[], kind: string, name: string): Obj | undefined =>
  objs.find(
    (o) =>
      o.kind === kind &&
      (o.metadata.name === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(o.metadata.name)),
  );

/** The module that models apiVersion/kind: kubernetes-models, or the operator's models. */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/'))
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function validateSchema(o: Obj): Promise<void> {
  let Model: new (d: unknown) => { validate(): void };
  try {
    Model = (await import(modelModule(o.apiVersion, o.kind)))[o.kind];
  } catch {
    throw new Error(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
  }
  try {
    new Model(o).validate();
  } catch (e) {
    throw new Error(`${id(o)}: ${(e as Error).message}`);
  }
}

/**
 * Type-checks every object as an object literal of its model's interface: excess property
 * checks find the fields the schema does not have. One program for all objects (the
 * declarations load once). Returns the diagnostics, each naming its object.
 */
function strictFieldCheck(objs: Obj[]): string[] {
  const file = path.join(ROOT, '__k8s_manifests_check__.ts');
  const lines: string[] = [];
  const owner: string[] = [];
  objs.forEach((o, i) => {
    const mod = modelModule(o.apiVersion, o.kind);
    lines.push(`import type { I${o.kind} as T${i} } from '${mod}';`);
    owner.push('');
  });
  objs.forEach((o, i) => {
    for (const l of `export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`.split('\n')) {
      lines.push(l);
      owner.push(`${o.apiVersion} ${id(o)}`);
    }
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file
      ? ts.createSourceFile(name, source, lang)
      : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  return ts.getPreEmitDiagnostics(program, sf).map((d) => {
    const line = d.start === undefined ? 0 : sf.getLineAndCharacterOfPosition(d.start).line;
    return `${owner[line] || '(imports)'}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

const podSpec = (w: Obj) => w.spec.template.spec;
const containersOf = (w: Obj): Obj[] => [
  ...(podSpec(w).initContainers ?? []),
  ...podSpec(w).containers,
];
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const quantity = (q: string): number => {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|m)?$/.exec(q);
  if (!m) throw new Error(`quantity ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, m: 1e-3 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
};

/** Kubernetes' $(VAR) expansion in command, args and env values: $$ escapes a $. */
function expand(s: string, env: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name?: string) => {
    if (m === '$$') return '$';
    return name !== undefined && env.has(name) ? env.get(name)! : m;
  });
}

const FAKE_ZONE = 'zone-a';
const FAKE_NODE = 'node-1';

/** A container's environment as the kubelet would give it in pod `podName`. */
function containerEnv(objs: Obj[], c: Obj, podName: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    let v: string;
    if (e.value !== undefined) v = expand(e.value, env);
    else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      v = find(objs, 'ConfigMap', ref.name).data[ref.key];
    } else if (e.valueFrom?.secretKeyRef) v = 'a-test-cluster-secret-of-some-length';
    else if (e.valueFrom?.fieldRef) {
      const f = e.valueFrom.fieldRef.fieldPath;
      v =
        f === 'metadata.name'
          ? podName
          : f === "metadata.labels['topology.kubernetes.io/zone']"
            ? FAKE_ZONE
            : f === 'spec.nodeName'
              ? FAKE_NODE
              : `(${f})`;
    } else throw new Error(`env ${e.name}: unexpected source`);
    env.set(e.name, v);
  }
  return env;
}

/** The CLI's own flag parsing, stopped at --help: throws on a flag it does not know. */
async function cliAccepts(argv: string[]): Promise<void> {
  const mains: Record<string, (a: string[]) => Promise<void>> = {
    directory: directoryMain,
    store: storeMain,
    gateway: gatewayMain,
  };
  const [command, ...rest] = argv;
  const main = mains[command!];
  if (!main) throw new Error(`not a server command: ${command}`);
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    await main([...rest, '--help']);
    expect(write).toHaveBeenCalled();
  } finally {
    write.mockRestore();
  }
}

/**
 * The arguments a container's process gets in pod `podName`: its args, $(VAR) expanded,
 * after the image's ENTRYPOINT ["kubestorage"] (no container replaces it: no shell wrappers).
 */
function processArgs(objs: Obj[], c: Obj, podName: string): string[] {
  expect(c.command, `${c.name}: runs the image's kubestorage entrypoint`).toBeUndefined();
  const env = containerEnv(objs, c, podName);
  return (c.args ?? []).map((s: string) => expand(s, env));
}

/** The value of a --name=value argument (the manifests' form); undefined when absent. */
function flagValue(argv: string[], name: string): string | undefined {
  const found = argv.filter((a) => a.startsWith(`--${name}=`));
  expect(found.length, `--${name} given more than once`).toBeLessThanOrEqual(1);
  return found[0]?.slice(name.length + 3);
}

interface Expect {
  dir: string;
  namespace: string;
  directories: number;
  minStores: number;
  image: RegExp;
  secrets: 'generated' | 'external';
}

const OVERLAYS: Record<string, Expect> = {
  dev: {
    dir: 'overlays/dev',
    namespace: 'kubestorage-dev',
    directories: 1,
    minStores: 1,
    image: /^kubestorage:dev$/,
    secrets: 'generated',
  },
  prod: {
    dir: 'overlays/prod',
    namespace: 'kubestorage',
    directories: 3,
    minStores: 4,
    image: /^[^:]+\/kubestorage:\d+\.\d+\.\d+$/,
    secrets: 'external',
  },
};

const SECRET_KEYS = ['cluster-secret', 'root-access-key', 'root-secret-key'];

describe.runIf(!HAVE_KUBECTL && IN_CI)('k8s manifests: CI has kubectl', () => {
  it('fails the run rather than skip the manifest checks', () => {
    expect.fail(`${KUBECTL_MISSING}: CI must render the manifests (.ci/run checks for kubectl)`);
  });
});

/** The Redis component's workload (the gateways' L2 cache), not a kubestorage server. */
const isRedis = (w: Obj) => w.metadata.labels?.['app.kubernetes.io/component'] === 'redis';

describe.skipIf(!HAVE_KUBECTL)('k8s manifests', () => {
  const rendered: Record<string, Obj[]> = {};
  let withComponents: Obj[] = [];

  beforeAll(() => {
    rendered.base = render(path.join(K8S, 'base'));
    for (const [name, o] of Object.entries(OVERLAYS))
      rendered[name] = render(path.join(K8S, o.dir));
    // The optional components on top of prod, as an operator would add them.
    const dir = tempDir('ks-k8s-components-');
    const rel = (p: string) => path.relative(dir, path.join(K8S, p));
    fs.writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${rel('overlays/prod')}`,
        'components:',
        `  - ${rel('components/ingress')}`,
        `  - ${rel('components/service-monitor')}`,
        '',
      ].join('\n'),
    );
    withComponents = render(dir);
  });

  it('renders the base, dev, prod and the optional components', () => {
    expect(kubectl.stdout).toMatch(/Client Version/);
    for (const objs of [...Object.values(rendered), withComponents]) {
      const kinds = new Set(objs.map((o) => o.kind));
      for (const k of ['StatefulSet', 'Deployment', 'Service', 'PodDisruptionBudget'])
        expect(kinds).toContain(k);
    }
    expect(withComponents.map(id)).toEqual(
      expect.arrayContaining([
        'Ingress/ks-gateway',
        'ServiceMonitor/ks-store',
        'ServiceMonitor/ks-gateway',
      ]),
    );
    // The Redis component is in prod, not in dev.
    expect(rendered.prod!.map(id)).toEqual(
      expect.arrayContaining([
        'Deployment/ks-redis',
        'Service/ks-redis',
        'NetworkPolicy/ks-redis',
        'ServiceAccount/ks-redis',
      ]),
    );
    expect(rendered.dev!.filter((o) => o.metadata.name === 'ks-redis')).toEqual([]);
  });

  it('every object validates against its OpenAPI schema', async () => {
    for (const objs of [...Object.values(rendered), withComponents])
      for (const o of objs) await validateSchema(o);
  });

  it('every object has only fields its schema knows (and a misspelt one is caught)', async () => {
    const sts = structuredClone(find(rendered.prod!, 'StatefulSet', 'ks-directory'));
    sts.spec.template.spec.containers[0].ports[0].containerPort = 'seven thousand';
    await expect(validateSchema(sts)).rejects.toThrow(/containerPort/);
    // The OpenAPI schemas let unknown fields through …
    const typo = structuredClone(find(rendered.prod!, 'StatefulSet', 'ks-directory'));
    typo.metadata.name = 'typo';
    typo.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/', port: 1 } };
    await validateSchema(typo);
    // … the declarations do not. One program for everything: the declarations load once.
    const all = [...Object.values(rendered).flat(), ...withComponents, typo];
    const found = strictFieldCheck(all);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^apps\/v1 StatefulSet\/typo: .*readinesProbe.* does not exist/s);
  }, 120_000);

  it('has no secret values outside dev, and obviously fake ones in dev', () => {
    for (const name of ['base', 'prod']) {
      expect(rendered[name]!.filter((o) => o.kind === 'Secret').map(id)).toEqual([]);
    }
    expect(withComponents.filter((o) => o.kind === 'Secret')).toEqual([]);
    const s = byPrefix(rendered.dev!, 'Secret', 'ks-secrets');
    expect(Object.keys(s.data).sort()).toEqual(SECRET_KEYS);
    for (const v of Object.values(s.data as Record<string, string>)) {
      expect(Buffer.from(v, 'base64').toString()).toMatch(/dev/i);
    }
    // Long enough for the CLI (InternalAuth wants 16 characters).
    expect(Buffer.from(s.data['cluster-secret'], 'base64').length).toBeGreaterThanOrEqual(16);
  });

  describe.each(Object.entries(OVERLAYS))('%s', (name, want) => {
    const objs = () => rendered[name]!;
    const workloads = () => objs().filter((o) => WORKLOADS.has(o.kind));
    /** The kubestorage servers (the image's CLI): every workload but Redis. */
    const servers = () => workloads().filter((w) => !isRedis(w));
    const config = () => byPrefix(objs(), 'ConfigMap', 'ks-config')!;
    const ksConfig = () => {
      const file = path.join(tempDir('ks-k8s-config-'), 'kubestorage.json');
      fs.writeFileSync(file, config().data['kubestorage.json']);
      return loadConfig({ file, env: {} });
    };

    it('puts every namespaced object in its namespace', () => {
      for (const o of objs()) {
        if (CLUSTER_SCOPED.has(o.kind)) expect(o.metadata.namespace, id(o)).toBeUndefined();
        else expect(o.metadata.namespace, id(o)).toBe(want.namespace);
      }
      expect(
        objs()
          .filter((o) => o.kind === 'Namespace')
          .map((o) => o.metadata.name),
      ).toEqual([want.namespace]);
      for (const b of objs().filter((o) => o.kind === 'ClusterRoleBinding'))
        for (const s of b.subjects) expect(s.namespace, id(b)).toBe(want.namespace);
    });

    it('gives every container an image, resources, a locked-down security context', () => {
      expect(servers().map(id).sort()).toEqual([
        'Deployment/ks-gateway',
        'StatefulSet/ks-directory',
        'StatefulSet/ks-store',
      ]);
      for (const w of servers()) {
        const spec = podSpec(w);
        expect(spec.securityContext, id(w)).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 1000, // the node user of the image
          runAsGroup: 1000,
          seccompProfile: { type: 'RuntimeDefault' },
        });
        if (w.spec.volumeClaimTemplates) expect(spec.securityContext.fsGroup).toBe(1000);
        // Only the directory with the kube-api component talks to the API, and it has a Role.
        const kubeApi = (w.spec.template.spec.containers as Obj[]).some((c) =>
          (c.env ?? []).some((e: Obj) => e.name === 'KUBESTORAGE_KUBE' && e.value === '1'),
        );
        expect(spec.automountServiceAccountToken, id(w)).toBe(kubeApi);
        if (kubeApi) {
          const binding = objs().find(
            (o) =>
              o.kind === 'RoleBinding' &&
              o.subjects?.some((s: Obj) => s.name === spec.serviceAccountName),
          );
          expect(binding, `${id(w)}: a RoleBinding for its service account`).toBeDefined();
          expect(binding!.subjects[0].namespace).toBe(w.metadata.namespace);
          find(objs(), 'Role', binding!.roleRef.name);
        }
        expect(spec.serviceAccountName, id(w)).toBe(w.metadata.name);
        find(objs(), 'ServiceAccount', spec.serviceAccountName);
        const volumes = new Set([
          ...(spec.volumes ?? []).map((v: Obj) => v.name),
          ...(w.spec.volumeClaimTemplates ?? []).map((v: Obj) => v.metadata.name),
        ]);
        for (const c of containersOf(w)) {
          const where = `${id(w)} ${c.name}`;
          expect(c.image, where).toMatch(want.image);
          expect(quantity(c.resources?.requests?.cpu ?? 'x0'), where).toBeGreaterThan(0);
          expect(quantity(c.resources?.requests?.memory ?? 'x0'), where).toBeGreaterThan(0);
          expect(quantity(c.resources.limits.memory), where).toBeGreaterThanOrEqual(
            quantity(c.resources.requests.memory),
          );
          expect(c.securityContext, where).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          });
          for (const m of c.volumeMounts ?? [])
            expect(volumes, `${where} ${m.name}`).toContain(m.name);
        }
        // tsx's compile cache needs a writable temp dir under the read-only root.
        for (const c of spec.containers) {
          expect(
            c.volumeMounts.map((m: Obj) => m.mountPath),
            id(w),
          ).toContain('/tmp');
        }
      }
    });

    it('probes every server on its own port: /healthz for liveness, /readyz for readiness', () => {
      for (const w of servers()) {
        // The gateway's are under /_ks/, a prefix no bucket name can take.
        const prefix = w.metadata.name === 'ks-gateway' ? '/_ks' : '';
        for (const c of podSpec(w).containers) {
          const ports = new Set(c.ports.map((p: Obj) => p.name));
          for (const [probe, p] of [
            ['startupProbe', '/healthz'],
            ['livenessProbe', '/healthz'],
            ['readinessProbe', '/readyz'],
          ] as const) {
            expect(c[probe]?.httpGet?.path, `${id(w)} ${probe}`).toBe(prefix + p);
            expect(ports, `${id(w)} ${probe}`).toContain(c[probe].httpGet.port);
          }
          // Liveness must not restart a replica for what readiness reports (no leader).
          expect(c.livenessProbe.failureThreshold * c.livenessProbe.periodSeconds).toBeGreaterThan(
            c.readinessProbe.failureThreshold * c.readinessProbe.periodSeconds,
          );
        }
      }
    });

    it('resolves every ConfigMap and Secret reference', () => {
      for (const w of workloads()) {
        const spec = podSpec(w);
        const refs: Array<[kind: string, name: string, key?: string]> = [];
        for (const c of containersOf(w)) {
          for (const e of c.env ?? []) {
            const cm = e.valueFrom?.configMapKeyRef;
            const sec = e.valueFrom?.secretKeyRef;
            if (cm) refs.push(['ConfigMap', cm.name, cm.key]);
            if (sec) refs.push(['Secret', sec.name, sec.key]);
          }
        }
        for (const v of spec.volumes ?? []) {
          if (v.configMap) refs.push(['ConfigMap', v.configMap.name]);
          for (const s of v.projected?.sources ?? [])
            if (s.configMap)
              refs.push(['ConfigMap', s.configMap.name, s.configMap.items?.[0]?.key]);
        }
        for (const [kind, ref, key] of refs) {
          if (kind === 'ConfigMap' && ref === 'kube-root-ca.crt') continue; // in every namespace
          if (kind === 'Secret' && want.secrets === 'external') {
            // Made by the operator: the name is fixed, the keys are the documented ones.
            expect(ref).toBe('ks-secrets');
            expect(SECRET_KEYS).toContain(key);
            continue;
          }
          const o = find(objs(), kind, ref);
          if (key) expect(Object.keys(o.data), `${id(w)} -> ${kind}/${ref}`).toContain(key);
        }
      }
    });

    it('selects pods that exist with every Service, PDB and HPA', () => {
      const templates = workloads().map((w) => w.spec.template.metadata.labels);
      for (const w of workloads()) {
        expect(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels)).toBe(true);
      }
      for (const s of objs().filter((o) => o.kind === 'Service')) {
        const selected = workloads().filter((w) =>
          matches(s.spec.selector, w.spec.template.metadata.labels),
        );
        expect(selected.map(id), id(s)).toHaveLength(1);
        const ports = podSpec(selected[0]).containers.flatMap((c: Obj) =>
          c.ports.map((p: Obj) => p.name),
        );
        for (const p of s.spec.ports) expect(ports, id(s)).toContain(p.targetPort);
      }
      for (const pdb of objs().filter((o) => o.kind === 'PodDisruptionBudget')) {
        const n = templates.filter((l) => matches(pdb.spec.selector.matchLabels, l)).length;
        expect(n, id(pdb)).toBe(1);
      }
      for (const hpa of objs().filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
        find(objs(), hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
      }
    });

    it('runs the StatefulSets with stable names, in parallel, on their own volumes', () => {
      for (const w of workloads().filter((o) => o.kind === 'StatefulSet')) {
        expect(w.spec.podManagementPolicy, id(w)).toBe('Parallel');
        const svc = find(objs(), 'Service', w.spec.serviceName);
        expect(svc.spec.clusterIP, id(svc)).toBe('None');
        expect(svc.spec.publishNotReadyAddresses, id(svc)).toBe(true);
        expect(matches(svc.spec.selector, w.spec.template.metadata.labels)).toBe(true);
        expect(w.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)).toEqual(['data']);
        const mounts = podSpec(w).containers[0].volumeMounts;
        expect(mounts.find((m: Obj) => m.name === 'data')?.mountPath).toBe('/data');
      }
    });

    it('sizes the cluster: directories, stores and object copies', () => {
      const dir = find(objs(), 'StatefulSet', 'ks-directory');
      const store = find(objs(), 'StatefulSet', 'ks-store');
      expect(dir.spec.replicas).toBe(want.directories);
      expect(store.spec.replicas).toBeGreaterThanOrEqual(want.minStores);
      // Every object's copies go to distinct stores: there must be enough of them.
      expect(ksConfig().gateway.replicas).toBeLessThanOrEqual(store.spec.replicas);
    });

    it('keeps the Raft quorum and an object copy through voluntary disruptions', () => {
      const n = find(objs(), 'StatefulSet', 'ks-directory').spec.replicas;
      const pdb = find(objs(), 'PodDisruptionBudget', 'ks-directory').spec;
      const allowed = pdb.minAvailable !== undefined ? n - pdb.minAvailable : pdb.maxUnavailable;
      // A group of n survives floor((n - 1) / 2) replicas down; one replica survives none,
      // and dev's single replica may be evicted all the same (nothing to keep).
      if (n >= 3) expect(allowed).toBeLessThanOrEqual(Math.floor((n - 1) / 2));
      expect(allowed).toBeGreaterThanOrEqual(1); // a drain can make progress
      const copies = ksConfig().gateway.replicas;
      const stores = find(objs(), 'PodDisruptionBudget', 'ks-store').spec;
      expect(stores.maxUnavailable).toBe(1);
      if (copies >= 2) expect(stores.maxUnavailable).toBeLessThan(copies);
    });

    it('has a config file of known keys that the CLI loads', () => {
      const file = JSON.parse(config().data['kubestorage.json']);
      const unknown: string[] = [];
      const walk = (o: Obj, d: Obj, p: string) => {
        for (const [k, v] of Object.entries(o)) {
          if (!(k in d)) unknown.push(`${p}${k}`);
          else if (v && typeof v === 'object') walk(v, d[k], `${p}${k}.`);
        }
      };
      walk(file, DEFAULT_CONFIG, '');
      expect(unknown).toEqual([]);
      expect(file).not.toHaveProperty('clusterSecret'); // from the Secret, never the ConfigMap
      ksConfig();
    });

    it('names the directory replicas consistently with their count', () => {
      const w = find(objs(), 'StatefulSet', 'ks-directory');
      const n = w.spec.replicas;
      const svc = find(objs(), 'Service', w.spec.serviceName);
      const port = svc.spec.ports[0].port;
      const ids = Array.from({ length: n }, (_, i) => `${w.metadata.name}-${i}`);
      const urls = ids.map((d) => `http://${d}.${svc.metadata.name}:${port}`);
      const data = config().data;
      expect(data).not.toHaveProperty('directory-peers'); // derived by the CLI now
      // The bootstrap group every pod derives (--peers-dns, --replicas) is the pods there are.
      for (const pod of ids) {
        const argv = processArgs(objs(), podSpec(w).containers[0], pod).slice(1);
        expect([...topologyOf(argv, () => pod).bootstrap]).toEqual(ids.map((d, i) => [d, urls[i]]));
      }
      expect(parseDirectory(data['directory-urls'])).toEqual(urls);
      expect(Number(data['directory-bootstrap-replicas'])).toBe(n);
    });

    it('starts each server with flags the CLI accepts', async () => {
      const zoneFile = path.join(tempDir('ks-k8s-zone-'), 'zone');
      fs.writeFileSync(zoneFile, 'zone-from-node\n');
      for (const w of servers()) {
        const c = podSpec(w).containers[0];
        const pod = w.kind === 'StatefulSet' ? `${w.metadata.name}-0` : `${w.metadata.name}-abc`;
        const argv = processArgs(objs(), c, pod);
        expect(argv.join(' ')).not.toMatch(/\$\(/); // every reference resolved
        await cliAccepts(argv);
        if (w.metadata.name === 'ks-directory') {
          // The id is the pod's host name, which is its name in a StatefulSet.
          const svc = find(objs(), 'Service', w.spec.serviceName);
          const url = (p: string) => `http://${p}.${svc.metadata.name}:${svc.spec.ports[0].port}`;
          const first = topologyOf(argv.slice(1), () => pod);
          expect(first).toMatchObject({ id: pod, join: false, selfAdd: false, url: url(pod) });
          // The last bootstrap pod bootstraps too, with an empty disk at first start.
          const n = w.spec.replicas;
          const last = `${w.metadata.name}-${n - 1}`;
          expect(topologyOf(argv.slice(1), () => last)).toMatchObject({ id: last, join: false });
          // A replica past the bootstrap ones, added by scaling up, joins the group.
          const added = `${w.metadata.name}-${n}`;
          const argvAdded = processArgs(objs(), c, added);
          expect(topologyOf(argvAdded.slice(1), () => added)).toMatchObject({
            id: added,
            join: true,
            selfAdd: true,
            url: url(added),
          });
        }
        if (w.metadata.name === 'ks-store') {
          const svc = find(objs(), 'Service', w.spec.serviceName);
          expect(flagValue(argv, 'id')).toBe('ks-store-0');
          expect(flagValue(argv, 'advertise')).toBe(`http://ks-store-0.${svc.metadata.name}:8080`);
          // The zone the store ends up with: the node-zone-lookup file's where there is one
          // (here standing in for the init container's), else the pod label.
          const lookup = (podSpec(w).initContainers ?? []).length > 0;
          const file = flagValue(argv, 'zone-file');
          expect(file !== undefined).toBe(lookup);
          const zone = storeZone(
            flagValue(argv, 'zone'),
            file === undefined ? undefined : zoneFile,
          );
          expect(zone).toBe(lookup ? 'zone-from-node' : FAKE_ZONE);
        }
      }
    });

    it("annotates the stores' /metrics and the gateways' /_ks/metrics for Prometheus", () => {
      const annotated = workloads().filter(
        (w) => w.spec.template.metadata.annotations?.['prometheus.io/scrape'] === 'true',
      );
      expect(annotated.map(id).sort()).toEqual(['Deployment/ks-gateway', 'StatefulSet/ks-store']);
      for (const w of annotated) {
        const a = w.spec.template.metadata.annotations;
        // The gateway's is under /_ks/ on the S3 port, like its probes.
        expect(a['prometheus.io/path']).toBe(
          w.metadata.name === 'ks-gateway' ? '/_ks/metrics' : '/metrics',
        );
        const ports = podSpec(w).containers.flatMap((c: Obj) => c.ports);
        expect(ports.map((p: Obj) => String(p.containerPort))).toContain(a['prometheus.io/port']);
      }
    });
  });

  it("prod: a Redis for the gateways' L2 cache, non-root, not persisted, and the gateways' URL", () => {
    const objs = rendered.prod!;
    const redis = find(objs, 'Deployment', 'ks-redis');
    const spec = podSpec(redis);
    expect(redis.spec.replicas).toBe(1);
    expect(spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 999, // the image's redis user
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec.automountServiceAccountToken).toBe(false);
    find(objs, 'ServiceAccount', spec.serviceAccountName);
    expect(spec.containers).toHaveLength(1);
    const c = spec.containers[0];
    expect(c.image).toMatch(/^redis:7[.-]/);
    expect(c.command).toEqual(['redis-server']);
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    // Cache bytes only: no volume, no claim, no RDB snapshots, no AOF.
    expect(spec.volumes ?? []).toEqual([]);
    expect(c.volumeMounts ?? []).toEqual([]);
    const arg = (name: string): string => {
      const i = c.args.indexOf(`--${name}`);
      expect(i, `--${name}`).toBeGreaterThanOrEqual(0);
      return c.args[i + 1];
    };
    expect(arg('save')).toBe('');
    expect(arg('appendonly')).toBe('no');
    expect(arg('maxmemory-policy')).toMatch(/^allkeys-/);
    expect(quantity(arg('maxmemory').replace(/mb$/i, 'Mi'))).toBeLessThan(
      quantity(c.resources.limits.memory),
    );
    expect(quantity(c.resources.requests.cpu)).toBeGreaterThan(0);
    expect(quantity(c.resources.requests.memory)).toBeGreaterThan(0);
    // Probes on the port redis-server listens on: TCP (nothing to load, an open port answers).
    const port = c.ports.find((p: Obj) => p.name === c.readinessProbe.tcpSocket.port);
    expect(String(port.containerPort)).toBe(arg('port'));
    expect(c.livenessProbe.tcpSocket.port).toBe(port.name);
    expect(c.livenessProbe.failureThreshold * c.livenessProbe.periodSeconds).toBeGreaterThan(
      c.readinessProbe.failureThreshold * c.readinessProbe.periodSeconds,
    );
    // The Service, and the URL each gateway gets: that Service's name and port.
    const svc = find(objs, 'Service', 'ks-redis');
    expect(svc.spec.clusterIP).toBeUndefined(); // one address for every gateway
    expect(matches(svc.spec.selector, redis.spec.template.metadata.labels)).toBe(true);
    expect(svc.spec.ports[0].targetPort).toBe(port.name);
    const gw = podSpec(find(objs, 'Deployment', 'ks-gateway')).containers[0];
    const env = containerEnv(objs, gw, 'ks-gateway-abc');
    const raw = env.get('KUBESTORAGE_CACHE_REDIS_URL')!;
    const url = new URL(raw);
    expect(url.protocol).toBe('redis:');
    expect(url.hostname).toBe(svc.metadata.name);
    expect(Number(url.port)).toBe(svc.spec.ports[0].port);
    // … which the gateway's config loading takes as cache.redisUrl (env over the file).
    const file = path.join(tempDir('ks-k8s-config-'), 'kubestorage.json');
    fs.writeFileSync(file, byPrefix(objs, 'ConfigMap', 'ks-config').data['kubestorage.json']);
    expect(loadConfig({ file, env: Object.fromEntries(env) }).cache.redisUrl).toBe(raw);
    expect(loadConfig({ file, env: {} }).cache.redisUrl).toBe('');
    // Only the gateways may connect (it has no password).
    const np = find(objs, 'NetworkPolicy', 'ks-redis');
    expect(matches(np.spec.podSelector.matchLabels, redis.spec.template.metadata.labels)).toBe(
      true,
    );
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.ingress).toHaveLength(1);
    const admitted = objs
      .filter((o) => WORKLOADS.has(o.kind))
      .filter((w) =>
        np.spec.ingress[0].from.some((f: Obj) =>
          matches(f.podSelector.matchLabels, w.spec.template.metadata.labels),
        ),
      );
    expect(admitted.map(id)).toEqual(['Deployment/ks-gateway']);
    expect(np.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: port.name }]);
    // Dev has no Redis, and its gateway no URL.
    const devGw = podSpec(find(rendered.dev!, 'Deployment', 'ks-gateway')).containers[0];
    expect(devGw.env.map((e: Obj) => e.name)).not.toContain('KUBESTORAGE_CACHE_REDIS_URL');
  });

  it('stores: a scaled-down store is drained before it goes (preStop wait-drained)', async () => {
    for (const [name, objs] of Object.entries(rendered)) {
      const sts = find(objs, 'StatefulSet', 'ks-store');
      const store = podSpec(sts).containers.find((c: Obj) => c.name === 'store');
      const cmd: string[] = store.lifecycle?.preStop?.exec?.command ?? [];
      expect(cmd.slice(0, 4), name).toEqual(['kubestorage', 'admin', 'store', 'wait-drained']);
      // It reads the node id, the directory and the secret from the container's env (an
      // exec hook gets no $(VAR) expansion).
      const env = new Set(store.env.map((e: Obj) => e.name));
      for (const v of ['POD_NAME', 'KS_DIRECTORY_URLS', 'KUBESTORAGE_CLUSTER_SECRET'])
        expect(env.has(v), `${name}: ${v}`).toBe(true);
      const timeout = Number(cmd.find((a) => a.startsWith('--timeout='))?.slice(10));
      expect(timeout, name).toBeGreaterThan(0);
      expect(podSpec(sts).terminationGracePeriodSeconds, name).toBeGreaterThan(timeout);
      // The CLI takes every flag of the hook.
      const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      try {
        await adminStoreMain([...cmd.slice(3), '--help']);
      } finally {
        write.mockRestore();
      }
    }
  });

  it('dev: one of each, small volumes, generated secrets', () => {
    const objs = rendered.dev!;
    expect(find(objs, 'Deployment', 'ks-gateway').spec.replicas).toBe(1);
    expect(find(objs, 'StatefulSet', 'ks-store').spec.replicas).toBe(1);
    for (const name of ['ks-directory', 'ks-store']) {
      const size = find(objs, 'StatefulSet', name).spec.volumeClaimTemplates[0].spec.resources
        .requests.storage;
      expect(quantity(size)).toBeLessThanOrEqual(2 * 2 ** 30);
    }
    expect(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
  });

  it('prod: a quorum kept, stores spread over zones, gateways scaled by an HPA', () => {
    const objs = rendered.prod!;
    const zoneSpread = (w: Obj) =>
      podSpec(w).topologySpreadConstraints.find(
        (t: Obj) => t.topologyKey === 'topology.kubernetes.io/zone',
      );
    const dir = find(objs, 'StatefulSet', 'ks-directory');
    expect(dir.spec.replicas).toBe(3);
    expect(find(objs, 'PodDisruptionBudget', 'ks-directory').spec).toMatchObject({
      minAvailable: 2,
    });
    for (const name of ['ks-directory', 'ks-store']) {
      const w = find(objs, 'StatefulSet', name);
      expect(zoneSpread(w), name).toMatchObject({
        maxSkew: 1,
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: w.spec.selector.matchLabels },
      });
      const anti =
        podSpec(w).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
      expect(anti, name).toEqual([
        { topologyKey: 'kubernetes.io/hostname', labelSelector: w.spec.selector },
      ]);
    }
    expect(find(objs, 'StatefulSet', 'ks-store').spec.replicas).toBeGreaterThanOrEqual(4);
    // The zone comes from the Node where pods do not carry its label.
    const init = podSpec(find(objs, 'StatefulSet', 'ks-store')).initContainers;
    expect(init.map((c: Obj) => c.name)).toEqual(['node-zone']);
    // It writes the file that the store reads (--zone-file), on a volume both mount.
    const out = init[0].command.at(-1);
    const store = podSpec(find(objs, 'StatefulSet', 'ks-store')).containers[0];
    expect(store.command).toBeUndefined();
    expect(store.args).toContain(`--zone-file=${out}`);
    const volumeAt = (c: Obj, file: string) =>
      c.volumeMounts.find((m: Obj) => file.startsWith(`${m.mountPath}/`))?.name;
    expect(volumeAt(init[0], out)).toBeDefined();
    expect(volumeAt(store, out)).toBe(volumeAt(init[0], out));
    // The API token is the init container's alone.
    const token = '/var/run/secrets/kubernetes.io/serviceaccount';
    expect(init[0].volumeMounts.map((m: Obj) => m.mountPath)).toContain(token);
    expect(store.volumeMounts.map((m: Obj) => m.mountPath)).not.toContain(token);
    expect(find(objs, 'ClusterRole', 'kubestorage-node-zone-reader').rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
    ]);
    const gw = find(objs, 'Deployment', 'ks-gateway');
    expect(gw.spec.replicas).toBeUndefined(); // the HPA's to set
    const hpa = find(objs, 'HorizontalPodAutoscaler', 'ks-gateway');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'ks-gateway',
    });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
  });

  it('components: ServiceMonitors scrape stores and gateways, the Ingress reaches the gateways', () => {
    for (const [name, metrics] of [
      ['ks-store', '/metrics'],
      ['ks-gateway', '/_ks/metrics'],
    ] as const) {
      const sm = find(withComponents, 'ServiceMonitor', name);
      const svc = withComponents.filter(
        (o) => o.kind === 'Service' && matches(sm.spec.selector.matchLabels, o.metadata.labels),
      );
      expect(svc.map(id)).toEqual([`Service/${name}`]);
      expect(sm.spec.endpoints).toHaveLength(1);
      const ep = sm.spec.endpoints[0];
      // The port the pods' prometheus.io/port annotation names, by the Service's port name.
      const port = svc[0].spec.ports.find((p: Obj) => p.name === ep.port);
      expect(port, name).toBeDefined();
      const w = withComponents.find(
        (o) =>
          WORKLOADS.has(o.kind) && matches(svc[0].spec.selector, o.spec.template.metadata.labels),
      );
      expect(String(port.port)).toBe(w.spec.template.metadata.annotations['prometheus.io/port']);
      expect(ep.path).toBe(metrics);
      expect(ep.path).toBe(w.spec.template.metadata.annotations['prometheus.io/path']);
      expect(ep.authorization).toEqual({
        type: 'Bearer',
        credentials: { name: 'ks-metrics', key: 'token' },
      });
    }
    const ing = find(withComponents, 'Ingress', 'ks-gateway');
    const backend = ing.spec.rules[0].http.paths[0].backend.service;
    const gw = find(withComponents, 'Service', backend.name);
    expect(gw.spec.ports.map((p: Obj) => p.name)).toContain(backend.port.name);
  });
});

describe('k8s node-zone lookup script', () => {
  const SCRIPT = path.join(K8S, 'components/node-zone-lookup/node-zone.mjs');
  /** Runs the script; async, so a stand-in server in this process can answer it. */
  const run = (env: Record<string, string>, out: string) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [SCRIPT, out], {
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
      });
      child.on('close', (status) => resolve({ status, stderr }));
    });

  it('takes the pod label when Kubernetes copied it', async () => {
    const out = path.join(tempDir('ks-k8s-zone-'), 'zone');
    const r = await run({ KS_ZONE: 'eu-west-1a', NODE_NAME: 'n1' }, out);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe('eu-west-1a');
  });

  it('fails (and the init container is retried) without a label, node name or API', async () => {
    const out = path.join(tempDir('ks-k8s-zone-'), 'zone');
    expect((await run({}, out)).stderr).toMatch(/NODE_NAME/);
    const r = await run({ NODE_NAME: 'n1', KS_SERVICE_ACCOUNT_DIR: '/nonexistent' }, out);
    expect(r.status).toBe(1);
    expect(fs.existsSync(out)).toBe(false);
  });

  const openssl = spawnSync('openssl', ['version']).status === 0;
  describe.skipIf(!openssl)('against a stand-in API server (HTTPS)', () => {
    let server: https.Server;
    let port = 0;
    const sa = tempDir('ks-k8s-sa-');
    const requests: Array<{ url?: string; auth?: string }> = [];

    beforeAll(async () => {
      execFileSync(
        'openssl',
        [
          ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
          ...['-nodes', '-days', '1', '-subj', '/CN=127.0.0.1'],
          ...['-addext', 'subjectAltName=IP:127.0.0.1'],
          ...['-keyout', path.join(sa, 'key.pem'), '-out', path.join(sa, 'ca.crt')],
        ],
        { stdio: 'ignore' },
      );
      fs.writeFileSync(path.join(sa, 'token'), 'test-token\n');
      server = https.createServer(
        {
          key: fs.readFileSync(path.join(sa, 'key.pem')),
          cert: fs.readFileSync(path.join(sa, 'ca.crt')),
        },
        (req, res) => {
          requests.push({ url: req.url, auth: req.headers.authorization });
          const labels: Record<string, Record<string, string>> = {
            'node-a': { 'topology.kubernetes.io/zone': 'z-a', 'kubernetes.io/hostname': 'node-a' },
            'node-b': { 'kubernetes.io/hostname': 'node-b' },
          };
          const name = decodeURIComponent(req.url!.replace('/api/v1/nodes/', ''));
          if (req.headers.authorization !== 'Bearer test-token') res.writeHead(401).end('{}');
          else if (!labels[name]) res.writeHead(404).end('{"reason":"NotFound"}');
          else res.end(JSON.stringify({ kind: 'Node', metadata: { name, labels: labels[name] } }));
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(
      () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
    );

    const api = (node: string) => ({
      NODE_NAME: node,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(port),
      KS_SERVICE_ACCOUNT_DIR: sa,
    });

    it("reads the node's zone label with the service account token", async () => {
      const out = path.join(tempDir('ks-k8s-zone-'), 'zone');
      const r = await run({ ...api('node-a'), KS_ZONE: '' }, out);
      expect(r.status, r.stderr).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toBe('z-a');
      expect(requests.at(-1)).toEqual({ url: '/api/v1/nodes/node-a', auth: 'Bearer test-token' });
    });

    it('writes an empty zone for a node without the label, fails for an unknown node', async () => {
      const out = path.join(tempDir('ks-k8s-zone-'), 'zone');
      expect((await run(api('node-b'), out)).status).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toBe('');
      const missing = path.join(tempDir('ks-k8s-zone-'), 'zone');
      const r = await run(api('node-c'), missing);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/HTTP 404/);
      expect(fs.existsSync(missing)).toBe(false);
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const l of instructions) {
    if (/^FROM\s/i.test(l)) stages.push([]);
    stages.at(-1)?.push(l);
  }
  const runtime = stages.at(-1)!;

  it('builds in two stages: a toolchain for the native addon, a slim node runtime', () => {
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile);
    expect(arg?.[1]).toBe('node:20-bookworm-slim');
    expect(stages.length).toBe(2);
    const build = stages[0]!.join('\n');
    expect(build).toMatch(/apt-get install .*g\+\+.*make.*python3/);
    expect(build).toMatch(/npm ci --omit=dev/);
    expect(runtime[0]).toMatch(/^FROM \$\{NODE_IMAGE\}$/);
    expect(runtime.join('\n')).toMatch(/COPY --from=build \/app\/node_modules/);
    expect(runtime.join('\n')).not.toMatch(/apt-get|g\+\+/);
  });

  it('runs the kubestorage CLI as the node user (uid 1000, as the manifests say)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(runtime.filter((l) => l.startsWith('USER '))).toEqual(['USER node']);
    expect(runtime.at(-2)).toBe('ENTRYPOINT ["kubestorage"]');
    expect(runtime.join('\n')).toContain(
      `ln -s /app/${pkg.bin.kubestorage} /usr/local/bin/kubestorage`,
    );
  });

  it('copies every file that `kubestorage` imports, and no tests', () => {
    const copied = new Set(runtime.flatMap((l) => /^COPY (\S+) \.\/\1$/.exec(l)?.slice(1) ?? []));
    const seen = new Set<string>();
    const todo = [path.join(ROOT, 'cli/main.ts')];
    while (todo.length > 0) {
      const f = todo.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      todo.push(...(importGraph([f]).get(f) ?? []));
    }
    const tops = new Set([...seen].map((f) => path.relative(ROOT, f).split(path.sep)[0]!));
    tops.add('bin');
    expect([...tops].filter((t) => !copied.has(t))).toEqual([]);
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['node_modules', 'data', '**/*.test.ts']));
    for (const t of tops) expect(ignore, t).not.toContain(t);
    const docker = spawnSync('docker', ['info'], { stdio: 'ignore' });
    if (docker.status !== 0)
      console.info('Dockerfile: no Docker engine here, the image is not built');
  });
});
