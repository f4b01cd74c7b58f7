#!/usr/bin/env bash
# kvaudit benchmarks (issue 5, "Benchmarks"): offline audit of generated snapshots and a live scan
# against the test emulator with added latency. Prints one table. Not part of the test suite.
#
#   bench/run.sh [--build] [--bin PATH] [--sizes "1k 10k 50k"] [--callgrind] [--live-10k] [--no-live]
#                [--latency-ms 30] [--page-size 100] [--keep] [--workdir DIR]
#                [--engine arm] [--concurrency 16] [--vm-list ids|full] [--no-throttle]
#
#   --build       configure + build a Release binary into build-bench/ first (separate build dir)
#   --bin PATH    the kvaudit binary (default: build-bench/kvaudit, else build/kvaudit)
#   --callgrind   also count instructions of the offline 10k audit under callgrind (slow; needs valgrind)
#   --live-10k    also run the live 10k VMs / 50 subscriptions scan (the emulator needs ~80 s to load it)
#   --live-50k    also the live 50k VMs / 200 subscriptions scan
#   --engine E    kvaudit scan --engine E (default arm); --concurrency N: its --concurrency (default 32, kvaudit's own)
#   --vm-list M   the emulator's VM list gives extensions as bare IDs (ids, default) or whole (full)
#   --no-throttle no ARM token buckets (default: 250 reads, 25/s per subscription and principal)
#   --no-live     offline only
#   --keep        keep the work directory (snapshots, reports, emulator logs)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=""
SIZES="1k 10k 50k"
CALLGRIND=0
LIVE=1
LIVE10K=0
LATENCY=30
PAGE=100
KEEP=0
BUILD=0
WORK=""
SEED=1
LIVE50K=0
ENGINE=arm
CONC=32
VMLIST=ids
THROTTLE=1
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=1 ;;
	--bin) BIN=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--callgrind) CALLGRIND=1 ;;
	--live-10k) LIVE10K=1 ;;
	--no-live) LIVE=0 ;;
	--latency-ms) LATENCY=$2; shift ;;
	--page-size) PAGE=$2; shift ;;
	--keep) KEEP=1 ;;
	--workdir) WORK=$2; shift ;;
	--live-50k) LIVE50K=1 ;;
	--engine) ENGINE=$2; shift ;;
	--concurrency) CONC=$2; shift ;;
	--vm-list) VMLIST=$2; shift ;;
	--no-throttle) THROTTLE=0 ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

if [ "$BUILD" = 1 ]; then
	cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DKVAUDIT_TESTS=OFF >/dev/null
	cmake --build "$ROOT/build-bench" -j2 >/dev/null
fi
if [ -z "$BIN" ]; then
	if [ -x "$ROOT/build-bench/kvaudit" ]; then BIN=$ROOT/build-bench/kvaudit; else BIN=$ROOT/build/kvaudit; fi
fi
[ -x "$BIN" ] || { echo "run.sh: no kvaudit binary at $BIN (use --build)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "run.sh: needs GNU time at /usr/bin/time" >&2; exit 2; }

if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/kvaudit-bench.XXXXXX); fi
mkdir -p "$WORK"
EMU_PID=""
cleanup() {
	if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then kill "$EMU_PID" 2>/dev/null || true; fi
	if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT

shape() {  # size -> "vms subs tenants"
	case "$1" in
	1k) echo "1000 10 2" ;;
	10k) echo "10000 50 2" ;;
	50k) echo "50000 200 3" ;;
	*) echo "run.sh: unknown size $1" >&2; exit 2 ;;
	esac
}

gen() {  # size [scenario] -> writes $WORK/estate-SIZE.json (and scenario-SIZE.json)
	local size=$1 sc=${2:-} vms subs ten
	read -r vms subs ten <<<"$(shape "$size")"
	if [ -n "$sc" ]; then
		[ -f "$WORK/scenario-$size.json" ] && return 0
		python3 "$ROOT/bench/gen_estate.py" --vms "$vms" --subs "$subs" --tenants "$ten" --seed "$SEED" \
			--page-size "$PAGE" --out "$WORK/estate-$size.json" --scenario "$WORK/scenario-$size.json"
	else
		[ -f "$WORK/estate-$size.json" ] && return 0
		python3 "$ROOT/bench/gen_estate.py" --vms "$vms" --subs "$subs" --tenants "$ten" --seed "$SEED" \
			--out "$WORK/estate-$size.json"
	fi
}

