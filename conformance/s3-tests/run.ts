// Runs the public ceph/s3-tests suite against an embedded gateway.
//
//   S3TESTS_DIR=/path/to/s3-tests node --import tsx conformance/s3-tests/run.ts [-- pytest args]
//   S3TESTS_DIR=… node --import tsx conformance/s3-tests/run.ts --select   (rewrites selected.txt)
//
// Starts a gateway on a free loopback port (LevelDB metadata and a volume store in a
// temp dir), creates the three users the suite needs (main, alt, tenant), writes an
// S3TEST_CONF, runs Debian's /usr/bin/python3 -m pytest over selected.txt (or over the
// pytest arguments given after `--`, e.g. `-- -k listv2`), and prints
// `s3-tests: N passed, N failed, N skipped, N errors`. The per-failure list (test name and
// first line of the error) goes to a file in the temp dir. The server is always stopped.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';
import { startTestServer, type TestServer } from '../../test/kit/test-server.ts';
import { parseExcludeFile, select } from './select.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.S3TESTS_PYTHON ?? '/usr/bin/python3';

interface User {
  section: string;
  id: string;
  accessKey: string;
  secretKey: string;
  email: string;
}

const USERS: User[] = [
  {
    section: 's3 main',
    id: 's3tests-main',
    accessKey: 'S3TESTSMAINKEY000001',
    secretKey: 'main-secret-0123456789abcdefghijklmnopqrs',
    email: 'main@example.com',
  },
  {
    section: 's3 alt',
    id: 's3tests-alt',
    accessKey: 'S3TESTSALTKEY0000001',
    secretKey: 'alt-secret-0123456789abcdefghijklmnopqrst',
    email: 'alt@example.com',
  },
  {
    section: 's3 tenant',
    id: 's3tests-tenant',
    accessKey: 'S3TESTSTENANTKEY0001',
    secretKey: 'tenant-secret-0123456789abcdefghijklmnopq',
    email: 'tenant@example.com',
  },
];

function configText(port: number): string {
  const main = USERS[0]!;
  // The gateway reports a user's id as its display name, so both are the id.
  const user = (u: User, extra = '') =>
    `[${u.section}]\ndisplay_name = ${u.id}\nuser_id = ${u.id}\nemail = ${u.email}\n` +
    `access_key = ${u.accessKey}\nsecret_key = ${u.secretKey}\n${extra}\n`;
  // IAM sections are read unconditionally by the suite's configure(); IAM is not part of
  // the selection, so they carry main's credentials.
  const iam = (section: string) => user({ ...main, section });
  return (
    `[DEFAULT]\nhost = 127.0.0.1\nport = ${port}\nis_secure = False\nssl_verify = False\n\n` +
    `[fixtures]\nbucket prefix = s3t-{random}-\niam name prefix = s3-tests-\niam path prefix = /s3-tests/\n\n` +
    user(USERS[0]!, 'api_name = default\n') +
    user(USERS[1]!) +
    user(USERS[2]!, 'tenant = testx\n') +
    iam('iam') +
    iam('iam root') +
    iam('iam alt root')
  );
}

async function createUsers(srv: TestServer): Promise<void> {
  for (const u of USERS) {
    if (!(await srv.meta.getUser(u.id))) {
      await srv.meta.createUser({ id: u.id, displayName: u.id, createdAt: Date.now() });
    }
    if (!(await srv.meta.getKey(u.accessKey))) {
      await srv.meta.addKey({
        accessKey: u.accessKey,
        secretKey: u.secretKey,
        userId: u.id,
        createdAt: Date.now(),
      });
    }
  }
}

