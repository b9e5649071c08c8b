import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { startRedisServer } from '../../cache/redis-process.ts';
import { freePort } from '../../common/ports.ts';
import { alive } from './processes.ts';
import { startRedis } from './redis-server.ts';
import { tempDir } from './temp-dirs.ts';

/** A client that does not reconnect: each phase of the test gets its own. */
async function client(url: string): Promise<Redis> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
  });
  await r.connect();
  return r;
}

/** The error code of a TCP connect to 127.0.0.1:port, or 'connected'. Bounded: 2 s. */
function connectResult(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (r: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('timeout'), 2_000);
    s.once('connect', () => done('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

describe('startRedis', () => {
  it('serves, dies on kill -9, comes back empty on restart, stops', async () => {
    const redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const firstPid = redis.pid;
    expect(alive(firstPid)).toBe(true);

    const c1 = await client(redis.url);
    await c1.set('k', Buffer.from([0, 255, 10, 13]));
    expect(await c1.getBuffer('k')).toEqual(Buffer.from([0, 255, 10, 13]));
    c1.disconnect();

    await redis.kill9();
    expect(alive(firstPid)).toBe(false);
    expect(await connectResult(redis.port)).toBe('ECONNREFUSED');

    await redis.restart();
    expect(redis.pid).not.toBe(firstPid);
    const c2 = await client(redis.url);
    expect(await c2.get('k')).toBeNull();
    expect(await c2.dbsize()).toBe(0);
    c2.disconnect();

    const pid = redis.pid;
    await redis.stop();
    expect(alive(pid)).toBe(false);
    expect(await connectResult(redis.port)).toBe('ECONNREFUSED');
  });

  it('fails with the reason redis-server gives when the port is taken', async () => {
    const port = await freePort();
    // Hangs up on the PINGs sent while waiting, so that its close() is not kept waiting.
    const holder = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => holder.listen(port, '127.0.0.1', r));
    try {
      await expect(startRedisServer({ port, readyMs: 5_000 })).rejects.toThrow(
        /exited 1: .*(Address already in use|bind)/s,
      );
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it('with a log file: makes its dir, runs in its own process group, logs there', async () => {
    const base = tempDir('ks-redis-');
    const logFile = path.join(base, 'redis.log');
    const redis = await startRedisServer({
      port: await freePort(),
      dir: path.join(base, 'made', 'here'),
      logFile,
    });
    try {
      expect(fs.statSync(path.join(base, 'made', 'here')).isDirectory()).toBe(true);
      // Its own group: a Ctrl-C to the caller's group does not reach it.
      const stat = fs.readFileSync(`/proc/${redis.pid}/stat`, 'utf8');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      expect(pgid).toBe(redis.pid);
      expect(fs.statSync(logFile).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(logFile, 'utf8')).toMatch(/Ready to accept connections/);
    } finally {
      const pid = redis.pid;
      await redis.stop();
      expect(alive(pid)).toBe(false);
    }
  });
});
