import { defineConfig } from 'vitest/config';

const exclude = ['node_modules/**', 'data/**'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Crash tests fork real processes; two workers match this 2-core machine.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['**/*.test.ts'], exclude } },
      {
        // The gateway's S3 tests and client scenarios again, with the metadata on a
        // 3-replica Raft directory reached over loopback HTTP (gateway/test-server.ts).
        extends: true,
        test: {
          name: 'raft-directory',
          include: ['gateway/*.test.ts', 'conformance/*.test.ts'],
          exclude: [...exclude, 'conformance/cluster-*.test.ts', 'gateway/cluster-*.test.ts'],
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
