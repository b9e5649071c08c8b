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
`;

const [command, ...args] = process.argv.slice(2);

try {
  switch (command) {
    case 'store': {
      const { main } = await import('./store.ts');
      await main(args);
      break;
    }
    case 'cluster': {
      const { main } = await import('./cluster.ts');
      await main(args);
      break;
    }
    case 'directory': {
      const { main } = await import('./directory.ts');
      await main(args);
      break;
    }
    case 'server': {
      const { main } = await import('./server.ts');
      await main(args);
      break;
    }
    case 'gateway': {
      const { main } = await import('./gateway.ts');
      await main(args);
      break;
    }
    case 'admin': {
      const { main } = await import('./admin.ts');
      await main(args);
      break;
    }
    case 'bench': {
      const { main } = await import('./bench.ts');
      await main(args);
      break;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      break;
    default:
      process.stderr.write(`kubestorage: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      process.exitCode = 2;
  }
} catch (e) {
  process.stderr.write(`kubestorage: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
