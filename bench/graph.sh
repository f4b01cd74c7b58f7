#!/usr/bin/env bash
# The Resource Graph engine's benchmark (issue 5): kvaudit scan --engine graph against the test
# emulator with injected latency, ARM's token buckets and Resource Graph's user quota, next to the
# ARM engine on the same scenario. Prints one table. Not part of the test suite.
#
#   bench/graph.sh [--bin PATH] [--size 1k|10k|50k] [--latency-ms 30] [--quota 15/5|none]
#                  [--engines "graph arm"] [--keep]
#
#   --quota Q/S   Resource Graph's user quota: Q queries per S seconds (default 15/5, the documented
#                 example), enforced with 429; "none" turns it off
#   scenarios come from bench/gen_estate.py (seed 1): 1k = 1000 VMs / 10 subscriptions,
#   10k = 10000 / 50, 50k = 50000 / 200
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=""
SIZE=10k
LATENCY=30
QUOTA=15/5
ENGINES="graph arm"
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) BIN=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--latency-ms) LATENCY=$2; shift ;;
	--quota) QUOTA=$2; shift ;;
	--engines) ENGINES=$2; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "graph.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$BIN" ]; then
	if [ -x "$ROOT/build-bench/kvaudit" ]; then BIN=$ROOT/build-bench/kvaudit; else BIN=$ROOT/build/kvaudit; fi
