// The `kubestorage store` command as a real process: start, serve, stop on SIGTERM,
// restart on the same data.
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import { StoreClient } from '../store-node/client.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');
const SECRET = 'cli-test-secret-0123456789';
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

async function start(
  data: string,
  extra: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const args = [BIN, 'store', '--data', data, '--listen', '127.0.0.1:0', ...extra];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, KUBESTORAGE_CLUSTER_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listen line in 20 s: ${out}`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  return { child, url };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
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
    const dir = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c));
      req.on('end', () => {
        const authOk = auth.verify(
          req.headers['x-ks-auth'] as string,
          'POST',
          req.url!,
          undefined,
          text,
        );
        if (req.url === '/cluster/heartbeat') got.push({ authOk, body: JSON.parse(text) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => dir.listen(0, '127.0.0.1', r));
    const dirUrl = `http://127.0.0.1:${(dir.address() as { port: number }).port}`;
    try {
      const a = await start(tempDir(), [
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
      });
      a.child.kill('SIGTERM');
      expect(await exited(a.child)).toBe(0);
    } finally {
      dir.closeAllConnections();
      dir.close();
    }
  });
});
