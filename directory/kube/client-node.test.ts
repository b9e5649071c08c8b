// The @kubernetes/client-node adapter against a local HTTP server that answers like the
// API server (the recorded JSON of fixtures/pods.json): list, watch stream, merge patch,
// StatefulSet read, and a 403 Status.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDenied, type PodEvent } from './api.ts';
import { ClientNodeKubeApi } from './client-node.ts';
import { fixtures } from './test-helpers.ts';

const NS = 'kubestorage';
const seen: Array<{ method: string; url: string; type?: string; body: string }> = [];
let denyPatch = false;
let watchRes: http.ServerResponse | undefined;
let server: http.Server;
let api: ClientNodeKubeApi;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        type: req.headers['content-type'],
        body,
      });
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      if (url.pathname === `/api/v1/namespaces/${NS}/pods` && url.searchParams.get('watch')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        watchRes = res;
        return;
      }
      if (url.pathname === `/api/v1/namespaces/${NS}/pods`) {
        return json(200, {
          kind: 'PodList',
          apiVersion: 'v1',
          metadata: { resourceVersion: '184400' },
          items: [fixtures.readyStorePod],
        });
      }
      if (url.pathname === `/api/v1/namespaces/${NS}/pods/ks-directory-0`) {
        if (denyPatch) return json(403, fixtures.forbiddenPatch);
        return json(200, { ...fixtures.readyStorePod, metadata: { name: 'ks-directory-0' } });
      }
      if (url.pathname === `/apis/apps/v1/namespaces/${NS}/statefulsets/ks-store`) {
        return json(200, fixtures.storeStatefulSet);
      }
      json(404, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        reason: 'NotFound',
        code: 404,
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  api = new ClientNodeKubeApi(kc, { rewatchMs: 50 });
});

afterAll(async () => {
  watchRes?.end();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('ClientNodeKubeApi', () => {
  it('merge-patches labels with the service account token', async () => {
    await api.patchPodLabels(NS, 'ks-directory-0', { 'kubestorage.io/health': 'Running' });
    const r = seen.find((s) => s.method === 'PATCH');
    expect(r?.type).toMatch(/application\/merge-patch\+json/);
    expect(JSON.parse(r?.body ?? '')).toEqual({
      metadata: { labels: { 'kubestorage.io/health': 'Running' } },
    });
  });

  it('a 403 Status becomes a denial', async () => {
    denyPatch = true;
    const e = await api.patchPodLabels(NS, 'ks-directory-0', { a: 'b' }).catch((x) => x);
    denyPatch = false;
    expect(isDenied(e)).toBe(true);
    expect(e.message).toMatch(/cannot patch resource "pods"/);
  });

  it('lists, then watches from the list’s resourceVersion', async () => {
    const events: PodEvent[] = [];
    const stop = api.watchPods(NS, 'app.kubernetes.io/component=store', (e) => events.push(e));
    const until = async (fn: () => boolean) => {
      for (let i = 0; i < 100 && !fn(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(fn()).toBe(true);
    };
    await until(() => watchRes !== undefined);
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'ks-store-1']]);
    const w = seen.find((s) => s.url.includes('watch=true'));
    expect(w?.url).toContain('resourceVersion=184400');
    expect(w?.url).toContain('labelSelector=app.kubernetes.io%2Fcomponent%3Dstore');
    const modified = structuredClone(fixtures.readyStorePod);
    modified.status.conditions = fixtures.notReadyConditions;
    watchRes?.write(`${JSON.stringify({ type: 'MODIFIED', object: modified })}\n`);
    watchRes?.write(
      `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: '184500' } } })}\n`,
    );
    watchRes?.write(`${JSON.stringify({ type: 'DELETED', object: modified })}\n`);
    await until(() => events.length === 3);
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    // The API server ends the watch (as it does every few minutes): list and watch again.
    const before = seen.filter((s) => s.url.includes('watch=true')).length;
    watchRes?.end();
    await until(() => seen.filter((s) => s.url.includes('watch=true')).length > before);
    stop();
  });

  it('reads a StatefulSet’s replica count; a missing one is null', async () => {
    expect(await api.statefulSetReplicas(NS, 'ks-store')).toBe(2);
    expect(await api.statefulSetReplicas(NS, 'nope')).toBeNull();
  });
});
