// An access key deleted elsewhere (another gateway, the directory's admin) stops working
// through a cluster gateway within the promised second: one cache layer, not two stacked
// (the gateway's lookup cache over a MetadataClient that cached keys as well kept a
// deleted key for up to two seconds).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGateway } from '../cli/gateway.ts';
import { DEFAULT_CONFIG } from '../common/config.ts';
import { createLogger } from '../common/log.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestDirectory, TEST_SECRET, type TestDirectory } from '../test/kit/test-directory.ts';
import { signRequest } from './auth/sign.ts';

const ACCESS_KEY = 'KSKEYCACHETEST000001';
const SECRET_KEY = 'key-cache-test-secret-0123456789abcdefgh';
const BOUND_MS = 1000;

let dir: TestDirectory;

beforeAll(async () => {
  dir = await startTestDirectory(tempDir('ks-keycache-'), 1);
  // The key exists before the gateway starts, as after any restart.
  await dir.client.createUser({ id: 'root', displayName: 'root', createdAt: 1 });
  await dir.client.addKey({
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    userId: 'root',
    createdAt: 1,
  });
});

afterAll(async () => {
  vi.useRealTimers();
  await dir?.close();
});

async function listBuckets(endpoint: string): Promise<number> {
  const url = new URL(endpoint);
  const { headers } = signRequest({
    method: 'GET',
    rawPath: '/',
    headers: { host: url.host },
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
  });
  const res = await fetch(`${endpoint}/`, { headers });
  await res.arrayBuffer();
  return res.status;
}

describe('a cluster gateway and a deleted access key', () => {
  it(`refuses the key ${BOUND_MS} ms after it was deleted elsewhere`, async () => {
    const cfg = structuredClone(DEFAULT_CONFIG);
    cfg.clusterSecret = TEST_SECRET;
    cfg.server.rootAccessKey = ACCESS_KEY;
    cfg.server.rootSecretKey = SECRET_KEY;
    // Only the clock the caches read is stopped; I/O and timers run for real.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const t0 = Date.now();
    // Start-up reads the root key (ensureRootCredentials): any cache under the gateway's
    // own now holds it.
    const gw = await startGateway(
      { cfg, directory: dir.urls, listen: '127.0.0.1:0' },
      createLogger('key-cache-test', 'silent'),
    );
    try {
      await dir.client.deleteKey(ACCESS_KEY);
      // Within the bound a stale answer is allowed; whatever this request sees, the
      // gateway's cache may keep it for its second.
      vi.setSystemTime(t0 + 300);
      await listBuckets(gw.endpoint);
      vi.setSystemTime(t0 + BOUND_MS + 150);
      expect(await listBuckets(gw.endpoint)).toBe(403);
    } finally {
      vi.useRealTimers();
      await gw.close();
    }
  });
});
