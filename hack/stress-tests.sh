#!/usr/bin/env bash
# Hunts flaky tests: runs each integration, install and e2e ctest module N
# times in two modes, and prints a table of runs and failures per module.
#   alone   nothing else started by this script
#   loaded  stress-ng keeps all cores but one busy (one worker on a 2-core
#           machine), so timing assumptions that only hold on an idle machine
#           show up
# Rounds interleave the modes (round 1 alone over every module, round 1
# loaded, round 2 alone, ...), so a run cut short by --deadline or Ctrl-C still
# has comparable counts for every module; the table says exactly how many ran.
# A failed run's whole ctest output is kept; a failure is fixed at its cause,
# never by retrying (see docs/STYLE.md and tests/integration/conftest.py).
# Not part of hack/test.sh: it takes hours at the default N.
#
# Usage: hack/stress-tests.sh [options]
#   -n N               runs per module and mode (default 10)
#   -L LABELS          ctest labels, comma separated (default integration,install,e2e)
#   -R REGEX           only modules whose ctest name matches REGEX
#   -E REGEX           leave out modules whose ctest name matches REGEX
#   --modes LIST       alone,loaded (default both)
#   --build DIR        a built build directory (default build)
#   --out DIR          results and failure logs (default: a new /tmp/gantry-stress.XXXXXX)
#   --deadline TIME    start no run after TIME (anything `date -d` reads, e.g. 23:30)
#   --load-workers N   stress-ng CPU workers in loaded mode (default: cores - 1, at least 1)
#
# Output: DIR/results.tsv (one line per run: mode, module, round, result,
# seconds, load average at the start), DIR/failures/MODE.MODULE.ROUND.log, and
# the table on stdout (also DIR/table.txt). Exit status 1 when any run failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"

runs=10
labels="integration,install,e2e"
include=""
exclude=""
modes="alone,loaded"
build="build"
out=""
deadline=""
workers=$(( $(nproc) - 1 ))
(( workers >= 1 )) || workers=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "stress-tests: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs="$2"; shift 2 ;;
    -L) labels="$2"; shift 2 ;;
    -R) include="$2"; shift 2 ;;
    -E) exclude="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --deadline) deadline="$(date -d "$2" +%s)" || die "cannot read --deadline $2"; shift 2 ;;
    --load-workers) workers="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (--help)" ;;
  esac
done
[[ "$runs" =~ ^[0-9]+$ ]] || die "-n wants a number"
[ -f "$build/CTestTestfile.cmake" ] || die "$build is not a configured build directory"
for m in ${modes//,/ }; do
  case "$m" in alone|loaded) ;; *) die "unknown mode $m (alone, loaded)" ;; esac
done
if [[ ",$modes," == *",loaded,"* ]] && ! command -v stress-ng >/dev/null; then
  die "stress-ng is missing: hack/install-deps.sh installs it"
fi

# The kube tests need the testbin binaries; building them is a no-op once done.
if [ -z "${GANTRY_TESTBIN:-}" ]; then
  GANTRY_TESTBIN="$(bash hack/testbin.sh | tail -1)"
  export GANTRY_TESTBIN
fi

# The modules: ctest names with one of the labels, in ctest's order.
modules=()
for label in ${labels//,/ }; do
  while read -r name; do
    [ -n "$include" ] && ! [[ "$name" =~ $include ]] && continue
    [ -n "$exclude" ] && [[ "$name" =~ $exclude ]] && continue
    modules+=("$name")
  done < <(ctest --test-dir "$build" -N -L "^${label}\$" | sed -n 's/^ *Test *#[0-9]*: //p')
done
[ ${#modules[@]} -gt 0 ] || die "no module matches (labels $labels)"

if [ -z "$out" ]; then out="$(mktemp -d /tmp/gantry-stress.XXXXXX)"; fi
mkdir -p "$out/failures"
results="$out/results.tsv"
[ -f "$results" ] || printf 'mode\tmodule\tround\tresult\tseconds\tloadavg\n' > "$results"

stress_pid=""
stop_load() {
  if [ -n "$stress_pid" ]; then
    kill -TERM "$stress_pid" 2>/dev/null || true
    wait "$stress_pid" 2>/dev/null || true
    stress_pid=""
  fi
}
start_load() {
  stress-ng --cpu "$workers" --cpu-load 100 --timeout 0 --quiet &
  stress_pid=$!
}

table() {
  awk -F'\t' 'NR > 1 {
      k = $2 "\t" $1; if (!(k in runs)) order[n++] = k
      runs[k]++; if ($4 == "fail") fail[k]++; if ($4 == "skip") skip[k]++
      if ($5 > max[k]) max[k] = $5
    }
    END {
      printf "%-44s %-7s %5s %8s %7s %7s\n", "module", "mode", "runs", "failures", "skipped", "max s"
      for (i = 0; i < n; i++) {
        split(order[i], p, "\t")
        printf "%-44s %-7s %5d %8d %7d %7d\n", p[1], p[2], runs[order[i]], fail[order[i]], skip[order[i]], max[order[i]]
      }
    }' "$results" | tee "$out/table.txt"
  echo "results: $results"
  echo "failure logs: $out/failures ($(find "$out/failures" -name '*.log' | wc -l) files)"
}

finish() {
  stop_load
  table
}
trap 'finish; exit 130' INT TERM

echo "stress-tests: ${#modules[@]} modules x $runs runs x modes $modes; $(nproc) cores; results in $out"
failed=0
stopped_early=0
for ((round = 1; round <= runs; round++)); do
  for mode in ${modes//,/ }; do
    if [ "$mode" = loaded ]; then start_load; fi
    for name in "${modules[@]}"; do
      if [ -n "$deadline" ] && [ "$(date +%s)" -ge "$deadline" ]; then
        stopped_early=1
        break 3
      fi
      load="$(cut -d' ' -f1-3 /proc/loadavg)"
      log="$out/current.log"
      start=$(date +%s)
      rc=0
      ctest --test-dir "$build" --output-on-failure -R "^${name//./\\.}\$" > "$log" 2>&1 || rc=$?
      secs=$(( $(date +%s) - start ))
      result=pass
      if [ $rc -ne 0 ]; then
        result=fail
        failed=1
        mv "$log" "$out/failures/$mode.$name.$round.log"
      elif grep -q '\*\*\*Skipped\|Not Run' "$log"; then
        result=skip
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$name" "$round" "$result" "$secs" "$load" >> "$results"
      printf '%s round %d/%d %-8s %-44s %s (%ds, load %s)\n' \
        "$(date +%H:%M:%S)" "$round" "$runs" "$mode" "$name" "$result" "$secs" "$load"
    done
    if [ "$mode" = loaded ]; then stop_load; fi
  done
done
stop_load
rm -f "$out/current.log"
trap - INT TERM
if [ $stopped_early -eq 1 ]; then echo "stress-tests: --deadline reached; the table counts the runs that happened"; fi
table
exit $failed