function runPytest(checkout: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'pytest', ...args], {
      cwd: checkout,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const stop = () => {
      if (child.pid !== undefined) child.kill('SIGTERM');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

interface Outcome {
  name: string;
  status: 'passed' | 'failed' | 'skipped' | 'error';
  message: string;
}

function firstLine(s: unknown): string {
  const text = typeof s === 'string' ? s : s === undefined ? '' : String(s);
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

/** Test outcomes from pytest's junit XML. */
export function parseJunit(xml: string): Outcome[] {
  const doc = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    textNodeName: '#text',
    isArray: (n) => ['testsuite', 'testcase', 'failure', 'error', 'skipped'].includes(n),
  }).parse(xml) as Record<string, unknown>;
  const root = (doc.testsuites ?? doc) as { testsuite?: { testcase?: unknown[] }[] };
  const out: Outcome[] = [];
  for (const suite of root.testsuite ?? []) {
    for (const raw of suite.testcase ?? []) {
      const tc = raw as Record<string, unknown>;
      const name = `${tc.classname}::${tc.name}`;
      const pick = (k: string) => (tc[k] as Record<string, unknown>[] | undefined)?.[0];
      const fail = pick('failure');
      const err = pick('error');
      const skip = pick('skipped');
      const msg = (n: Record<string, unknown>) => firstLine(n.message) || firstLine(n['#text']);
      if (fail) out.push({ name, status: 'failed', message: msg(fail) });
      else if (err) out.push({ name, status: 'error', message: msg(err) });
      else if (skip) out.push({ name, status: 'skipped', message: msg(skip) });
      else out.push({ name, status: 'passed', message: '' });
    }
  }
  return out;
}

function writeSelection(checkout: string): void {
  const spec = parseExcludeFile(fs.readFileSync(path.join(HERE, 'exclude.txt'), 'utf8'));
  const s = select(checkout, spec);
  const lines = s.selected.map((t) => `${t.file}::${t.name}`);
  fs.writeFileSync(path.join(HERE, 'selected.txt'), `${lines.join('\n')}\n`);
  let left = 0;
  for (const l of s.excluded.values()) left += l.length;
  console.log(
    `s3-tests selection: ${s.total} tests, ${s.selected.length} selected, ${left} left out`,
  );
  // Totals per area: the part of a reason before " (details)".
  const areas = new Map<string, number>();
  for (const [reason, tests] of s.excluded) {
    const area = reason.replace(/\s*\(.*$/, '');
    areas.set(area, (areas.get(area) ?? 0) + tests.length);
  }
  for (const [area, n] of [...areas].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${String(n).padStart(4)}  ${area}`);
  }
}

async function main(): Promise<number> {
  const checkout = process.env.S3TESTS_DIR;
  if (!checkout || !fs.existsSync(path.join(checkout, 's3tests'))) {
    console.log(
      's3-tests: skipped (set S3TESTS_DIR to a ceph/s3-tests checkout; see conformance/README.md)',
    );
    return 0;
  }
  const argv = process.argv.slice(2);
  if (argv[0] === '--select') {
    writeSelection(checkout);
    return 0;
  }
  const dd = argv.indexOf('--');
  const extra = dd >= 0 ? argv.slice(dd + 1) : argv;
  if (!fs.existsSync(PYTHON)) {
    console.log(`s3-tests: skipped (${PYTHON} missing; see ../shared/DESIGN.md §9 for packages)`);
    return 0;
  }
  const selected = fs
    .readFileSync(path.join(HERE, 'selected.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 's3-tests-'));
  const srv = await startTestServer(path.join(tmp, 'server'));
  let code = 1;
  try {
    await createUsers(srv);
    const port = Number(new URL(srv.endpoint).port);
    const conf = path.join(tmp, 's3tests.conf');
    fs.writeFileSync(conf, configText(port));
    const junit = path.join(tmp, 'junit.xml');
    // Explicit test ids (e.g. from -k filtering) go with the whole selection; a positional
    // path or node id given by the user replaces it.
    const positional = extra.some((a) => a.includes('::') || a.endsWith('.py'));
    const args = [
      '-q',
      '-p',
      'no:cacheprovider',
      '--timeout',
      '60',
      `--junitxml=${junit}`,
      '-o',
      'junit_family=xunit1',
      ...extra,
      ...(positional ? [] : selected),
    ];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: tmp,
      LANG: 'C.UTF-8',
      S3TEST_CONF: conf,
      // botocore signs through awscrt when python3-awscrt is installed; the CRT signer
      // fails on the suite's interrupting file objects (test_atomic_*). Use botocore's own.
      BOTO_DISABLE_CRT: 'true',
    };
    const rc = await runPytest(checkout, args, env);
    if (!fs.existsSync(junit)) {
      console.log(`s3-tests: pytest exited ${rc} without results`);
      return 1;
    }
    const outcomes = parseJunit(fs.readFileSync(junit, 'utf8'));
    const count = (s: Outcome['status']) => outcomes.filter((o) => o.status === s).length;
    const failures = outcomes.filter((o) => o.status === 'failed' || o.status === 'error');
    const report = path.join(tmp, 'failures.txt');
    fs.writeFileSync(
      report,
      failures.map((f) => `${f.name}\t${f.status}\t${f.message}`).join('\n') +
        (failures.length ? '\n' : ''),
    );
    console.log(`failures: ${report}`);
    console.log(
      `s3-tests: ${count('passed')} passed, ${count('failed')} failed, ${count('skipped')} skipped, ${count('error')} errors`,
    );
    code = failures.length === 0 ? 0 : 1;
  } finally {
    await srv.close();
    fs.rmSync(path.join(tmp, 'server'), { recursive: true, force: true });
  }
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
