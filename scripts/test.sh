#!/bin/sh
# Builds kvaudit twice (warnings as errors; then AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every test (unit, end-to-end, docs) in both builds.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DKVAUDIT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
cmake -S . -B build-asan -DKVAUDIT_WERROR=ON -DKVAUDIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j"$jobs"
