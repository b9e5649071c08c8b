// A real redis-server for tests, on a free loopback port, stopped when the test file ends
// if the test did not stop it itself.
import { afterAll } from 'vitest';
import { type RedisServer, startRedisServer } from '../../cache/redis-process.ts';
import { freePort } from '../../common/ports.ts';

export type { RedisServer };

const started = new Set<RedisServer>();

afterAll(async () => {
  await Promise.all([...started].map((r) => r.stop()));
  started.clear();
});

/** Starts redis-server (no persistence: a restart is empty) and waits for its PONG. */
export async function startRedis(): Promise<RedisServer> {
  // A port freed a moment ago can be taken before redis-server binds it: try another.
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const r = await startRedisServer({ port: await freePort() });
      started.add(r);
      return r;
    } catch (e) {
      last = e;
      if (!/exited/.test((e as Error).message)) throw e;
    }
  }
  throw last;
}
