// User and key administration, served by the gateway under /_ks/admin/ (no bucket name
// can contain "_", so this never shadows a bucket). Requests are ordinary SigV4-signed
// requests; only the root user may use them. JSON in and out.
//
//   GET    /_ks/admin/users                 list users with their access keys (no secrets)
//   POST   /_ks/admin/users?id=NAME         create a user and a first key → the secret, once
//   DELETE /_ks/admin/users?id=NAME         remove a user (refused while it owns buckets)
//   POST   /_ks/admin/keys?user=NAME        add a key → the secret, once
//   DELETE /_ks/admin/keys?accessKey=AK     remove a key
import { MetadataError, type MetadataStore } from '../directory/model/api.ts';
import { S3Error } from './error.ts';
import { newAccessKey, newSecretKey, ROOT_USER } from './users.ts';

export const ADMIN_PREFIX = '/_ks/admin/';

const USER_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

function need(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (!v) throw new S3Error('InvalidArgument', `Missing query parameter ${name}.`);
  return v;
}

export async function handleAdmin(
  meta: MetadataStore,
  userId: string | null,
  method: string,
  path: string,
  q: URLSearchParams,
): Promise<Response> {
  if (userId !== ROOT_USER)
    throw new S3Error('AccessDenied', 'Only the root user may administer users and keys.');
  const what = path.slice(ADMIN_PREFIX.length);
  try {
    if (what === 'users' && method === 'GET') {
      const users = await meta.listUsers();
      const keys = await meta.listKeys();
      return json(200, {
        users: users.map((u) => ({
          id: u.id,
          createdAt: new Date(u.createdAt).toISOString(),
          accessKeys: keys.filter((k) => k.userId === u.id).map((k) => k.accessKey),
        })),
      });
    }
    if (what === 'users' && method === 'POST') {
      const id = need(q, 'id');
      if (!USER_ID.test(id))
        throw new S3Error(
          'InvalidArgument',
          'User ids: 1-64 of A-Z a-z 0-9 . _ @ -, starting alphanumeric.',
        );
      if (await meta.getUser(id))
        throw new S3Error('UserAlreadyExists', `User ${id} exists.`, { status: 409 });
      await meta.createUser({ id, displayName: id, createdAt: Date.now() });
      return json(201, { user: id, ...(await addKey(meta, id)) });
    }
    if (what === 'users' && method === 'DELETE') {
      const id = need(q, 'id');
      if (id === ROOT_USER)
        throw new S3Error('InvalidArgument', 'The root user cannot be removed.');
      if ((await meta.listBuckets(id)).length > 0) {
        throw new S3Error('UserHasBuckets', `User ${id} still owns buckets; delete them first.`, {
          status: 409,
        });
      }
      await meta.deleteUser(id);
      return json(200, { removed: id });
    }
    if (what === 'keys' && method === 'POST') {
      const user = need(q, 'user');
      if (!(await meta.getUser(user)))
        throw new S3Error('NoSuchUser', `User ${user} does not exist.`, { status: 404 });
      return json(201, { user, ...(await addKey(meta, user)) });
    }
    if (what === 'keys' && method === 'DELETE') {
      const accessKey = need(q, 'accessKey');
      const k = await meta.getKey(accessKey);
      if (!k)
        throw new S3Error('NoSuchKey', `Access key ${accessKey} does not exist.`, { status: 404 });
      if (k.userId === ROOT_USER && (await meta.listKeys(ROOT_USER)).length === 1) {
        throw new S3Error('InvalidArgument', "The root user's last key cannot be removed.");
      }
      await meta.deleteKey(accessKey);
      return json(200, { removed: accessKey });
    }
  } catch (e) {
    if (e instanceof MetadataError && e.code === 'NoSuchUser') {
      throw new S3Error('NoSuchUser', e.message, { status: 404 });
    }
    throw e;
  }
  throw new S3Error('InvalidRequest', `Unknown admin request ${method} ${path}.`);
}

async function addKey(
  meta: MetadataStore,
  userId: string,
): Promise<{ accessKey: string; secretKey: string }> {
  const k = { accessKey: newAccessKey(), secretKey: newSecretKey(), userId, createdAt: Date.now() };
  await meta.addKey(k);
  return { accessKey: k.accessKey, secretKey: k.secretKey };
}
