// Access-key secrets at rest (issue 12 item 3). The gateway is the one component that needs
// a secret in clear (it verifies SigV4/SigV2 signatures with it), so it seals each secret
// before the record goes to the metadata and opens it when it looks the key up: a copy of
// the metadata (LevelDB files, a Raft log or snapshot) alone hands out no secret.
//
// AES-256-GCM under a key derived from the cluster secret (InternalAuth.derive), or, for
// the embedded server whose metadata is local, from a secret kept in a file of its data
// directory outside the metadata (loadSecretFile). The access key is the additional
// authenticated data, so a sealed secret copied onto another access key does not open.
// Stored form: `ks1:` + base64url(iv[12] | ciphertext | tag[16]). A value without the
// prefix is a secret stored in clear before sealing existed: it reads as itself until the
// gateway re-stores it sealed (users.ts sealStoredKeys).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { InternalAuth } from '../common/internal-auth.ts';

export const SEALED_PREFIX = 'ks1:';
const PURPOSE = 'access-key-secrets';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A sealed secret that does not open: another key sealed it, or it was altered. */
export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

export class SecretBox {
  private readonly key: Buffer;

  /** `key`: 32 bytes. Prefer fromAuth / fromSecret. */
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('SecretBox wants a 32-byte key');
    this.key = Buffer.from(key);
  }

  /** The box of a cluster: its key derived from the cluster secret. */
  static fromAuth(auth: InternalAuth): SecretBox {
    return new SecretBox(auth.derive(PURPOSE));
  }

  /** The same from the secret itself (at least 16 characters). */
  static fromSecret(secret: string): SecretBox {
    return SecretBox.fromAuth(new InternalAuth(secret));
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(SEALED_PREFIX);
  }

  seal(accessKey: string, secret: string): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const c = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(accessKey, 'utf8'));
    const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
    return SEALED_PREFIX + Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
  }

  /** The secret in clear: a sealed one opened, one stored in clear as it is. */
  open(accessKey: string, stored: string): string {
    if (!SecretBox.isSealed(stored)) return stored;
    const raw = Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw this.cannotOpen(accessKey);
    try {
      const d = crypto.createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      d.setAAD(Buffer.from(accessKey, 'utf8'));
      d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const body = raw.subarray(IV_BYTES, raw.length - TAG_BYTES);
      return Buffer.concat([d.update(body), d.final()]).toString('utf8');
    } catch {
      throw this.cannotOpen(accessKey);
    }
  }

  private cannotOpen(accessKey: string): SecretBoxError {
    return new SecretBoxError(
      `the stored secret of access key ${accessKey} does not open: it was sealed under another ` +
        'secret (another cluster secret, or another data/secret.key) or altered',
    );
  }
}

/**
 * The secret in `file`, created (random, mode 0600, its folder 0700) on first use. The
 * embedded server keeps it in its data directory beside the metadata, not in it.
 */
export function loadSecretFile(file: string): string {
  const read = (): string | null => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  };
  let secret = read();
  if (secret === null) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, `${crypto.randomBytes(32).toString('base64url')}\n`, {
        mode: 0o600,
        flag: 'wx',
      });
    } catch (e) {
      // Another process made it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    secret = read();
  }
  if (!secret || secret.length < 16) throw new Error(`${file}: not a secret (too short)`);
  return secret;
}
