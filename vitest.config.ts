import { defineConfig } from 'vitest/config';

const exclude = ['node_modules/**', 'data/**'];

// Tests that start processes, kill them, or run thousands of seeds: minutes, not seconds.
const SLOW = [
  'store-node/crash.test.ts',
  'directory/replica/raft-process.test.ts',
  'directory/raft/sim/sim-*.test.ts',
  'cli/*.test.ts',
  'test/cluster-*.test.ts',
  'test/k8s-run.test.ts',
  'conformance/*.test.ts',
  'bench/**/*.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Crash tests fork real processes; two workers match this 2-core machine.
    maxWorkers: 2,
    projects: [
      // The inner loop (npm run test:fast): everything in-process, embedded metadata.
      {
        extends: true,
        test: { name: 'fast', include: ['**/*.test.ts'], exclude: [...exclude, ...SLOW] },
      },
      // Real processes, kill -9, seeded simulations, real S3 clients, cross-component tests.
      { extends: true, test: { name: 'integration', include: SLOW, exclude } },
      {
        // The gateway's S3 tests and client scenarios again, with the metadata on a
        // 3-replica Raft directory reached over loopback HTTP (test/kit/test-server.ts).
        extends: true,
        test: {
          name: 'integration-raft',
          include: ['gateway/**/*.test.ts', 'conformance/*.test.ts'],
          exclude: [...exclude, 'conformance/cluster-*.test.ts'],
          env: { KUBESTORAGE_TEST_DIRECTORY: 'raft' },
        },
      },
      {
        // The client scenarios against a real local cluster: separate directory, store and
        // gateway processes (conformance/harness.ts → kubestorage cluster up).
        extends: true,
        test: {
          name: 'cluster',
          include: ['conformance/*.test.ts'],
          exclude: [...exclude, 'conformance/cluster-*.test.ts'],
          env: { KUBESTORAGE_TEST_TARGET: 'cluster' },
          // `cluster up` starts nine processes; next to the simulator on a loaded 2-core CI
          // machine one start took over 30 s (4 s when idle).
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
