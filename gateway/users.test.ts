// Access-key secrets at rest (issue 12 item 3): whatever path a key takes into the metadata
// (the root key at start, `admin user add`, `admin key add`), the metadata's files hold it
// sealed and SigV4 with it works; keys stored in clear before sealing existed are sealed
// when a gateway starts and keep working; a key sealed under another secret fails loudly.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../common/log.ts';
import { assembleGateway, defaultConfig, type Gateway } from '../compose/gateway.ts';
import { LevelMetadata } from '../directory/engine/meta-level.ts';
import { LocalNeedleStore } from '../store-node/api.ts';
import { Store } from '../store-node/store.ts';
import { filesContaining } from '../test/kit/files-at-rest.ts';
import { adminCall, s3Client, s3Error } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer } from '../test/kit/test-server.ts';
import { loadSecretFile, SecretBox } from './secret-box.ts';
import { ensureRootCredentials, withSealedKeys } from './users.ts';

async function listBuckets(endpoint: string, accessKey: string, secretKey: string) {
  const c = s3Client({ endpoint, accessKey, secretKey });
  try {
    return await c.send(new ListBucketsCommand({}));
  } finally {
    c.destroy();
  }
}

const ROOT = {
  accessKey: 'KSSEALEDROOT00000001',
  secretKey: 'sealed-root-secret-0123456789abcdefghij',
};

