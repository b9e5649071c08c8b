// The `kubestorage store` command as a real process: start, serve, stop on SIGTERM,
// restart on the same data.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import { tempDir } from '../common/test-util.ts';
import { StoreClient } from '../store-node/client.ts';

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');
const SECRET = 'cli-test-secret-0123456789';
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

async function start(data: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'store', '--data', data, '--listen', '127.0.0.1:0'], {
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
});
