#!/usr/bin/env bash
# The scheduling loop's micro benchmark (issue 5): bench/sched_loop.c, 20k GETs queued on one
# throttled subscription and 50 others with 20 GETs each, against a local HTTP server. Prints the
# program's line, its CPU time and, with --callgrind, the instructions callgrind counts for the client
# (independent of the machine's load). Not part of the test suite.
#
#   bench/sched.sh [--build DIR] [--callgrind] [-- sched_loop options]
#
#   --build DIR   a CMake build directory of kvaudit (default build-rel); its libkvcore.a is linked,
#                 so pointing it at a build of an older tree compares before and after
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-rel
CALLGRIND=0
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$(cd "$2" && pwd); shift ;;
	--callgrind) CALLGRIND=1 ;;
	--) shift; break ;;
	-h|--help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "bench/sched.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -f "$BUILD/libkvcore.a" ] || { echo "bench/sched.sh: no libkvcore.a in $BUILD: build kvaudit there first" >&2; exit 2; }
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
OUT=$(mktemp -d /tmp/kvaudit-sched-bench-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
# The headers of the tree the library was built from; the program itself uses only http.h.
cc -std=c17 -O2 -D_GNU_SOURCE -I"$SRC" -o "$OUT/sched_loop" "$ROOT/bench/sched_loop.c" "$BUILD/libkvcore.a" \
	$(pkg-config --libs libcurl openssl libcjson libpcre2-8) -lm
echo "== $BUILD ($SRC)"
/usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KB" "$OUT/sched_loop" "$@"
if [ "$CALLGRIND" = 1 ]; then
	valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$OUT/sched_loop" "$@" 2>"$OUT/cg.err" >/dev/null
	echo "callgrind: $(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$OUT/cg.err") instructions (the client only)"
fi
