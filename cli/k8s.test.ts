// kubestorage k8s render: the overlays resized by a temporary kustomization, rendered by
// kubectl (1.27+, kustomize v5). Without kubectl the rendering tests are skipped with the
// reason printed, except in CI (process.env.CI), where they fail.
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { topologyOf } from './directory.ts';
import { parseDirectory } from './gateway.ts';
import { main } from './k8s.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is untyped.
type Obj = any;

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const HAVE_KUBECTL =
  kubectl.status === 0 &&
  Number(/Kustomize Version: v(\d+)/.exec(kubectl.stdout ?? '')?.[1] ?? 0) >= 5;
const SKIP = !HAVE_KUBECTL && !process.env.CI;
if (SKIP) console.warn('k8s render: kubectl 1.27+ (kustomize v5) not found: skipped');

/** Runs `kubestorage k8s ...` in this process: its stdout, stderr and exit status. */
async function k8s(args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await main(args);
    return { out, err, code: Number(process.exitCode ?? 0) };
  } finally {
    process.exitCode = before;
    o.mockRestore();
    e.mockRestore();
  }
}

const parse = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS());
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o;
};
const config = (objs: Obj[]) =>
  objs.find((o) => o.kind === 'ConfigMap' && /^ks-config-[a-z0-9]{10}$/.test(o.metadata.name));
const zoneSpread = (w: Obj) =>
  w.spec.template.spec.topologySpreadConstraints.find(
    (t: Obj) => t.topologyKey === 'topology.kubernetes.io/zone',
  );

/** The directory settings agree with the StatefulSet: URLs, bootstrap group, PDB. */
function expectDirectoryConsistent(objs: Obj[], n: number): void {
  const sts = find(objs, 'StatefulSet', 'ks-directory');
  expect(sts.spec.replicas).toBe(n);
  const ids = Array.from({ length: n }, (_, i) => `ks-directory-${i}`);
  const urls = ids.map((id) => `http://${id}.ks-directory:7001`);
  const data = config(objs).data;
  expect(parseDirectory(data['directory-urls'])).toEqual(urls);
  expect(data['directory-bootstrap-replicas']).toBe(String(n));
  // Every workload refers to that ConfigMap (the hash suffix was rewritten everywhere).
  const refs = objs
    .filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')
    .flatMap((w) => (w.spec.template.spec.volumes ?? []).filter((v: Obj) => v.configMap))
    .map((v: Obj) => v.configMap.name)
    .filter((name: string) => name.startsWith('ks-config'));
  expect(new Set(refs)).toEqual(new Set([config(objs).metadata.name]));
  // The bootstrap group a directory pod derives from its args is exactly those pods.
  const c = sts.spec.template.spec.containers[0];
  const argv = (c.args as string[]).map((a) =>
    a.replace('$(KS_DIRECTORY_BOOTSTRAP_REPLICAS)', data['directory-bootstrap-replicas']),
  );
  expect([...topologyOf(argv.slice(1), () => 'ks-directory-0').bootstrap]).toEqual(
    ids.map((id, i) => [id, urls[i]]),
  );
  const pdb = find(objs, 'PodDisruptionBudget', 'ks-directory').spec;
  if (n >= 3) {
    expect(pdb.minAvailable).toBe(Math.floor(n / 2) + 1);
    expect(pdb.maxUnavailable).toBeUndefined();
  }
}

describe.skipIf(SKIP)('kubestorage k8s render', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('has kubectl 1.27+ (required where CI is set: a CI run must not skip these)', () => {
    expect(HAVE_KUBECTL, `kubectl: ${kubectl.error ?? kubectl.stdout}`).toBe(true);
  });

  it('prod --stores 8: 8 store pods, the directory settings untouched and consistent', async () => {
    const r = await k8s(['render', '--overlay', 'prod', '--stores', '8']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n')[0]).toBe('# kubestorage k8s render --overlay prod --stores 8');
    const objs = parse(r.out);
    expect(find(objs, 'StatefulSet', 'ks-store').spec.replicas).toBe(8);
    expectDirectoryConsistent(objs, 3);
    // The rest is prod as written: its namespace, its zone spread, its Redis.
    expect(find(objs, 'Namespace', 'kubestorage')).toBeDefined();
    expect(zoneSpread(find(objs, 'StatefulSet', 'ks-store'))).toMatchObject({
      whenUnsatisfiable: 'DoNotSchedule',
    });
    expect(zoneSpread(find(objs, 'StatefulSet', 'ks-store')).minDomains).toBeUndefined();
    expect(config(objs).data['redis-url']).toBe('redis://ks-redis:6379');
  });

  it('prod --directories 5 --zones 3: URLs, bootstrap and quorum for 5; minDomains 3', async () => {
    const r = await k8s([
      ...['render', '--overlay', 'prod', '--stores', '6', '--directories', '5'],
      ...['--zones', '3'],
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/new install/);
    const objs = parse(r.out);
    expect(find(objs, 'StatefulSet', 'ks-store').spec.replicas).toBe(6);
    expectDirectoryConsistent(objs, 5);
    for (const name of ['ks-store', 'ks-directory']) {
      expect(zoneSpread(find(objs, 'StatefulSet', name)), name).toMatchObject({
        whenUnsatisfiable: 'DoNotSchedule',
        minDomains: 3,
      });
    }
    // The patched objects still validate against their OpenAPI schemas.
    for (const o of objs.filter((x) => ['StatefulSet', 'PodDisruptionBudget'].includes(x.kind))) {
      const mod = await import(`kubernetes-models/${o.apiVersion}/${o.kind}`);
      new mod[o.kind](o).validate();
    }
  });

  it('dev --stores 3 --directories 3: the dev PDB becomes a quorum of 2', async () => {
    const r = await k8s(['render', '--overlay', 'dev', '--stores', '3', '--directories', '3']);
    expect(r.code, r.err).toBe(0);
    const objs = parse(r.out);
    expect(find(objs, 'Namespace', 'kubestorage-dev')).toBeDefined();
    expect(find(objs, 'StatefulSet', 'ks-store').spec.replicas).toBe(3);
    expectDirectoryConsistent(objs, 3);
    // Dev's spread stays a preference without --zones.
    expect(zoneSpread(find(objs, 'StatefulSet', 'ks-store')).whenUnsatisfiable).toBe(
      'ScheduleAnyway',
    );
  });

  it.each([
    [['--overlay', 'prod', '--stores', '1'], /--stores 1: .*2 copies.*at least 2 stores/],
    [['--overlay', 'prod', '--stores', '4', '--zones', '5'], /--zones 5: more zones than stores/],
    [['--overlay', 'prod', '--zones', '7'], /--zones 7: more zones than stores \(6\)/],
    [['--overlay', 'dev', '--directories', '4'], /--directories 4: an even count/],
    [['--overlay', 'prod', '--directories', '2'], /use 1 or 3/],
    [['--overlay', 'staging'], /--overlay: dev or prod/],
    [[], /--overlay: dev or prod/],
    [['--overlay', 'prod', '--stores', '0'], /--stores: a whole number/],
    [['--overlay', 'prod', '--stores', '2.5'], /--stores: a whole number/],
    [['--overlay', 'prod', '--nodes', '3'], /Unknown option '--nodes'/],
  ])('refuses %j with exit status 2', async (args, message) => {
    const r = await k8s(['render', ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
  });

  it('refuses an unknown verb with exit status 2', async () => {
    const r = await k8s(['apply', '--overlay', 'prod']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown: k8s apply/);
  });
});
