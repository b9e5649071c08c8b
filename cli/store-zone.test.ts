// `kubestorage store --zone-file`: the zone read from a file (an init container's, or a
// downward-API volume file), unit-tested and as a real process heartbeating it.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import { exited, killChildren, startKubestorage } from '../test/kit/processes.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startJsonPeer } from '../test/kit/test-nodes.ts';
import { until } from '../test/kit/until.ts';
import { storeZone } from './store.ts';

const SECRET = 'cli-zone-test-secret-0123456789';

afterEach(() => killChildren());

function zoneFile(content: string): string {
  const f = path.join(tempDir('ks-zone-'), 'zone');
  fs.writeFileSync(f, content);
  return f;
}

describe('storeZone', () => {
  it('takes the first line of the file, trimmed, over --zone', () => {
    expect(storeZone(undefined, zoneFile('eu-west-1a'))).toBe('eu-west-1a');
    expect(storeZone('from-flag', zoneFile('eu-west-1b\n'))).toBe('eu-west-1b');
    expect(storeZone(undefined, zoneFile('  z-c  \nignored\n'))).toBe('z-c');
  });

  it('falls back to --zone (or none) when the file is empty', () => {
    expect(storeZone('from-flag', zoneFile(''))).toBe('from-flag');
    expect(storeZone(undefined, zoneFile('\n'))).toBe('');
    expect(storeZone('rack-2', undefined)).toBe('rack-2');
    expect(storeZone(undefined, undefined)).toBe('');
  });

  it('fails on a missing file and on what is not a zone', () => {
    expect(() => storeZone('z', '/nonexistent/zone')).toThrow(/--zone-file \/nonexistent\/zone/);
    expect(() => storeZone(undefined, zoneFile('two words'))).toThrow(/not a zone/);
    expect(() => storeZone(undefined, zoneFile('x'.repeat(254)))).toThrow(/not a zone/);
  });
});

describe('kubestorage store --zone-file', () => {
  it('heartbeats the zone from the file', async () => {
    const auth = new InternalAuth(SECRET);
    const zones: unknown[] = [];
    const dir = await startJsonPeer(auth, (p, body) => {
      if (p === '/cluster/heartbeat') zones.push((body as { zone: unknown }).zone);
    });
    try {
      const p = startKubestorage(
        [
          ...['store', '--data', tempDir(), '--listen', '127.0.0.1:0', '--directory', dir.url],
          ...['--id', 'store-1', '--heartbeat-ms', '100'],
          ...['--zone=', '--zone-file', zoneFile('zone-from-node\n')],
        ],
        { env: { ...process.env, KUBESTORAGE_CLUSTER_SECRET: SECRET } },
      );
      await p.waitFor(/joined cluster/, 20_000);
      await until('a heartbeat', () => zones.length > 0, 10_000);
      expect(zones[0]).toBe('zone-from-node');
      p.child.kill('SIGTERM');
      expect(await exited(p.child)).toBe(0);

      const bad = startKubestorage(
        ['store', '--data', tempDir(), '--listen', '127.0.0.1:0', '--zone-file', '/nonexistent'],
        { env: { ...process.env, KUBESTORAGE_CLUSTER_SECRET: SECRET } },
      );
      expect(await exited(bad.child)).not.toBe(0);
      expect(bad.err()).toMatch(/--zone-file \/nonexistent/);
    } finally {
      await dir.close();
    }
  }, 30_000);
});
