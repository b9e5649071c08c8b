// Access-key secrets sealed at rest: AES-256-GCM under a key derived from the cluster (or
// node) secret, bound to the access key.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { loadSecretFile, SEALED_PREFIX, SecretBox, SecretBoxError } from './secret-box.ts';

const SECRET = 'secret-box-test-cluster-secret-0123456789';
const box = SecretBox.fromSecret(SECRET);

describe('SecretBox', () => {
  it('seals and opens, never showing the secret, a new IV each time', () => {
    const s = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const a = box.seal('KSAK1', s);
    const b = box.seal('KSAK1', s);
    expect(a.startsWith(SEALED_PREFIX)).toBe(true);
    expect(SecretBox.isSealed(a)).toBe(true);
    expect(a).not.toContain(s);
    expect(
      Buffer.from(a.slice(SEALED_PREFIX.length), 'base64url').toString('latin1'),
    ).not.toContain(s);
    expect(a).not.toBe(b);
    expect(box.open('KSAK1', a)).toBe(s);
    expect(box.open('KSAK1', b)).toBe(s);
    // Unicode and the empty string survive.
    expect(box.open('K', box.seal('K', 'ключ ✓'))).toBe('ключ ✓');
    expect(box.open('K', box.seal('K', ''))).toBe('');
  });

  it('is the same box for the same cluster secret, however it is made', () => {
    const sealed = box.seal('KSAK1', 'x');
    expect(SecretBox.fromAuth(new InternalAuth(SECRET)).open('KSAK1', sealed)).toBe('x');
    expect(
      new SecretBox(new InternalAuth(SECRET).derive('access-key-secrets')).open('KSAK1', sealed),
    ).toBe('x');
  });

  it('does not open under another key, for another access key, or altered', () => {
    const sealed = box.seal('KSAK1', 'the-secret');
    const other = SecretBox.fromSecret('another-cluster-secret-0123456789');
    expect(() => other.open('KSAK1', sealed)).toThrow(SecretBoxError);
    // The access key is the additional data: a sealed secret moved to another key fails.
    expect(() => box.open('KSAK2', sealed)).toThrow(SecretBoxError);
    const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64url');
    for (const at of [0, 12, raw.length - 1]) {
      const t = Buffer.from(raw);
      t[at]! ^= 1;
      expect(() => box.open('KSAK1', SEALED_PREFIX + t.toString('base64url'))).toThrow(
        SecretBoxError,
      );
    }
    expect(() => box.open('KSAK1', `${SEALED_PREFIX}AAAA`)).toThrow(SecretBoxError);
    expect(() => box.open('KSAK1', sealed.slice(0, -4))).toThrow(SecretBoxError);
    // The message names the key, never a secret.
    try {
      other.open('KSAK1', sealed);
    } catch (e) {
      expect((e as Error).message).toContain('KSAK1');
      expect((e as Error).message).not.toContain('the-secret');
    }
  });

  it('reads a secret stored in clear (before sealing) as it is', () => {
    expect(SecretBox.isSealed('plain-old-secret')).toBe(false);
    expect(box.open('KSAK1', 'plain-old-secret')).toBe('plain-old-secret');
  });
});

describe('loadSecretFile', () => {
  it('creates a random secret, 0600 in a 0700 folder, once', () => {
    const dir = path.join(tempDir(), 'data');
    const file = path.join(dir, 'secret.key');
    const old = process.umask(0o022);
    try {
      const s = loadSecretFile(file);
      expect(s.length).toBeGreaterThanOrEqual(32);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      expect(loadSecretFile(file)).toBe(s);
    } finally {
      process.umask(old);
    }
    fs.writeFileSync(file, 'short\n');
    expect(() => loadSecretFile(file)).toThrow(/too short/);
  });
});
