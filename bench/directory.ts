// Benchmark of the Raft metadata directory: 3 real `kubestorage directory` replicas on
// loopback, driven over HTTP by MetadataClient (what gateways use).
//
//   npm run bench:directory -- --json /tmp/dir.json
//   npm run bench:directory -- --phases commit --commit-duration 10 --tick-ms 20
//   npm run bench:directory -- --phases list --keys 1000000 --reuse /tmp/dir1m
//
// commit: N proposals in flight (--concurrency, spread over --clients MetadataClient
//   instances of --connections each) putObject small realistic object records to the
//   LEADER, then to a FOLLOWER (which forwards to the leader), each for --commit-duration
//   seconds after --warmup seconds. Reported: acknowledged records/s in the measured
//   window, per-call latency, the Raft entries used (the leader's commitIndex delta from
//   GET /status) and so records per entry, and CPU use of every process.
// list: a bucket of --keys keys (preloaded through the leader as fast as it takes them,
//   or kept from an earlier run with --reuse DIR), then ListObjectsV2-style pages of 1000
//   keys: (a) MetadataClient.listObjects against a follower and the leader (linearizable
//   ReadIndex reads), walking the whole bucket and at random start-after points; (b) the
//   same through the S3 API of a `kubestorage server --directory …` child (SigV4-signed
//   GETs by gateway/auth/sign.ts, continuation tokens and start-after).
//
// Every process started is stopped by PID (finally blocks and SIGINT/SIGTERM handlers);
// every loop is bounded in time and count; everything listens on 127.0.0.1 only.
//
// The parts are in bench/directory/: args, cluster (the replicas), drive (the load loops),
// commit, preload, pages and list (the list phase), report, main.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './directory/main.ts';

export { objectKey, objectRecord, parseListV2, Samples } from './directory/common.ts';

const invoked = process.argv[1] ? path.resolve(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) await main();
