#!/usr/bin/env bash
# make bench: the comparison benchmarks, side by side in one run each, on
# the real Redis and MinIO that scripts/test.sh starts (it builds MinIO
# the first time), and a summary of the ratios that matter:
#   uploads   direct aws-sdk multipart, tusd v2.10.1's own handler + S3 store,
#             Ferry native, Ferry tus, at 1, 8 and 64 MiB chunks, and the S3
#             requests per chunk of tusd and Ferry
#   capped    one 256 MiB file where every connection is capped (a pacing
#             proxy in front of S3, ferryd and tusd; FERRY_BENCH_CAP_MIB,
#             default 24 MiB/s each way): direct multipart with 8 parts in
#             flight, Ferry's sequential upload and its parallel parts (8 in
#             flight), tus-js-client's parallelUploads against tusd and
#             against Ferry
#   downloads proxied and presigned through ferryd vs direct GetObject, and
#             the CPU ferryd spends per GiB it proxies
#   creates   session creates per second and p50/p99 from 32 clients, for
#             files held back whole (Redis only) and multipart ones (+ S3),
#             and with rate limits off and on
#   memory    ferryd's peak RSS with 100 concurrent uploads
# The raw go test output is kept in $BENCH_OUT (default bench.out).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BENCH_OUT:-bench.out}"
: >"$out"
load=$(cut -d' ' -f1-3 /proc/loadavg)
export FERRY_TEST_S3_SERVER=minio # installed by scripts/test.sh the first time (about 6 minutes)
run() { CI=1 scripts/test.sh -count=1 -run '^$' "$@" 2>&1 | tee -a "$out" | grep -E '^(Benchmark|ok|FAIL|---)' >&2; }

run -bench '^BenchmarkUploads$' -benchtime "${BENCH_UPLOADS:-4x}" ./tus/
run -bench '^BenchmarkCappedLink$' -benchtime 1x ./tus/
# The same rows with no cap to speak of: parallel parts must not cost
# throughput where one connection already fills the link.
FERRY_BENCH_CAP_MIB=100000 run -bench '^BenchmarkCappedLink$' -benchtime 1x ./tus/
run -bench '^BenchmarkDownload(Embedded)?$' -benchtime "${BENCH_DOWNLOADS:-20x}" ./cmd/ferryd/
run -bench '^BenchmarkSessionCreates$' -benchtime 1x ./cmd/ferryd/
run -bench '^BenchmarkSessionCreateLimits$' ./cmd/ferryd/
run -bench '^BenchmarkConcurrentUploadsRSS$' -benchtime 1x ./cmd/ferryd/

# metric NAME LINE: the value go test printed before the unit NAME.
metric() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' <<<"$2" | head -1; }
echo
server=$(grep -oE '^test.sh: (minio|versitygw)' "$out" | head -1 | sed 's/^test.sh: //')
echo "S3 server: ${server:-unknown}, Redis $(redis-server --version | grep -oE 'v=[0-9.]+' | cut -c3-), $(nproc) cores, $(go env GOVERSION), load before: $load"
echo
echo "| uploads, 64 MiB | tusd/direct | Ferry native/direct | Ferry tus/direct | S3 requests per chunk: tusd (reads) | Ferry (reads) |"
echo "|---|---|---|---|---|---|"
grep -E '^BenchmarkUploads/' "$out" | while read -r line; do
  chunk=$(sed -E 's/^BenchmarkUploads\/chunk=([0-9]+MiB).*/\1/' <<<"$line")
  echo "| $chunk chunks | $(metric tusd/direct "$line") | $(metric native/direct "$line") | $(metric ferrytus/direct "$line") |" \
    "$(metric tusd_s3/chunk "$line") ($(metric tusd_s3reads/chunk "$line")) | $(metric ferry_s3/chunk "$line") ($(metric ferry_s3reads/chunk "$line")) |"
