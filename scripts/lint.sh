#!/bin/sh
# Static analysis of kvaudit's own C code (audit/, rules/, reports/): clang-tidy with the checks
# in .clang-tidy and cppcheck with the flags below and the suppressions in .cppcheck-suppressions,
# both driven by the build's compile_commands.json.  Any finding of either fails (exit 1).
#
#   scripts/lint.sh [BUILD_DIR]      default: build (configured here if it has no compile_commands.json)
#
# Environment: KVAUDIT_LINT_JOBS (parallel clang-tidy processes, default nproc),
# CLANG_TIDY (default clang-tidy), CPPCHECK (default cppcheck).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
jobs=${KVAUDIT_LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
tidy=${CLANG_TIDY:-clang-tidy}
cppcheck=${CPPCHECK:-cppcheck}

if [ ! -f "$build/compile_commands.json" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# The embedded catalog (catalog_data.c) is generated; clang-tidy needs it to exist.
cmake --build "$build" --target kvcore -j "$jobs" >/dev/null

cd "$root"
files=$(find audit rules reports -name '*.c' | LC_ALL=C sort)
out=$(mktemp "${TMPDIR:-/tmp}/kvaudit-lint.XXXXXX")
trap 'rm -f "$out"' EXIT
status=0

echo "clang-tidy ($($tidy --version | sed -n 's/.*LLVM version //p' | head -n 1)), $(echo "$files" | wc -l) files"
# shellcheck disable=SC2086
if ! printf '%s\n' $files | xargs -P "$jobs" -n 4 "$tidy" -p "$build" --quiet >"$out" 2>&1; then
	status=1
fi
if grep -q 'warning:\|error:' "$out"; then
	grep -A3 'warning:\|error:' "$out"
	echo "clang-tidy: $(grep -c 'warning:\|error:' "$out") finding(s)" >&2
	status=1
fi

echo "cppcheck ($($cppcheck --version))"
# --project takes the compiler flags (defines, include paths) from the build; the file filter keeps
# it to kvaudit's own sources (not tests, not the generated catalog).
if ! "$cppcheck" --project="$build/compile_commands.json" --file-filter="$root/audit/*" \
	--file-filter="$root/rules/*" --file-filter="$root/reports/*" \
	--enable=warning,performance,portability --std=c11 --library=posix \
	--library="$root/scripts/cppcheck-cjson.cfg" \
	--inline-suppr --suppressions-list="$root/.cppcheck-suppressions" \
	--error-exitcode=1 --quiet -j "$jobs" \
	--template='{file}:{line}: {severity}: {message} [{id}]' 2>"$out"; then
	status=1
fi
if [ -s "$out" ]; then
	cat "$out"
	status=1
fi

if [ "$status" -eq 0 ]; then
	echo "lint: clean"
else
	echo "lint: findings above" >&2
fi
exit "$status"
