// The paper's fault experiment, as a benchmark (`kubestorage bench faults`) and a test
// (conformance/cluster-faults.test.ts): a local cluster under a bounded random read/write
// load of known objects; mid-run, kill -9 the Raft directory leader and every store of one
// zone; then count failed reads (after a client retry like the AWS SDK's standard mode),
// lost acknowledged writes (every one is read back byte-exactly), and how long read p99
// takes to come back near its baseline.
//
// The parts are in bench/workloads/faults/: options, client (S3 with the SDK's retries),
// cluster (cluster control and the kill), load (objects, the paced load, the kill schedule,
// per-second lines), analysis (per-second stats and the figures), run, report (table and
// SVG) and command (the CLI).

export { freePortBase } from '../lib/proc.ts';
export {
  analyze,
  type FaultsAnalysis,
  type OpSample,
  perSecond,
  type SecondStat,
} from './faults/analysis.ts';
export { backoffMs, FaultClient, type Outcome, retryableStatus } from './faults/client.ts';
export {
  findLeader,
  type Killed,
  killLeaderAndZone,
  type OwnCluster,
  type Placement,
  startCluster,
} from './faults/cluster.ts';
export { FAULTS_USAGE, faultsCommand, parseFaultsArgs } from './faults/command.ts';
export { faultKey, ObjectData } from './faults/load.ts';
export { DEFAULTS, type FaultsOptions, parseDuration } from './faults/options.ts';
export { describeFaults, faultsChart } from './faults/report.ts';
export { type FaultsResult, runFaults } from './faults/run.ts';