fi
[ -x "$BIN" ] || { echo "graph.sh: no kvaudit binary at $BIN" >&2; exit 2; }
case "$SIZE" in
1k) VMS=1000 SUBS=10 TEN=2 ;;
10k) VMS=10000 SUBS=50 TEN=2 ;;
50k) VMS=50000 SUBS=200 TEN=3 ;;
*) echo "graph.sh: unknown size $SIZE" >&2; exit 2 ;;
esac
WORK=$(mktemp -d /tmp/kvaudit-graph-bench.XXXXXX)
EMU_PID=""
cleanup() {
	if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then kill "$EMU_PID" 2>/dev/null || true; fi
	if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT

python3 "$ROOT/bench/gen_estate.py" --vms "$VMS" --subs "$SUBS" --tenants "$TEN" --seed 1 --page-size 100 \
	--out "$WORK/estate.json" --scenario "$WORK/scenario.json"
quota=""
if [ "$QUOTA" != none ]; then
	quota="\"graphQuota\": {\"queries\": ${QUOTA%/*}, \"seconds\": ${QUOTA#*/}},"
fi
cat >"$WORK/overlay.json" <<JSON
{"emulator": {"pageSize": 100, $quota "armThrottle": {"reads": 250, "refillPerSec": 25},
  "faults": [{"match": {"pathRegex": "."}, "times": 0, "latencyMs": $LATENCY}]}}
JSON

D=$WORK/emu
mkdir -p "$D"
python3 "$ROOT/tests/emulator/emulator.py" --scenario "$WORK/scenario.json" --overlay "$WORK/overlay.json" \
	--workdir "$D" --max-seconds 3600 2>"$D/emulator.err" &
EMU_PID=$!
for _ in $(seq 1 6000); do [ -f "$D/ready" ] && break; sleep 0.1; done
[ -f "$D/ready" ] || { echo "graph.sh: emulator did not start" >&2; cat "$D/emulator.err" >&2; exit 1; }
PORT=$(cat "$D/ready")

# The emulator's own CPU (user + sys, from /proc/PID/stat) during each scan, and the floor of each
# engine's requests (bench/floor.py: requests x latency / 32, kvaudit's default concurrency, and for
# the graph engine at least Resource Graph's quota floor).
HZ=$(getconf CLK_TCK)
emu_cpu() { awk '{print $14 + $15}' "/proc/$EMU_PID/stat"; }
floor() {  # engine -> seconds
	local model=arm-ids n q=0
	[ "$1" = graph ] && model=graph
	n=$(python3 "$ROOT/bench/floor.py" "$WORK/estate.json" --page-size 100 --emit "$model")
	if [ "$1" = graph ] && [ "$QUOTA" != none ]; then
		q=$(python3 "$ROOT/bench/floor.py" "$WORK/estate.json" --quota "$QUOTA" --emit graph-quota-floor)
	fi
	python3 -c "import sys; print('%.1f' % max(int(sys.argv[1]) * float(sys.argv[2]) / 1000 / 32, float(sys.argv[3])))" \
		"$n" "$LATENCY" "$q"
}
printf '%-40s %7s %7s %6s %7s %7s %8s %5s %4s  %s\n' case "wall s" "user s" "sys s" "emu s" "RSS MB" requests 429s exit notes
for eng in $ENGINES; do
	curl -s --cacert "$D/ca.pem" -X DELETE "https://127.0.0.1:$PORT/_emulator/log" >/dev/null
	rc=0
	cpu0=$(emu_cpu)
	(
		. "$D/env.sh"
		/usr/bin/time -f '%e %U %S %M' -o "$WORK/time-$eng.txt" \
			"$BIN" scan --cloud "$D/cloud.json" --engine "$eng" -q --out "$WORK/report-$eng.json" \
			>/dev/null 2>"$WORK/scan-$eng.err"
	) || rc=$?
	emu=$(python3 -c "import sys; print('%.2f' % ((int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3])))" \
		"$cpu0" "$(emu_cpu)" "$HZ")
	curl -s --cacert "$D/ca.pem" "https://127.0.0.1:$PORT/_emulator/log" >"$WORK/log-$eng.json"
	read -r wall user sys rss < <(tail -n1 "$WORK/time-$eng.txt")
	notes=$(python3 - "$WORK/log-$eng.json" "$WORK/report-$eng.json" <<'PY'
import collections, json, sys
log = json.load(open(sys.argv[1]))
k = collections.Counter()
for e in log:
    p = e["path"].lower()
    if "resourcegraph" in p: k["resourceGraph"] += 1
    elif "statusonly=true" in e.get("query", "").lower(): k["statusOnly"] += 1
    elif "roleassignments" in p: k["roleAssignments"] += 1
    elif "backupprotecteditems" in p: k["protectedItems"] += 1
    elif e.get("surface") == "arm": k["otherArm"] += 1
    else: k[e.get("surface") or "?"] += 1
r = json.load(open(sys.argv[2]))
print(len(log), sum(1 for e in log if e.get("status") == 429),
      "findings=%d" % sum(r["summary"]["byStatus"].values()),
      " ".join("%s=%d" % kv for kv in sorted(k.items())))
PY
)
	read -r nreq n429 rest <<<"$notes"
	printf '%-40s %7s %7s %6s %7s %7s %8s %5s %4s  %s\n' "scan $SIZE/${SUBS}subs ${LATENCY}ms $eng q=$QUOTA" \
		"$wall" "$user" "$sys" "$emu" "$((rss / 1024))" "$nreq" "$n429" "$rc" "floor=$(floor "$eng")s $rest"
	# When each kind of request ran (seconds from the first request's start, as the emulator logged
	# them: start and duration), the last one's end, and kvaudit's exit (its wall time, from its start).
	python3 - "$WORK/log-$eng.json" "$wall" <<'PY'
import collections, datetime, json, re, sys
log = json.load(open(sys.argv[1]))
start = lambda e: datetime.datetime.fromisoformat(e["time"][:26]).timestamp()
t0 = min(map(start, log))
kinds = collections.defaultdict(list)
for e in log:
    p, q = e["path"].lower(), e.get("query", "").lower()
    m = re.search(r"(resourcegraph|roleassignments|backupprotecteditems|backupjobs|backuppolicies|eventtypes)", p)
    k = "statusOnly" if "statusonly=true" in q else m.group(1) if m else e.get("surface") or "?"
    kinds[k].append((start(e) - t0, start(e) - t0 + e.get("durationMs", 0) / 1000))
print("  timeline: " + ", ".join("%s %d starting %.2f-%.2f" % (k, len(v), min(v)[0], max(v)[0])
                                  for k, v in sorted(kinds.items(), key=lambda kv: min(kv[1])[0]) if len(v) > 9) +
      "; last request ends %.2f; kvaudit exits at %s" % (max(x[1] for v in kinds.values() for x in v), sys.argv[2]))
PY
done
if [ -f "$WORK/report-graph.json" ] && [ -f "$WORK/report-arm.json" ]; then
	python3 - "$WORK/report-graph.json" "$WORK/report-arm.json" <<'PY'
import json, sys
k = lambda f: (f["rule"], f["status"], (f["vm"] or "").lower(), (f["vault"] or "").lower())
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print("same findings and counts from both engines:",
      sorted(map(k, a["findings"])) == sorted(map(k, b["findings"])) and
      a["summary"]["byStatus"] == b["summary"]["byStatus"])
PY
fi
curl -s --cacert "$D/ca.pem" -X POST "https://127.0.0.1:$PORT/_emulator/shutdown" >/dev/null || true
wait "$EMU_PID" 2>/dev/null || true
EMU_PID=""
