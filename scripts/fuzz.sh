#!/usr/bin/env bash
# Runs every native Go fuzz target of the module, one after another, each
# for FUZZTIME, and prints a table: target, package, executions, new
# interesting inputs, crashes. Exits 1 if any target crashed; go test then
# leaves the crasher in <package>/testdata/fuzz/<target>/, where every plain
# go test (make test) replays it until it is fixed.
#
#   scripts/fuzz.sh                      # every target, 1m each
#   FUZZTIME=2m scripts/fuzz.sh          # longer
#   FUZZ='Parse' scripts/fuzz.sh         # only targets matching a regexp
#   FUZZFLAGS='-parallel=1' scripts/fuzz.sh   # extra go test flags (one core)
#
# Not part of make test: it takes FUZZTIME per target. The seed corpora
# (f.Add and testdata/fuzz) run in make test anyway, as ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-1m}"
FUZZ="${FUZZ:-.}"
read -r -a extra <<<"${FUZZFLAGS:-}"

logs="$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")"
trap 'rm -rf "$logs"' EXIT
# Fuzz workers are stopped rather than returned from, so a target's
# t.TempDir (FuzzAPI's stores) can outlive them: theirs is removed with ours.
mkdir "$logs/tmp"

# go test -list prints a package's matching names, then "ok <pkg> <time>".
if ! go test -list '^Fuzz' ./... >"$logs/list" 2>&1; then
  cat "$logs/list" >&2
  exit 1
fi
targets=()
names=()
while IFS= read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    ok*)
      pkg="$(awk '{print $2}' <<<"$line")"
      for n in "${names[@]}"; do
        grep -Eq -- "$FUZZ" <<<"$n" && targets+=("$pkg $n")
      done
      names=()
      ;;
  esac
done <"$logs/list"

if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz.sh: no target matches FUZZ=$FUZZ" >&2
  exit 1
fi

rows=()
failed=0
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  log="$logs/$name.log"
  echo "fuzz.sh: $name ($pkg) for $FUZZTIME" >&2
  rc=0
  TMPDIR="$logs/tmp" go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" ${extra[@]+"${extra[@]}"} "$pkg" >"$log" 2>&1 || rc=$?
  # The last progress line has the totals: "execs: N (...), new interesting: K (total: T)".
  execs="$(grep -a 'execs: ' "$log" | tail -1 | sed -E 's/.*execs: ([0-9]+).*/\1/' || true)"
  interesting="$(grep -a 'new interesting: ' "$log" | tail -1 | sed -E 's/.*new interesting: ([0-9]+).*/\1/' || true)"
  crashed=0
  if [ "$rc" -ne 0 ]; then
    crashed=1
    failed=1
    echo "fuzz.sh: $name FAILED; its output:" >&2
    grep -av '^fuzz: elapsed' "$log" | tail -40 >&2
  fi
  rows+=("$name|${pkg#github.com/ferryhq/ferry/}|${execs:-0}|${interesting:-0}|$crashed")
done

printf '\n| target | package | executions | new interesting | crashes |\n|---|---|---:|---:|---:|\n'
for r in "${rows[@]}"; do
  IFS='|' read -r name pkg execs interesting crashed <<<"$r"
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$pkg" "$execs" "$interesting" "$crashed"
done
printf '\nFUZZTIME=%s, %d targets, go %s, %s\n' "$FUZZTIME" "${#rows[@]}" "$(go env GOVERSION)" "$(date -u +%Y-%m-%dT%H:%MZ)"
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: a target crashed; the failing input is under its package's testdata/fuzz/ and go test replays it" >&2
  exit 1
fi