ROWS=()
row() { ROWS+=("$(printf '%-44s %8s %8s %7s %7s %9s %9s %5s %5s  %s' "$@")"); }

# ---------------------------------------------------------------------------------------------- offline
for size in $SIZES; do
	gen "$size"
	f=$WORK/estate-$size.json
	mb=$(( $(stat -c %s "$f") / 1048576 ))
	rc=0
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time-$size.txt" \
		"$BIN" audit "$f" --out "$WORK/report-$size.json" -q >/dev/null 2>"$WORK/audit-$size.err" || rc=$?
	read -r wall user sys rss < <(tail -n1 "$WORK/time-$size.txt")
	findings=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(sum(s['byStatus'].values()))" \
		"$WORK/report-$size.json" 2>/dev/null || echo "?")
	row "offline audit $size (${mb} MB)" "$wall" "$user" "$sys" "$(( rss / 1024 ))" "-" "-" "-" "$rc" "findings=$findings"
done

if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
	gen 10k
	valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.10k.out" \
		"$BIN" audit "$WORK/estate-10k.json" --out "$WORK/report-10k-cg.json" -q >/dev/null 2>"$WORK/callgrind.err" || true
	ir=$(grep -m1 '^summary:' "$WORK/callgrind.10k.out" | awk '{print $2}')
	row "callgrind audit 10k" "-" "-" "-" "-" "-" "-" "-" "-" "Ir=$ir ($WORK/callgrind.10k.out)"
fi

