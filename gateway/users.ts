// Users and access keys: the root user's credentials, key generation, and the secrets of
// access keys sealed at rest (secret-box.ts): withSealedKeys seals what goes to the
// metadata and opens what comes back; sealStoredKeys re-stores secrets stored in clear.
import crypto from 'node:crypto';
import type { Logger } from '../common/log.ts';
import { type AccessKeyRecord, MetadataError, type MetadataStore } from '../directory/model/api.ts';
import { SecretBox, SecretBoxError } from './secret-box.ts';

export const ROOT_USER = 'root';

export function newAccessKey(): string {
  // AWS-like: 20 upper-case alphanumerics.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = crypto.randomBytes(18);
  let s = 'KS';
  for (const b of bytes) s += alphabet[b & 31];
  return s;
}

export function newSecretKey(): string {
  return crypto
    .randomBytes(30)
    .toString('base64')
    .replace(/[+/]/g, (c) => (c === '+' ? 'A' : 'B'));
}

/**
 * A MetadataStore whose key records carry secrets in clear above it and sealed below it:
 * addKey seals, getKey/listKeys open (a secret stored in clear reads as itself). A record
 * whose sealed secret does not open still lists and can be removed, but reading its
 * secretKey throws SecretBoxError: a request signed with it fails loudly (500, logged)
 * rather than as a wrong key.
 */
export function withSealedKeys(meta: MetadataStore, box: SecretBox): MetadataStore {
  const open = (k: AccessKeyRecord): AccessKeyRecord => {
    try {
      return { ...k, secretKey: box.open(k.accessKey, k.secretKey) };
    } catch (e) {
      if (!(e instanceof SecretBoxError)) throw e;
      const { secretKey: _, ...rest } = k;
      return Object.defineProperty(rest, 'secretKey', {
        enumerable: false,
        get: () => {
          throw e;
        },
      }) as AccessKeyRecord;
    }
  };
  return new Proxy(meta, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'addKey':
          return (k: AccessKeyRecord) =>
            target.addKey({ ...k, secretKey: box.seal(k.accessKey, k.secretKey) });
        case 'getKey':
          return async (accessKey: string) => {
            const k = await target.getKey(accessKey);
            return k && open(k);
          };
        case 'listKeys':
          return async (userId?: string) => (await target.listKeys(userId)).map(open);
        default: {
          const v = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        }
      }
    },
  });
}

/**
 * Migration: every key whose secret is stored in clear (written before sealing existed)
 * is stored again, sealed. The metadata has no in-place update of a key, so it is a
 * delete and an add; another gateway doing the same at once is harmless (KeyExists). A
 * request for that key in between fails once with InvalidAccessKeyId. Resolves to the
 * number of keys sealed here.
 */
export async function sealStoredKeys(
  meta: MetadataStore,
  box: SecretBox,
  log?: Logger,
): Promise<number> {
  let sealed = 0;
  for (const k of await meta.listKeys()) {
    if (SecretBox.isSealed(k.secretKey)) continue;
    // One compare-and-set command: a crash leaves the key either in clear or sealed, and
    // another gateway sealing it meanwhile makes this one a no-op.
    if (await meta.replaceKeySecret(k.accessKey, k.secretKey, box.seal(k.accessKey, k.secretKey))) {
      sealed++;
    }
  }
  if (sealed > 0) {
    log?.info({ keys: sealed }, 'access-key secrets found in clear: stored again, sealed');
    // LevelDB keeps a replaced value in its files until compaction: drop them now where the
    // store can (embedded LevelMetadata). Each replica of a Raft directory does it on its
    // own once it has applied a replacement: its log compacted past the entries, then the
    // log's files and the state machine's (raft/host.ts purge).
    const compact = (meta as { compactAccessKeys?: () => Promise<void> }).compactAccessKeys;
    if (typeof compact === 'function') await compact.call(meta);
  }
  return sealed;
}

/** The root user's key: configured, else the one stored earlier, else a new one. */
export async function ensureRootCredentials(
  meta: MetadataStore,
  accessKey: string,
  secretKey: string,
): Promise<{ accessKey: string; secretKey: string; created: boolean }> {
  // Gateways starting together on a fresh directory race through these checks: what
  // another one created meanwhile counts as done (it crashed the losers before).
  const exists = (e: unknown, code: string) => e instanceof MetadataError && e.code === code;
  if (!(await meta.getUser(ROOT_USER))) {
    await meta
      .createUser({ id: ROOT_USER, displayName: ROOT_USER, createdAt: Date.now() })
      .catch((e: unknown) => {
        if (!exists(e, 'UserExists')) throw e;
      });
  }
  if (accessKey && secretKey) {
    const existing = await meta.getKey(accessKey);
    let same = false;
    try {
      same = existing?.secretKey === secretKey;
    } catch (e) {
      // Sealed under another secret: the configured credentials replace it.
      if (!(e instanceof SecretBoxError)) throw e;
    }
    if (existing && !same) await meta.deleteKey(accessKey);
    if (!same) {
      try {
        await meta.addKey({ accessKey, secretKey, userId: ROOT_USER, createdAt: Date.now() });
      } catch (e) {
        if (!exists(e, 'KeyExists') || (await meta.getKey(accessKey))?.secretKey !== secretKey) {
          throw e;
        }
      }
    }
    return { accessKey, secretKey, created: false };
  }
  const first = (await meta.listKeys(ROOT_USER))[0];
  if (first) {
    try {
      return { accessKey: first.accessKey, secretKey: first.secretKey, created: false };
    } catch (e) {
      if (!(e instanceof SecretBoxError)) throw e;
      throw new Error(
        `${e.message}. Set KUBESTORAGE_ROOT_ACCESS_KEY and KUBESTORAGE_ROOT_SECRET_KEY to install new root credentials.`,
      );
    }
  }
  const k = {
    accessKey: newAccessKey(),
    secretKey: newSecretKey(),
    userId: ROOT_USER,
    createdAt: Date.now(),
  };
  await meta.addKey(k);
  return { accessKey: k.accessKey, secretKey: k.secretKey, created: true };
}