done
line=$(grep -E '^BenchmarkCappedLink' "$out" | head -1)
echo
echo "| capped link: 256 MiB in 8 MiB parts, $(metric cap_MiB/s "$line") MiB/s per connection each way | MiB/s | ÷ direct | ÷ cap | goal (issue 25) |"
echo "|---|---|---|---|---|"
# capped NAME LABEL GOAL: a row's figures.
capped() {
  local ratio=1
  [ "$1" = direct ] || ratio=$(metric "$1/direct" "$line")
  echo "| $2 | $(metric "$1_MiB/s" "$line") | $ratio | $(metric "$1/cap" "$line") | $3 |"
}
capped direct "aws-sdk multipart, 8 parts in flight, straight to S3" ""
capped ferry_seq "Ferry, Go client, sequential (\`ferry upload\`)" ""
capped ferry_par "Ferry, Go client, 8 parts in flight" "≥ 0.8 ÷ direct, ≥ 4 × sequential"
capped tusd_par "tusd v2.10.1 + s3store, tus-js-client 4 \`parallelUploads: 4\`" ""
capped ferrytus_par "Ferry /v1/tus/, tus-js-client 4 \`parallelUploads: 4\`" "≥ 2.5 ÷ cap"
echo "Ferry parallel ÷ Ferry sequential: $(metric ferry_par/ferry_seq "$line") (goal ≥ 4)"
line=$(grep -E '^BenchmarkCappedLink' "$out" | tail -1)
echo
echo "| the same, uncapped (loopback) | MiB/s | ÷ direct |"
echo "|---|---|---|"
for row in direct ferry_seq ferry_par tusd_par ferrytus_par; do
  ratio=1
  [ "$row" = direct ] || ratio=$(metric "$row/direct" "$line")
  echo "| $row | $(metric "${row}_MiB/s" "$line") | $ratio |"
done
echo "Ferry parallel ÷ Ferry sequential, uncapped: $(metric ferry_par/ferry_seq "$line") (goal ≥ 1)"
line=$(grep -E '^BenchmarkDownload-' "$out" | head -1)
embedded=$(grep -E '^BenchmarkDownloadEmbedded' "$out" | head -1)
echo
echo "| downloads, 64 MiB | MiB/s | ÷ direct GetObject | ferryd CPU per GiB |"
echo "|---|---|---|---|"
echo "| direct GetObject | $(metric direct_MiB/s "$line") | 1 | |"
echo "| through ferryd, proxied | $(metric ferry_MiB/s "$line") | $(metric ferry/direct "$line") | $(metric ferryd_cpu_ms/GiB "$line") ms |"
echo "| through ferryd, presigned redirect | $(metric presigned_MiB/s "$line") | $(metric presigned/direct "$line") | |"
echo "| through ferryd, embedded stores (sendfile) | $(metric ferry_MiB/s "$embedded") | | $(metric ferryd_cpu_ms/GiB "$embedded") ms |"
echo
echo "| session creates, 32 clients, Redis + S3, limits off | creates/s | p50 | p99 |"
echo "|---|---|---|---|"
grep -E '^BenchmarkSessionCreates/' "$out" | while read -r line; do
  size=$(sed -E 's/^BenchmarkSessionCreates\/size=([0-9]+MiB).*/\1/' <<<"$line")
  echo "| $size files | $(metric creates/s "$line") | $(metric p50_ms "$line") ms | $(metric p99_ms "$line") ms |"
done
echo
echo "| session creates, 8 clients, taking turns | creates/s |"
echo "|---|---|"
grep -E '^BenchmarkSessionCreateLimits' "$out" | while read -r line; do
  echo "| $(awk '{print $1}' <<<"$line" | sed 's/BenchmarkSessionCreateLimits\///; s/-[0-9]*$//') | $(metric creates/s "$line") |"
done
echo
echo "| 100 concurrent uploads | peak RSS (MiB) | MiB/s |"
echo "|---|---|---|"
grep -E '^BenchmarkConcurrentUploadsRSS/' "$out" | while read -r line; do
  echo "| $(awk '{print $1}' <<<"$line" | sed 's/BenchmarkConcurrentUploadsRSS\///; s/-[0-9]*$//') | $(metric peak_RSS_MiB "$line") | $(metric MiB/s "$line") |"
done
