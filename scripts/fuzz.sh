#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/) with clang, ASan and UBSan, replays
# every saved regression input, then fuzzes each target for SECONDS (default 60)
# starting from a temporary copy of its committed seed corpus (the repository is
# never modified).  Exits non-zero when any regression or fuzz run fails, after
# printing the input that did it.
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment: CC (default clang), KVAUDIT_FUZZ_BUILD (build directory, default
# build-fuzz), KVAUDIT_FUZZ_TARGETS (space-separated subset), KVAUDIT_FUZZ_ARTIFACTS
# (where crash inputs and logs are kept, default $KVAUDIT_FUZZ_BUILD/artifacts).
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
build=${KVAUDIT_FUZZ_BUILD:-$root/build-fuzz}
targets=${KVAUDIT_FUZZ_TARGETS:-fuzz_estate fuzz_rule fuzz_parse fuzz_url fuzz_jwt fuzz_escape fuzz_fastjson}
artifacts=${KVAUDIT_FUZZ_ARTIFACTS:-$build/artifacts}
jobs=$(nproc 2>/dev/null || echo 2)

CC=${CC:-clang} cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DKVAUDIT_FUZZ=ON -DKVAUDIT_SANITIZE=ON -DKVAUDIT_TESTS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/kvaudit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$artifacts"

# Every finding stops the process (no recovery) and libFuzzer's leak check is on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# What went wrong, from a libFuzzer log: the sanitizer's or invariant's message and the
# stack frames in kvaudit's own code.
excerpt() {
	grep -E 'fuzz invariant|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY' "$1" |
		sort -u | head -6 || true
	grep -E "^ +#[0-9]+ 0x[0-9a-f]+ in [^ ]+ $root/[^ ]*\\.c" "$1" | grep -v 'fuzz_common.h' | head -10 || true
}

failed=0
for t in $targets; do
	bin=$build/tests/fuzz/$t
	log=$artifacts/$t.log

	# 1. Regressions: each saved input must now run clean.
	if [ -d "$root/tests/fuzz/regressions/$t" ]; then
		for f in "$root/tests/fuzz/regressions/$t"/*; do
			[ -f "$f" ] || continue
			if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$f" >"$log" 2>&1; then
				echo "FAIL $t: regression input $f still fails:" >&2
				excerpt "$log" >&2
				failed=1
			fi
		done
	fi

	# 2. Fuzzing from a scratch copy of the seed corpus.
	mkdir -p "$work/$t"
	cp "$root/tests/fuzz/corpus/$t/"* "$work/$t/" 2>/dev/null || true
	if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t-" "$work/$t" >"$log" 2>&1; then
		printf 'ok   %-12s %s\n' "$t" "$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1)"
	else
		echo "FAIL $t: fuzzing found a problem (log: $log)" >&2
		excerpt "$log" >&2
		grep -E 'Test unit written to' "$log" | sed 's/.*written to /crash input: /' | sort -u >&2 || true
		failed=1
	fi
done
exit $failed
