// The `kubestorage store` command as a real process: start, serve, stop on SIGTERM,
// restart on the same data.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import { StoreClient } from '../store-node/client.ts';
import { exited, killChildren, startKubestorage } from '../test/kit/processes.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startJsonPeer } from '../test/kit/test-nodes.ts';

const SECRET = 'cli-test-secret-0123456789';

afterEach(() => killChildren());

async function start(
  data: string,
  extra: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const p = startKubestorage(['store', '--data', data, '--listen', '127.0.0.1:0', ...extra], {
    env: { ...process.env, KUBESTORAGE_CLUSTER_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const m = await p.waitFor(/"url":"(http:\/\/[^"]+)"/, 20_000);
  return { child: p.child, url: m[1]! };
}

describe('kubestorage store', () => {
  it('serves needles, shuts down cleanly on SIGTERM and reloads them', async () => {
    const data = tempDir();
    const auth = new InternalAuth(SECRET);
    const a = await start(data);
    const c1 = new StoreClient(a.url, auth);
    await c1.createVolume(3);
    const ref = { volumeId: 3, needleId: 99n, cookie: 12345 };
    await c1.put(ref, Buffer.from('hello haystack'));
    a.child.kill('SIGTERM');
    expect(await exited(a.child)).toBe(0);

    const b = await start(data);
    const c2 = new StoreClient(b.url, auth);
    expect((await c2.get(ref)).data.toString()).toBe('hello haystack');
    const st = await c2.status();
    expect(st.needles).toBe(1);
    await expect(
      new StoreClient(b.url, new InternalAuth('wrong-secret-0123456789')).status(),
    ).rejects.toMatchObject({
      code: 'Forbidden',
    });
    b.child.kill('SIGTERM');
    expect(await exited(b.child)).toBe(0);
  });

  it('heartbeats to the directories given with --directory, as --id/--zone/--advertise', async () => {
    const auth = new InternalAuth(SECRET);
    const got: Array<{ authOk: boolean; body: Record<string, unknown> }> = [];
    const dir = await startJsonPeer(auth, (path, body, authOk) => {
      if (path === '/cluster/heartbeat')
        got.push({ authOk, body: body as Record<string, unknown> });
    });
    const dirUrl = dir.url;
    try {
      const data = tempDir();
      const a = await start(data, [
        ...['--directory', dirUrl, '--id', 'store-7', '--zone', 'rack-2'],
        ...['--advertise', 'http://store-7.example:9000', '--heartbeat-ms', '100'],
        ...['--capacity', '10GiB'],
      ]);
      await new StoreClient(a.url, auth).createVolume(5);
      const t0 = Date.now();
      while (Date.now() - t0 < 10_000 && !got.some((g) => (g.body.volumes as []).length > 0))
        await new Promise((r) => setTimeout(r, 50));
      const last = got.at(-1)!;
      expect(last.authOk).toBe(true);
      expect(last.body).toEqual({
        id: 'store-7',
        url: 'http://store-7.example:9000',
        zone: 'rack-2',
        capacity: 10 * 1024 ** 3,
        used: 64,
        volumes: [{ id: 5, size: 64, needles: 0, readOnly: false }],
        load: 0,
        // The data directory's incarnation, written at its first start.
        incarnation: fs.readFileSync(path.join(data, 'incarnation'), 'utf8').trim(),
      });
      a.child.kill('SIGTERM');
      expect(await exited(a.child)).toBe(0);
    } finally {
      await dir.close();
    }
  });
});
