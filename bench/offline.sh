#!/usr/bin/env bash
# The offline audit of large generated snapshots (issue 5: "offline audit of 50k VMs under 3 s and
# 500 MB peak RSS"): wall time, user and system CPU and peak RSS of
#   kvaudit audit SNAPSHOT --out REPORT.json -q      (load + rules + JSON report)
#   kvaudit inventory SNAPSHOT --format csv          (mostly the load: no rules, no report)
# per size, and with --base BIN the same for another build, whose JSON report must then be the same
# byte for byte but for its generatedAt line. Not part of the test suite. docs/performance.md has results.
#
#   bench/offline.sh [--bin PATH] [--base PATH] [--sizes "10k 50k"] [--workdir DIR] [--perf] [--keep]
#
#   --bin PATH     kvaudit to measure (default: build-bench/kvaudit, else build/kvaudit)
#   --base PATH    a second kvaudit (e.g. a build of an older tree) to compare with
#   --sizes LIST   snapshot sizes: 1k (10 subscriptions), 10k (50), 50k (200); default "10k 50k"
#   --workdir DIR  where snapshots and reports go (default: a new /tmp/kvaudit-offline.XXXXXX);
#                  snapshots already there are reused (generating 50k takes about a minute)
#   --perf         also `perf record` the audit of the smallest size and print where its time goes
#   --keep         keep the work directory
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=""
BASE=""
SIZES="10k 50k"
WORK=""
PERF=0
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) BIN=$2; shift ;;
	--base) BASE=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--workdir) WORK=$2; shift ;;
	--perf) PERF=1 ;;
	--keep) KEEP=1 ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "offline.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$BIN" ]; then
	if [ -x "$ROOT/build-bench/kvaudit" ]; then BIN=$ROOT/build-bench/kvaudit; else BIN=$ROOT/build/kvaudit; fi
fi
[ -x "$BIN" ] || { echo "offline.sh: no kvaudit binary at $BIN (build one, or --bin)" >&2; exit 2; }
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "offline.sh: no kvaudit binary at $BASE" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "offline.sh: needs GNU time at /usr/bin/time" >&2; exit 2; }

if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/kvaudit-offline.XXXXXX); elif [ "$KEEP" = 0 ]; then KEEP=1; fi
mkdir -p "$WORK"
trap '[ "$KEEP" = 1 ] && echo "work directory kept: $WORK" >&2 || rm -rf "$WORK"' EXIT

shape() {  # size -> "vms subs tenants" (the sizes of bench/run.sh)
	case "$1" in
	1k) echo "1000 10 2" ;;
	10k) echo "10000 50 2" ;;
	50k) echo "50000 200 3" ;;
	*) echo "offline.sh: unknown size $1" >&2; exit 2 ;;
	esac
}

ROWS=()
measure() {  # label bin size kind
	local label=$1 bin=$2 size=$3 kind=$4 f=$WORK/estate-$3.json out rc=0
	if [ "$kind" = audit ]; then
		out=$WORK/report-$size-$label.json
		/usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" "$bin" audit "$f" --out "$out" -q \
			>/dev/null 2>"$WORK/err.txt" || rc=$?
	else
		out=$WORK/inventory-$size-$label.csv
		/usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" "$bin" inventory "$f" --format csv \
			>"$out" 2>"$WORK/err.txt" || rc=$?
	fi
	read -r wall user sys rss < <(tail -n1 "$WORK/time.txt")
	ROWS+=("$(printf '%-6s %-10s %-5s %8s %8s %7s %8s %5s  %s' "$label" "$kind" "$size" "$wall" "$user" "$sys" \
		"$(( rss / 1024 ))" "$rc" "$(( $(stat -c %s "$out") / 1048576 )) MB out")")
}

for size in $SIZES; do
	f=$WORK/estate-$size.json
	if [ ! -f "$f" ]; then
		read -r vms subs ten <<<"$(shape "$size")"
		python3 "$ROOT/bench/gen_estate.py" --vms "$vms" --subs "$subs" --tenants "$ten" --seed 1 --out "$f"
	fi
	cat "$f" >/dev/null   # into the page cache: every run reads it from memory
	measure new "$BIN" "$size" audit
	measure new "$BIN" "$size" inventory
	if [ -n "$BASE" ]; then
		measure base "$BASE" "$size" audit
		measure base "$BASE" "$size" inventory
		if diff <(grep -v '"generatedAt"' "$WORK/report-$size-base.json") \
		        <(grep -v '"generatedAt"' "$WORK/report-$size-new.json") >/dev/null &&
		   cmp -s "$WORK/inventory-$size-base.csv" "$WORK/inventory-$size-new.csv"; then
			ROWS+=("       $size: the two builds wrote the same report and inventory")
		else
			ROWS+=("       $size: THE REPORTS DIFFER ($WORK/report-$size-{base,new}.json)")
		fi
	fi
done

if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
	small=${SIZES%% *}
	perf record -q --call-graph dwarf -F 199 -o "$WORK/perf.data" \
		"$BIN" audit "$WORK/estate-$small.json" --out "$WORK/report-perf.json" -q >/dev/null 2>&1 || true
	echo "perf, audit of $small (inclusive, functions of 3% or more):"
	perf report -i "$WORK/perf.data" --children --percent-limit 3 --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | grep -v ' 0x0000' | head -40
fi

echo
echo "$("$BIN" --version 2>/dev/null | head -1) on $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-10s %-5s %8s %8s %7s %8s %5s  %s\n' build command size "wall s" "user s" "sys s" "RSS MB" exit output
for r in "${ROWS[@]}"; do echo "$r"; done
echo "(exit 1 = failing findings, as expected)"
