#!/bin/sh
# kvaudit-nightly: one scheduled scan that alerts only on change.
#
# Scans live (credentials from the environment), writes the reports into
# $KVAUDIT_STATE_DIR/reports/kvaudit-<UTC time>.<ext>, and compares the new JSON report with
# the previous complete one ($KVAUDIT_STATE_DIR/last.json) through `kvaudit scan --baseline`:
# exit 1 only for failing findings that are NEW at or above the fail-on severity.  A complete
# scan (exit 0 or 1) becomes the next baseline; an incomplete one (exit 3) does not, so a
# transient outage cannot hide findings.  The first run has no baseline and exits 1 for every
# failing finding.
#
# Used by the systemd, cron and Kubernetes examples (examples/deploy/README.md).
#
# Environment:
#   KVAUDIT              the binary (default: kvaudit on PATH)
#   KVAUDIT_STATE_DIR    state and reports (default: $STATE_DIRECTORY from systemd's
#                        StateDirectory=, else /var/lib/kvaudit)
#   KVAUDIT_ENV_FILE     optional file of VAR=value lines (AZURE_*) to load first; it must not
#                        be readable by group or others
#   KVAUDIT_FAIL_ON      fail-on severity (default high)
#   KVAUDIT_FORMATS      report formats (default json,html,sarif,md)
#   KVAUDIT_KEEP_DAYS    delete reports older than this many days (default 90; 0 keeps all)
# Any arguments are passed to `kvaudit scan` (scope: --subscription ID, --cloud, --auth, ...).
set -eu

kvaudit=${KVAUDIT:-kvaudit}
state=${KVAUDIT_STATE_DIR:-${STATE_DIRECTORY:-/var/lib/kvaudit}}
fail_on=${KVAUDIT_FAIL_ON:-high}
formats=${KVAUDIT_FORMATS:-json,html,sarif,md}
keep_days=${KVAUDIT_KEEP_DAYS:-90}

if [ -n "${KVAUDIT_ENV_FILE:-}" ]; then
	if [ ! -r "$KVAUDIT_ENV_FILE" ] || [ -n "$(find "$KVAUDIT_ENV_FILE" -prune -perm /077)" ]; then
		echo "kvaudit-nightly: $KVAUDIT_ENV_FILE must be readable and mode 0600 or 0400" \
		     "(it holds credentials)" >&2
		exit 2
	fi
	set -a
	# shellcheck disable=SC1090
	. "$KVAUDIT_ENV_FILE"
	set +a
fi

umask 077
mkdir -p "$state/reports"
run=$(mktemp -d "$state/run.XXXXXX")
trap 'rm -rf "$run"' EXIT INT TERM

set -- --format "$formats" --out "$run/" --fail-on "$fail_on" "$@"
if [ -f "$state/last.json" ]; then
	set -- --baseline "$state/last.json" "$@"
fi

rc=0
"$kvaudit" scan "$@" || rc=$?

# Keep what was written (also for exit 3: its findings are a lower bound worth reading).
report=""
for f in "$run"/kvaudit-*; do
	[ -f "$f" ] || continue
	mv "$f" "$state/reports/"
	case $f in *.json) report=$state/reports/${f##*/} ;; esac
done
if [ -n "$report" ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ]; }; then
	cp "$report" "$state/last.json.tmp" && mv "$state/last.json.tmp" "$state/last.json"
fi
if [ "$keep_days" -gt 0 ]; then
	find "$state/reports" -name 'kvaudit-*' -type f -mtime +"$keep_days" -delete
fi

case $rc in
0) echo "kvaudit-nightly: no new failing finding at or above $fail_on ($report)" >&2 ;;
1) echo "kvaudit-nightly: NEW failing findings at or above $fail_on ($report)" >&2 ;;
3) echo "kvaudit-nightly: the scan was incomplete; the baseline was kept ($report)" >&2 ;;
*) echo "kvaudit-nightly: kvaudit scan exited $rc" >&2 ;;
esac
exit "$rc"
