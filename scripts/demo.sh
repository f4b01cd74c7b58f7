#!/bin/sh
# Builds kvaudit and audits the bundled demo estate (examples/demo-estate.json).
# Reports (JSON, CSV, HTML) land in build/demo-reports/; the summary goes to the terminal.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
rc=0
./build/kvaudit audit examples/demo-estate.json --format json,csv,html --out build/demo-reports/ -v || rc=$?
echo "kvaudit exited with $rc (1 = failing findings, as the demo intends)"
[ "$rc" -eq 1 ]
