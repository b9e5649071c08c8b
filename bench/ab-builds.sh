#!/usr/bin/env bash
# Two builds side by side in one sitting: rounds of engine, gateway and directory benches,
# alternating A and B, so the VM's speed drift (2-3x here) hits both alike. For the gateway
# the figure that matters is server CPU per request (user+sys from /proc, µs), not req/s.
#
#   bench/ab-builds.sh /tmp/ks-before /work/main 3 /tmp/ab     # A B rounds outdir
#   node bench/ab-report.mjs /tmp/ab                          # medians per build
#
# Each tree needs its own node_modules. Sizes are small on purpose (a round of both builds
# takes ~5 min on the 2-core VM); scale them with NEEDLES, OBJECTS, KEYS.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); ROUNDS=${3:-3}; OUT=${4:-/tmp/ab}
NEEDLES=${NEEDLES:-50000}; OBJECTS=${OBJECTS:-20000}; KEYS=${KEYS:-100000}
mkdir -p "$OUT"
ACCESS=ABBENCHKEY000000000A; SECRET=abbenchsecret0000000000000000000000000000

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks (user + sys)

gateway_round() { # tree label round
  local tree=$1 label=$2 r=$3 port=$((19400 + RANDOM % 500)) data
  data=$(mktemp -d)
  KUBESTORAGE_ROOT_ACCESS_KEY=$ACCESS KUBESTORAGE_ROOT_SECRET_KEY=$SECRET \
    node --max-semi-space-size=64 "$tree/bin/kubestorage.js" server --data "$data" \
    --listen "127.0.0.1:$port" >"$OUT/$label-server-$r.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
  local before; before=$(cpu_of "$pid")
  (cd "$tree" && node --import tsx bench/gateway.ts --endpoint "http://127.0.0.1:$port" \
    --access-key $ACCESS --secret-key $SECRET --objects "$OBJECTS" --null-requests 0 \
    --json "$OUT/$label-gateway-$r.json" >"$OUT/$label-gateway-$r.txt" 2>&1)
  local after; after=$(cpu_of "$pid")
  echo "{\"serverCpuTicks\": $((after - before)), \"ticksPerSecond\": $(getconf CLK_TCK), \"requests\": $((2 * OBJECTS))}" \
    >"$OUT/$label-gateway-cpu-$r.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

for r in $(seq 1 "$ROUNDS"); do
  for pair in "A:$A" "B:$B"; do
    label=${pair%%:*}; tree=${pair#*:}
    echo "round $r build $label ($tree)"
    (cd "$tree" && node --expose-gc --import tsx bench/engine.ts --needles "$NEEDLES" \
      --index-needles 1000000 --json "$OUT/$label-engine-$r.json" >"$OUT/$label-engine-$r.txt" 2>&1)
    gateway_round "$tree" "$label" "$r"
    (cd "$tree" && node --import tsx bench/directory.ts --keys "$KEYS" --concurrency 2048 \
      --commit-duration 10 --commit-targets leader --random-pages 200 --walk-pages 50 \
      --json "$OUT/$label-directory-$r.json" >"$OUT/$label-directory-$r.txt" 2>&1)
  done
done
echo "done: $OUT"
