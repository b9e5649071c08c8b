// kubestorage k8s render: the kustomize overlays of k8s/ with the cluster's size set —
// store and directory replica counts, the directory settings that must agree with the
// directory count, and the zone spread — printed as YAML for `kubectl apply -f -`
// (docs/kubernetes.md). A temporary kustomization over the chosen overlay, rendered by
// `kubectl kustomize` (kubectl 1.27+, kustomize v5).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_CONFIG } from '../common/config.ts';

const HELP = `usage: kubestorage k8s render --overlay dev|prod [--stores N] [--zones Z]
                               [--directories 1|3|5|...] [--k8s DIR]

  Prints the manifests of k8s/overlays/<overlay> as YAML, resized:
    kubestorage k8s render --overlay prod --stores 8 | kubectl apply -f -

  --overlay dev|prod   the overlay to start from (required)
  --stores N           store pods (the ks-store StatefulSet's replicas); at least the
                       overlay's copies per object (gateway.replicas in its kubestorage.json)
  --directories N      directory replicas, odd (a Raft majority): sets the StatefulSet's
                       replicas, directory-urls (every replica, for stores and gateways),
                       directory-bootstrap-replicas and the directory PDB (a quorum kept).
                       For a new install: an installed group grows by scaling with the
                       bootstrap count left as it was (docs/kubernetes.md#scale)
  --zones Z            spread stores (and directories) over at least Z zones: the zone
                       topology spread becomes DoNotSchedule with minDomains Z (nodes must
                       carry topology.kubernetes.io/zone); at most the store count
  --k8s DIR            the k8s/ directory (default: the one of this checkout)

  Bad sizes are refused with exit status 2; kubectl missing or failing is exit status 1.
`;

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is untyped; reads are checked.
type Obj = any;

const DEFAULT_K8S = path.resolve(import.meta.dirname, '../k8s');
const OVERLAYS = ['dev', 'prod'] as const;

/** A refused argument: printed with the usage hint, exit status 2. */
class UsageError extends Error {}

export interface RenderOptions {
  overlay: (typeof OVERLAYS)[number];
  stores?: number;
  directories?: number;
  zones?: number;
}

/** What the overlay as written says, read from its render. */
export interface OverlayFacts {
  /** Copies of each object on distinct stores (gateway.replicas). */
  copies: number;
  stores: number;
  directories: number;
  /** The directory StatefulSet's governing Service and its port: the peer URLs' host part. */
  directoryService: string;
  directoryPort: number;
  /** Index of the topology.kubernetes.io/zone spread constraint, per StatefulSet. */
  zoneConstraint: Record<'ks-store' | 'ks-directory', number>;
}

/** `kubectl kustomize DIR`: the YAML text. Throws (exit 1) when kubectl fails. */
function kustomize(dir: string): string {
  const r = spawnSync('kubectl', ['kustomize', dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new Error(
      "kubectl not found: install kubectl 1.27 or newer (kustomize v5; https://kubernetes.io/docs/tasks/tools/). Debian's kubernetes-client package is too old for kustomize components",
    );
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

function parse(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS());
}

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`the render has no ${kind}/${name}`);
  return o;
}

/** The facts `render` needs from the overlay's own render. */
export function overlayFacts(objs: Obj[]): OverlayFacts {
  const dir = find(objs, 'StatefulSet', 'ks-directory');
  const store = find(objs, 'StatefulSet', 'ks-store');
  const svc = find(objs, 'Service', dir.spec.serviceName);
  const config = objs.find(
    (o) => o.kind === 'ConfigMap' && /^ks-config(-[a-z0-9]{10})?$/.test(o.metadata.name),
  );
  const file = JSON.parse(config?.data?.['kubestorage.json'] ?? '{}');
  const zoneIndex = (w: Obj) => {
    const i = (w.spec.template.spec.topologySpreadConstraints ?? []).findIndex(
      (t: Obj) => t.topologyKey === 'topology.kubernetes.io/zone',
    );
    if (i < 0) throw new Error(`StatefulSet/${w.metadata.name}: no zone spread constraint`);
    return i;
  };
  return {
    copies: Number(file.gateway?.replicas ?? DEFAULT_CONFIG.gateway.replicas),
    stores: store.spec.replicas ?? 1,
    directories: dir.spec.replicas ?? 1,
    directoryService: svc.metadata.name,
    directoryPort: svc.spec.ports[0].port,
    zoneConstraint: { 'ks-store': zoneIndex(store), 'ks-directory': zoneIndex(dir) },
  };
}

/** Refuses sizes that cannot work with this overlay (UsageError, exit status 2). */
export function checkSizes(opts: RenderOptions, facts: OverlayFacts): void {
  const stores = opts.stores ?? facts.stores;
  if (stores < facts.copies)
    throw new UsageError(
      `--stores ${stores}: the ${opts.overlay} overlay keeps ${facts.copies} copies of every object on distinct stores (gateway.replicas in its kubestorage.json): at least ${facts.copies} stores`,
    );
  if (opts.directories !== undefined && opts.directories % 2 === 0)
    throw new UsageError(
      `--directories ${opts.directories}: an even count tolerates no more failures than one fewer replica and needs a bigger majority; use ${opts.directories - 1} or ${opts.directories + 1}`,
    );
  if (opts.zones !== undefined && opts.zones > stores)
    throw new UsageError(
      `--zones ${opts.zones}: more zones than stores (${stores}): every zone must get a store`,
    );
}