# ---------------------------------------------------------------------------------------------- live
live() {  # size
	local size=$1 D rc=0 port
	gen "$size" scenario
	D=$WORK/emu-$size
	rm -rf "$D"; mkdir -p "$D"
	local throttle=""
	[ "$THROTTLE" = 1 ] && throttle='"armThrottle": {"reads": 250, "refillPerSec": 25},'
	cat >"$WORK/overlay-latency.json" <<EOF
{"emulator": {"pageSize": $PAGE, $throttle "vmListExtensions": "$VMLIST",
  "faults": [{"match": {"pathRegex": "."}, "times": 0, "latencyMs": $LATENCY}]}}
EOF
	python3 "$ROOT/tests/emulator/emulator.py" --scenario "$WORK/scenario-$size.json" \
		--overlay "$WORK/overlay-latency.json" --workdir "$D" --max-seconds 3600 2>"$D/emulator.err" &
	EMU_PID=$!
	for _ in $(seq 1 6000); do [ -f "$D/ready" ] && break; sleep 0.1; done
	[ -f "$D/ready" ] || { echo "run.sh: emulator did not start (see $D/emulator.err)" >&2; cat "$D/emulator.err" >&2; exit 1; }
	port=$(cat "$D/ready")
	(
		# shellcheck disable=SC1091
		. "$D/env.sh"
		/usr/bin/time -f '%e %U %S %M' -o "$D/time.txt" \
			"$BIN" scan --cloud "$D/cloud.json" --engine "$ENGINE" --concurrency "$CONC" -q \
			--out "$D/report.json" >/dev/null 2>"$D/scan.err"
	) || rc=$?
	curl -s --cacert "$D/ca.pem" "https://127.0.0.1:$port/_emulator/log" >"$D/log.json"
	curl -s --cacert "$D/ca.pem" -X POST "https://127.0.0.1:$port/_emulator/shutdown" >/dev/null || true
	wait "$EMU_PID" 2>/dev/null || true
	EMU_PID=""
	read -r wall user sys rss < <(tail -n1 "$D/time.txt")
	python3 - "$D/log.json" "$LATENCY" >"$D/stats.txt" <<'EOF'
import collections, json, sys
log = json.load(open(sys.argv[1])); lat = float(sys.argv[2])
n = len(log)
n429 = sum(1 for e in log if e.get("status") == 429)
surf = collections.Counter(e.get("surface") for e in log)
kinds = collections.Counter()
for e in log:
    p = e["path"].lower()
    if e.get("surface") != "arm": kinds[e.get("surface")] += 1
    elif "/extensions/" in p: kinds["extGET"] += 1
    elif p.endswith("/extensions"): kinds["extList"] += 1
    elif "/virtualmachines/" in p: kinds["vmGET"] += 1
    elif p.endswith("/virtualmachines") and "statusonly=true" in e.get("query", "").lower(): kinds["vmStatusList"] += 1
    elif p.endswith("/virtualmachines"): kinds["vmList"] += 1
    elif p.endswith("/disks"): kinds["diskList"] += 1
    elif p.endswith("microsoft.keyvault/vaults"): kinds["kvList"] += 1
    elif "roleassignments" in p: kinds["raList"] += 1
    elif "roledefinitions" in p: kinds["rdGET"] += 1
    elif p.endswith("microsoft.recoveryservices/vaults"): kinds["rsvList"] += 1
    elif "backupprotecteditems" in p: kinds["itemsList"] += 1
    elif p.endswith("/subscriptions"): kinds["subList"] += 1
    elif p.endswith("/tenants"): kinds["tenantList"] += 1
    else: kinds["other"] += 1
srv = sum(e.get("durationMs", 0) for e in log) / 1000.0 - n * lat / 1000.0
# The ARM engine's own span: its first list to its last read (other areas read more after it).
import datetime, re
eng = re.compile(r"/providers/Microsoft\.(Compute/virtualMachines|Compute/disks|KeyVault/vaults|"
                 r"RecoveryServices/vaults|Authorization/roleAssignments)/?$|/backupProtectedItems/?$|"
                 r"/extensions(/[^/]+)?/?$", re.I)
def t(e):
    return datetime.datetime.strptime(e["time"][:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
span = [(t(e), t(e) + e.get("durationMs", 0) / 1000.0) for e in log if eng.search(e["path"])]
kinds["engineMs"] = int(1000 * (max(b for a, b in span) - min(a for a, b in span))) if span else 0
print(n, n429, "%.1f" % srv, " ".join("%s=%d" % kv for kv in sorted(kinds.items())))
EOF
	read -r nreq n429 srv detail <"$D/stats.txt"
	local vms subs ten model=lists floor
	read -r vms subs ten <<<"$(shape "$size")"
	local tag=" $ENGINE c=$CONC $VMLIST"
	[ "$THROTTLE" = 0 ] && tag="$tag nothrottle"
	[ "$VMLIST" = ids ] && model=arm-ids
	floor=$(python3 "$ROOT/bench/floor.py" "$WORK/estate-$size.json" --page-size "$PAGE" --emit "$model")
	floor=$(python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) * float(sys.argv[2]) / 1000 / int(sys.argv[3])))" \
		"$floor" "$LATENCY" "$CONC")
	row "live $size/${subs}subs ${LATENCY}ms$tag" "$wall" "$user" "$sys" "$(( rss / 1024 ))" "$nreq" "$n429" "$srv" "$rc" "floor=${floor}s $detail"
}
if [ "$LIVE" = 1 ]; then
	live 1k
	[ "$LIVE10K" = 1 ] && live 10k
	[ "$LIVE50K" = 1 ] && live 50k
fi

# ---------------------------------------------------------------------------------------------- table
echo
echo "kvaudit $("$BIN" --version 2>/dev/null | head -1) on $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-44s %8s %8s %7s %7s %9s %9s %5s %5s  %s\n' case "wall s" "user s" "sys s" "RSS MB" requests "429s" "srv s" exit notes
for r in "${ROWS[@]}"; do echo "$r"; done
echo "(srv s: emulator-side processing time summed over requests, excluding the injected latency;"
echo " exit: kvaudit's exit code, 1 = failing findings, expected)"
