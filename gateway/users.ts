// Users and access keys: the root user's credentials, and key generation.
import crypto from 'node:crypto';
import type { MetadataStore } from '../directory/model/api.ts';

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

/** The root user's key: configured, else the one stored earlier, else a new one. */
export async function ensureRootCredentials(
  meta: MetadataStore,
  accessKey: string,
  secretKey: string,
): Promise<{ accessKey: string; secretKey: string; created: boolean }> {
  if (!(await meta.getUser(ROOT_USER))) {
    await meta.createUser({ id: ROOT_USER, displayName: ROOT_USER, createdAt: Date.now() });
  }
  if (accessKey && secretKey) {
    const existing = await meta.getKey(accessKey);
    if (existing && existing.secretKey !== secretKey) await meta.deleteKey(accessKey);
    if (!existing || existing.secretKey !== secretKey) {
      await meta.addKey({ accessKey, secretKey, userId: ROOT_USER, createdAt: Date.now() });
    }
    return { accessKey, secretKey, created: false };
  }
  const keys = await meta.listKeys(ROOT_USER);
  if (keys.length > 0)
    return { accessKey: keys[0]!.accessKey, secretKey: keys[0]!.secretKey, created: false };
  const k = {
    accessKey: newAccessKey(),
    secretKey: newSecretKey(),
    userId: ROOT_USER,
    createdAt: Date.now(),
  };
  await meta.addKey(k);
  return { accessKey: k.accessKey, secretKey: k.secretKey, created: true };
}
