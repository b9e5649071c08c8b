// Node flags the server processes (directory, gateway, store) run with. V8's young
// generation of 16 MiB made a directory replica at ~15k records/s scavenge hundreds of
// times a second; 64 MiB semi-spaces measured +6% committed records/s (bench/directory.ts,
// alternating runs). Processes started by `kubestorage cluster up` and the benchmarks get
// them; elsewhere set NODE_OPTIONS (the bin's shebang covers a direct `kubestorage …`).
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