/** An embedded gateway on LevelDB in DIR/meta (the secret file in DIR/secret.key). */
async function embedded(
  dir: string,
  root: { accessKey: string; secretKey: string } = ROOT,
): Promise<{ gw: Gateway; endpoint: string; close(): Promise<void> }> {
  const store = await Store.open(path.join(dir, 'store'), {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
  });
  try {
    const gw = await assembleGateway({
      cfg: defaultConfig(),
      log: createLogger('users-test', 'silent'),
      meta: { level: path.join(dir, 'meta') },
      data: { needles: new LocalNeedleStore(store) },
      root,
    });
    const endpoint = await gw.listen('127.0.0.1', 0);
    return {
      gw,
      endpoint,
      async close() {
        await gw.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}

describe('access-key secrets at rest', () => {
  it('are sealed in the metadata files, whichever way a key came in, and still sign', async () => {
    const dir = tempDir('ks-sealed-');
    // Level metadata in DIR/meta, or (integration-raft) a Raft directory in DIR/directory.
    const srv = await startTestServer(dir);
    const root = { accessKey: srv.accessKey, secretKey: srv.secretKey };
    const alice = await adminCall(srv.endpoint, root, 'POST', 'users', [['id', 'alice']]);
    expect(alice.status).toBe(201);
    const second = await adminCall(srv.endpoint, root, 'POST', 'keys', [['user', 'alice']]);
    expect(second.status).toBe(201);
    const secrets = [root.secretKey, alice.body.secretKey, second.body.secretKey] as string[];
    for (const [i, k] of [alice.body, second.body].entries()) {
      const r = await listBuckets(srv.endpoint, k.accessKey as string, secrets[i + 1]!);
      expect(r.Buckets ?? []).toEqual([]);
    }
    expect((await listBuckets(srv.endpoint, root.accessKey, root.secretKey)).Buckets).toEqual([]);
    // The admin listing shows access keys, never a secret.
    const listed = JSON.stringify(await adminCall(srv.endpoint, root, 'GET', 'users', []));
    expect(listed).toContain(alice.body.accessKey as string);
    for (const s of secrets) expect(listed).not.toContain(s);
    // The gateway's view of the metadata opens them ...
    expect((await srv.meta.getKey(alice.body.accessKey as string))?.secretKey).toBe(secrets[1]);
    await srv.close();

    for (const s of secrets) expect(filesContaining(dir, s), s).toEqual([]);
    // ... and the record as stored is `ks1:…` (LevelDB only: the Raft directory is gone).
    if (fs.existsSync(path.join(dir, 'meta'))) {
      const m = await LevelMetadata.open(path.join(dir, 'meta'));
      try {
        const keys = await m.listKeys();
        expect(keys).toHaveLength(3);
        for (const k of keys) expect(k.secretKey.startsWith('ks1:'), k.accessKey).toBe(true);
      } finally {
        await m.close();
      }
      // The key that opens them is beside the metadata, not in it.
      expect(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    }
  });

  it('stored in clear by an older version are sealed when a gateway starts, and keep working', async () => {
    const dir = tempDir('ks-migrate-');
    const bob = {
      accessKey: 'KSBOBCLEARKEY0000001',
      // Random: LevelDB's table blocks are snappy-compressed, and a secret that repeats bytes
      // seen before it in the block would not appear literally, whatever the files hold.
      secretKey: crypto.randomBytes(30).toString('base64url'),
    };
    // The old path: records written in clear straight into the metadata.
    const old = await LevelMetadata.open(path.join(dir, 'meta'));
    await old.createUser({ id: 'root', displayName: 'root', createdAt: 1 });
    await old.createUser({ id: 'bob', displayName: 'bob', createdAt: 1 });
    await old.addKey({ ...ROOT, userId: 'root', createdAt: 1 });
    await old.addKey({ ...bob, userId: 'bob', createdAt: 1 });
    // Meanwhile (before any gateway sealed them) the sealing view reads them as they are.
    const box = SecretBox.fromSecret(loadSecretFile(path.join(dir, 'secret.key')));
    expect((await withSealedKeys(old, box).getKey(bob.accessKey))?.secretKey).toBe(bob.secretKey);
    await old.close();

    const g = await embedded(dir);
    try {
      expect(g.gw.creds).toMatchObject({ ...ROOT, created: false });
      expect((await listBuckets(g.endpoint, bob.accessKey, bob.secretKey)).Buckets).toEqual([]);
      expect((await listBuckets(g.endpoint, ROOT.accessKey, ROOT.secretKey)).Buckets).toEqual([]);
      const wrong = await s3Error(listBuckets(g.endpoint, bob.accessKey, `${bob.secretKey}x`));
      expect(wrong.name).toBe('SignatureDoesNotMatch');
    } finally {
      await g.close();
    }
    // Not shadowed only: the clear values are gone from the files too.
    expect(filesContaining(path.join(dir, 'meta'), bob.secretKey)).toEqual([]);
    const m = await LevelMetadata.open(path.join(dir, 'meta'));
    try {
      const keys = await m.listKeys();
      expect(keys.map((k) => k.accessKey).sort()).toEqual([bob.accessKey, ROOT.accessKey].sort());
      for (const k of keys) {
        expect(k.secretKey.startsWith('ks1:'), k.accessKey).toBe(true);
        expect(box.open(k.accessKey, k.secretKey)).toBe(
          k.accessKey === bob.accessKey ? bob.secretKey : ROOT.secretKey,
        );
        expect(k.userId).toBe(k.accessKey === bob.accessKey ? 'bob' : 'root');
      }
    } finally {
      await m.close();
    }
    // A second start finds nothing left to seal and everything still opens.
    const again = await embedded(dir);
    try {
      expect((await listBuckets(again.endpoint, bob.accessKey, bob.secretKey)).Buckets).toEqual([]);
    } finally {
      await again.close();
    }
  });

  it('sealed under another secret fail loudly; configured root credentials replace theirs', async () => {
    const dir = tempDir('ks-rekey-');
    const first = await embedded(dir);
    const carol = await adminCall(first.endpoint, ROOT, 'POST', 'users', [['id', 'carol']]);
    expect(carol.status).toBe(201);
    await first.close();
    // The node's secret is lost: what it sealed no longer opens.
    fs.rmSync(path.join(dir, 'secret.key'));
    await expect(embedded(dir, { accessKey: '', secretKey: '' })).rejects.toThrow(
      /KUBESTORAGE_ROOT_SECRET_KEY/,
    );
    const g = await embedded(dir);
    try {
      expect((await listBuckets(g.endpoint, ROOT.accessKey, ROOT.secretKey)).Buckets).toEqual([]);
      const ak = carol.body.accessKey as string;
      const err = await s3Error(listBuckets(g.endpoint, ak, carol.body.secretKey as string));
      expect(err.status).toBe(500);
      // The root may still list and remove the key that no longer opens.
      const users = await adminCall(g.endpoint, ROOT, 'GET', 'users', []);
      expect(JSON.stringify(users.body)).toContain(ak);
      const rm = await adminCall(g.endpoint, ROOT, 'DELETE', 'keys', [['accessKey', ak]]);
      expect(rm.status).toBe(200);
      expect((await s3Error(listBuckets(g.endpoint, ak, 'x'))).name).toBe('InvalidAccessKeyId');
    } finally {
      await g.close();
    }
  });
});

describe('root credentials', () => {
  it('gateways starting together on a fresh directory all get the configured root key', async () => {
    const m = await LevelMetadata.open(path.join(tempDir('ks-root-race-'), 'meta'));
    try {
      const box = SecretBox.fromSecret('root-race-test-secret-0123456789');
      const sealed = withSealedKeys(m, box);
      // Each start checks, then creates: all four see no root user and no key at first.
      const starts = await Promise.allSettled(
        Array.from({ length: 4 }, () =>
          ensureRootCredentials(
            sealed,
            'KSROOTRACEKEY0000001',
            'root-race-secret-0123456789abcdef',
          ),
        ),
      );
      expect(starts.map((s) => s.status)).toEqual(Array(4).fill('fulfilled'));
      expect((await m.listUsers()).map((u) => u.id)).toEqual(['root']);
      const keys = await sealed.listKeys('root');
      expect(keys.map((k) => [k.accessKey, k.secretKey])).toEqual([
        ['KSROOTRACEKEY0000001', 'root-race-secret-0123456789abcdef'],
      ]);
    } finally {
      await m.close();
    }
  });
});
