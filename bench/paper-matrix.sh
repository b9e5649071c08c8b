#!/bin/sh
# The README's "Paper workloads vs nginx on ext4" matrix: for 4 / 40 / 400 KiB, the embedded
# kubestorage server (fresh temp dir, 1 worker) against nginx WebDAV on ext4, reads (Zipf over
# a random subset) and writes at each concurrency, interleaved, with ratios.
#
#   bench/paper-matrix.sh OUTDIR [CONCURRENCY] [ROUNDS]     (default 50,500,1000 and 1)
#
# Writes OUTDIR/{4KiB,40KiB,400KiB}.json + .svg charts (not committed).
set -eu
out=${1:?usage: $0 OUTDIR [CONCURRENCY] [ROUNDS]}
conc=${2:-50,500,1000}
rounds=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
port=18080
ngdir=$(mktemp -d /tmp/ks-nginx-XXXXXX)
mkdir -p "$out"
"$here/nginx-baseline.sh" start "$ngdir" "$port"
trap '"$here/nginx-baseline.sh" stop "$ngdir"; rm -rf "$ngdir"' EXIT INT TERM
run() { # size objects requests writes
  node "$here/../bin/kubestorage.js" bench compare \
    --targets "kubestorage=embedded,nginx=http@http://127.0.0.1:$port" \
    --size "$1" --objects "$2" --subset "$(($2 / 2))" --requests "$3" --writes "$4" \
    --hot-requests 0 --concurrency "$conc" --rounds "$rounds" --zipf 1 --seed 42 \
    --duration-cap 30 --json "$out/$1.json"
}
run 4KiB 5000 20000 20000
run 40KiB 5000 20000 10000
run 400KiB 2000 10000 4000
