// Child processes of the benchmarks: the null server (generator ceiling) and an embedded
// `kubestorage server` on a temp dir.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BIN = path.resolve(import.meta.dirname, '../../bin/kubestorage.js');

/** Waits for a line matching `re` on the child's stdout. */
export function waitFor(child: ChildProcess, re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what}: nothing in 30 s: ${out}`)), 30_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)));
  });
}

export function stopChild(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

/** A node script answering every request with 200 at once (GET: argv[1] bytes of body). */
export const NULL_SERVER = `
const http = require('node:http');
const body = Buffer.alloc(Number(process.argv[1]), 97);
const s = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.method === 'GET') res.writeHead(200, { 'content-length': body.length }).end(body);
    else res.writeHead(200, { 'content-length': 0 }).end();
  });
});
s.listen(0, '127.0.0.1', () => console.log('null server on ' + s.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

export interface Running {
  endpoint: string;
  stop(): Promise<number | null>;
}

export async function startNullServer(bodySize: number): Promise<Running> {
  const ns = spawn(process.execPath, ['-e', NULL_SERVER, String(bodySize)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const m = await waitFor(ns, /null server on (\d+)/, 'null server');
  return { endpoint: `http://127.0.0.1:${m[1]}`, stop: () => stopChild(ns) };
}

/** `kubestorage server --workers N` on loopback; its data dir is removed on stop unless given. */
export async function startEmbedded(opts: {
  accessKey: string;
  secretKey: string;
  workers?: string;
  dir?: string;
}): Promise<Running & { dataDir: string }> {
  const dataDir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ks-bench-'));
  const child = spawn(
    process.execPath,
    [BIN, 'server', '--workers', opts.workers ?? '1', '--data', dataDir, '--listen', '127.0.0.1:0'],
    {
      env: {
        ...process.env,
        KUBESTORAGE_ROOT_ACCESS_KEY: opts.accessKey,
        KUBESTORAGE_ROOT_SECRET_KEY: opts.secretKey,
        KUBESTORAGE_LOG_LEVEL: process.env.KUBESTORAGE_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const endpoint = (await waitFor(child, /S3 endpoint: (http:\/\/\S+)/, 'kubestorage server'))[1]!;
  return {
    endpoint,
    dataDir,
    stop: async () => {
      const code = await stopChild(child);
      if (!opts.dir) fs.rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}
