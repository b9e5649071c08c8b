// S3 clients pointed at a server under test: the SDK client (path style, us-east-1), its
// error in a comparable form, a file-level server+client fixture, a signed admin API call,
// and the configuration of the real command-line clients (aws-cli, s3cmd, rclone) in a
// private scratch dir.
import fs from 'node:fs';
import path from 'node:path';
import { S3Client, type S3ClientConfig, S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { signRequest } from '../../gateway/auth/sign.ts';
import { type RunResult, run } from './processes.ts';

export interface S3Endpoint {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

/** An SDK client for `srv` with its (or the given) credentials; `extra` overrides settings. */
export function s3Client(
  srv: S3Endpoint,
  extra: Partial<S3ClientConfig> & { accessKey?: string; secretKey?: string } = {},
): S3Client {
  const { accessKey = srv.accessKey, secretKey = srv.secretKey, ...config } = extra;
  return new S3Client({
    endpoint: srv.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    ...config,
  });
}

/** The S3 error `p` rejects with, as name and HTTP status; throws if it resolves. */
export async function s3Error(
  p: Promise<unknown>,
): Promise<{ name: string; status: number | undefined }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof S3ServiceException)
      return { name: e.name, status: e.$metadata.httpStatusCode };
    throw e;
  }
  throw new Error('expected an S3 error');
}

/**
 * A request to a gateway's admin API (as `kubestorage admin` makes it), SigV4-signed with
 * `creds`: the status, and the JSON body (a failure's text as `{ error }`).
 */
export async function adminCall(
  endpoint: string,
  creds: { accessKey: string; secretKey: string },
  method: string,
  what: string,
  query: [string, string][],
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(endpoint);
  const rawPath = `/_ks/admin/${what}`;
  const { headers } = signRequest({
    method,
    rawPath,
    query,
    headers: { host: url.host },
    accessKey: creds.accessKey,
    secretKey: creds.secretKey,
  });
  const qs = new URLSearchParams(query).toString();
  const res = await fetch(`${endpoint}${rawPath}${qs ? `?${qs}` : ''}`, { method, headers });
  const text = await res.text();
  return { status: res.status, body: res.ok ? JSON.parse(text) : { error: text } };
}

/**
 * For the test file: starts a server and an SDK client for it before all tests, destroys
 * the client and closes the server after them. `onStart` hands both to the file.
 */
export function useS3Server<S extends S3Endpoint & { close(): Promise<void> }>(
  start: () => Promise<S>,
  onStart: (started: { srv: S; s3: S3Client }) => unknown,
  clientOptions: Partial<S3ClientConfig> = {},
): void {
  let srv: S | undefined;
  let s3: S3Client | undefined;
  beforeAll(async () => {
    srv = await start();
    s3 = s3Client(srv, clientOptions);
    await onStart({ srv, s3 });
  });
  afterAll(async () => {
    s3?.destroy();
    await srv?.close();
  });
}

/** What a command-line client needs: the server, a scratch dir and a minimal environment. */
export interface ClientHome {
  srv: S3Endpoint;
  dir: string;
  env: NodeJS.ProcessEnv;
}

export const AWS = '/usr/bin/aws';
export const S3CMD = '/usr/bin/s3cmd';
export const RCLONE = '/usr/bin/rclone';

/**
 * Environment for the Debian aws-cli v2: config and credentials in temp files (path-style
 * addressing, us-east-1), nothing read from the real HOME, no retries — a server error
 * must fail the scenario, not be papered over.
 */
export function awsEnv(h: ClientHome): NodeJS.ProcessEnv {
  const config = path.join(h.dir, 'aws-config');
  fs.writeFileSync(
    config,
    '[default]\nregion = us-east-1\noutput = json\ns3 =\n  addressing_style = path\n',
  );
  const creds = path.join(h.dir, 'aws-credentials');
  fs.writeFileSync(
    creds,
    `[default]\naws_access_key_id = ${h.srv.accessKey}\naws_secret_access_key = ${h.srv.secretKey}\n`,
  );
  return {
    ...h.env,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: creds,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_RETRY_MODE: 'standard',
    AWS_MAX_ATTEMPTS: '1',
  };
}

/** `aws --endpoint-url <server> …args`, bounded. */
export function aws(
  h: ClientHome,
  env: NodeJS.ProcessEnv,
  args: string[],
  timeoutMs = 60_000,
): Promise<RunResult> {
  return run(AWS, ['--endpoint-url', h.srv.endpoint, ...args], { env, timeoutMs });
}

/** An s3cmd config file for the server (path style: host_bucket = host_base, plain HTTP). */
export function s3cmdConfig(h: ClientHome): string {
  const host = new URL(h.srv.endpoint).host;
  const config = path.join(h.dir, 's3cfg');
  fs.writeFileSync(
    config,
    [
      '[default]',
      `access_key = ${h.srv.accessKey}`,
      `secret_key = ${h.srv.secretKey}`,
      `host_base = ${host}`,
      `host_bucket = ${host}`,
      'bucket_location = us-east-1',
      'use_https = False',
      'signature_v2 = False',
      'check_ssl_certificate = False',
      'proxy_host =',
      'progress_meter = False',
      '',
    ].join('\n'),
  );
  return config;
}

/** Environment defining an rclone S3 remote `ks:` (provider Other, path style, us-east-1). */
export function rcloneEnv(h: ClientHome): NodeJS.ProcessEnv {
  const config = path.join(h.dir, 'rclone.conf');
  fs.writeFileSync(config, '');
  return {
    ...h.env,
    RCLONE_CONFIG: config,
    RCLONE_CONFIG_KS_TYPE: 's3',
    RCLONE_CONFIG_KS_PROVIDER: 'Other',
    RCLONE_CONFIG_KS_ENV_AUTH: 'false',
    RCLONE_CONFIG_KS_ACCESS_KEY_ID: h.srv.accessKey,
    RCLONE_CONFIG_KS_SECRET_ACCESS_KEY: h.srv.secretKey,
    RCLONE_CONFIG_KS_ENDPOINT: h.srv.endpoint,
    RCLONE_CONFIG_KS_REGION: 'us-east-1',
    RCLONE_CONFIG_KS_FORCE_PATH_STYLE: 'true',
  };
}
