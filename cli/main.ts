// kubestorage <command>: dispatch only; each command lives in its own file.
const USAGE = `usage: kubestorage <command> [options]

commands:
  store     run a store node (Haystack volumes)       kubestorage store --help
  directory run a Raft directory replica (metadata)  kubestorage directory --help
  cluster   start/stop a local multi-process cluster kubestorage cluster --help
  server    embedded all-in-one server (npm start)  kubestorage server --help
  gateway   stateless S3 gateway of a cluster       kubestorage gateway --help
  admin     users and access keys of a running server kubestorage admin --help
  bench     the paper's workloads, load generator    kubestorage bench --help
  k8s       render the Kubernetes manifests          kubestorage k8s --help
`;

type Command = { main(args: string[]): Promise<void> };

// Data directories hold secrets (cluster.secret, secret.key; sealed access-key secrets,
// needles): whatever a command creates is for this user alone, whatever the shell's umask. Child processes (workers, `cluster up`'s nodes) inherit it.
process.umask(0o077);

// Loaded on demand: `kubestorage store` does not pay for the gateway's imports.
const COMMANDS: Record<string, () => Promise<Command>> = {
  store: () => import('./store.ts'),
  cluster: () => import('./cluster.ts'),
  directory: () => import('./directory.ts'),
  server: () => import('./server.ts'),
  gateway: () => import('./gateway.ts'),
  admin: () => import('./admin.ts'),
  bench: () => import('./bench.ts'),
  k8s: () => import('./k8s.ts'),
};

const [command, ...args] = process.argv.slice(2);

try {
  const load =
    command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (load) await (await load()).main(args);
  else if (command === undefined || ['-h', '--help', 'help'].includes(command)) {
    process.stdout.write(USAGE);
  } else {
    process.stderr.write(`kubestorage: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    process.exitCode = 2;
  }
} catch (e) {
  process.stderr.write(`kubestorage: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