/** The temporary kustomization.yaml over `overlayRel` (a path relative to its directory). */
export function kustomization(
  overlayRel: string,
  opts: RenderOptions,
  facts: OverlayFacts,
): string {
  const stores = opts.stores ?? facts.stores;
  const dirs = opts.directories ?? facts.directories;
  const lines = [
    '# Written by `kubestorage k8s render`.',
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources:',
    `  - ${overlayRel}`,
    'replicas:',
    '  - name: ks-store',
    `    count: ${stores}`,
    '  - name: ks-directory',
    `    count: ${dirs}`,
  ];
  const patches: string[] = [];
  if (opts.directories !== undefined) {
    const urls = Array.from(
      { length: dirs },
      (_, i) => `http://ks-directory-${i}.${facts.directoryService}:${facts.directoryPort}`,
    );
    lines.push(
      'configMapGenerator:',
      '  - name: ks-config',
      '    behavior: merge',
      '    literals:',
      `      - directory-urls=${urls.join(',')}`,
      `      - directory-bootstrap-replicas=${dirs}`,
    );
    // A group of n keeps its quorum with floor(n/2)+1 up; one replica has nothing to keep.
    const budget =
      dirs >= 3
        ? `minAvailable: ${Math.floor(dirs / 2) + 1}\n        maxUnavailable: null`
        : 'maxUnavailable: 1\n        minAvailable: null';
    patches.push(
      [
        '  - patch: |-',
        '      apiVersion: policy/v1',
        '      kind: PodDisruptionBudget',
        '      metadata:',
        '        name: ks-directory',
        '      spec:',
        `        ${budget}`,
      ].join('\n'),
    );
  }
  if (opts.zones !== undefined) {
    for (const [name, count] of [
      ['ks-store', stores],
      ['ks-directory', dirs],
    ] as const) {
      const at = `/spec/template/spec/topologySpreadConstraints/${facts.zoneConstraint[name]}`;
      patches.push(
        [
          '  - target:',
          '      kind: StatefulSet',
          `      name: ${name}`,
          '    patch: |-',
          '      - op: replace',
          `        path: ${at}/whenUnsatisfiable`,
          '        value: DoNotSchedule',
          '      - op: add',
          `        path: ${at}/minDomains`,
          `        value: ${Math.min(opts.zones, count)}`,
        ].join('\n'),
      );
    }
  }
  if (patches.length > 0) lines.push('patches:', ...patches);
  return `${lines.join('\n')}\n`;
}

/** The resized manifests as YAML (a comment line first). */
export function render(opts: RenderOptions, k8sDir = DEFAULT_K8S): string {
  const overlay = path.join(k8sDir, 'overlays', opts.overlay);
  if (!fs.existsSync(path.join(overlay, 'kustomization.yaml')))
    throw new UsageError(`no overlay ${opts.overlay} under ${k8sDir}`);
  const facts = overlayFacts(parse(kustomize(overlay)));
  checkSizes(opts, facts);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-k8s-render-'));
  try {
    fs.writeFileSync(
      path.join(tmp, 'kustomization.yaml'),
      kustomization(path.relative(tmp, overlay), opts, facts),
    );
    const args = [
      `--overlay ${opts.overlay}`,
      ...(opts.stores !== undefined ? [`--stores ${opts.stores}`] : []),
      ...(opts.zones !== undefined ? [`--zones ${opts.zones}`] : []),
      ...(opts.directories !== undefined ? [`--directories ${opts.directories}`] : []),
    ];
    return `# kubestorage k8s render ${args.join(' ')}\n${kustomize(tmp)}`;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--${name}: a whole number of 1 or more, got ${JSON.stringify(v)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        overlay: { type: 'string' },
        stores: { type: 'string' },
        zones: { type: 'string' },
        directories: { type: 'string' },
        k8s: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return;
    }
    if (positionals[0] !== 'render' || positionals.length > 1)
      throw new UsageError(`unknown: k8s ${positionals.join(' ') || '(nothing)'}`);
    const overlay = values.overlay as RenderOptions['overlay'] | undefined;
    if (!overlay || !OVERLAYS.includes(overlay))
      throw new UsageError(`--overlay: ${OVERLAYS.join(' or ')}`);
    const opts: RenderOptions = {
      overlay,
      stores: positiveInt('stores', values.stores),
      zones: positiveInt('zones', values.zones),
      directories: positiveInt('directories', values.directories),
    };
    process.stdout.write(render(opts, values.k8s ? path.resolve(values.k8s) : undefined));
    if (opts.directories !== undefined)
      process.stderr.write(
        `k8s render: directory-bootstrap-replicas=${opts.directories}: right for a new install; an installed directory group keeps its bootstrap count and grows by scaling (docs/kubernetes.md#scale)\n`,
      );
  } catch (e) {
    if (
      !(e instanceof UsageError) &&
      (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') !== true
    )
      throw e;
    process.stderr.write(`kubestorage k8s: ${(e as Error).message}\n\n${HELP}`);
    process.exitCode = 2;
  }
}
