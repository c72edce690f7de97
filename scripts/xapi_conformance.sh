#!/usr/bin/env bash
# Run ADL's LRS conformance test suite (https://github.com/adlnet/lrs-conformance-test-suite)
# against a throwaway Tessera LRS, for xAPI 1.0.3 and 2.0.0, and print the summaries.
#
#   git clone https://github.com/adlnet/lrs-conformance-test-suite /tmp/lrs-suite
#   (cd /tmp/lrs-suite && npm install)
#   scripts/xapi_conformance.sh /tmp/lrs-suite
#
# A fresh SQLite database, fresh HTTP Basic credentials and a free port each time; all of it
# is removed afterwards. Not part of CI (the suite comes from GitHub and needs Node.js).
# `tessera` is taken from PATH unless TESSERA_BIN names it.
#
# Expected result: 2.0.0 all passing; 1.0.3 all but the three "... without header
# X-Experience-API-Version" tests of Communication 3.3 (XAPI-00331), which want a request
# that names no version answered as "1.0.3" while the 2.0 suite wants "2.0.0" for the same
# request. Tessera serves both versions and answers its latest, 2.0.0 (see
# adapters/xapi/http.py, _answer_version).
#
# Exit status: 0 when every test of both runs passed, 1 otherwise.
set -euo pipefail

suite=${1:?usage: $0 PATH_TO_LRS_CONFORMANCE_TEST_SUITE_CHECKOUT}
suite=$(cd "$suite" && pwd)
[[ -f $suite/bin/console_runner.js ]] || { echo "$suite is not a checkout of lrs-conformance-test-suite" >&2; exit 2; }
[[ -d $suite/node_modules ]] || { echo "run 'npm install' in $suite first" >&2; exit 2; }
tessera=${TESSERA_BIN:-$(command -v tessera || true)}
[[ -n $tessera ]] || { echo "tessera is not on PATH (or set TESSERA_BIN)" >&2; exit 2; }
python=$(dirname "$tessera")/python
[[ -x $python ]] || python=python3

work=$(mktemp -d -t tessera-xapi-conformance.XXXXXX)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export TESSERA_DATABASE_URL="sqlite:///$work/tessera.db"
setup_failed() { echo "$1:" >&2; cat "$work/setup.log" >&2; exit 1; }
"$tessera" migrate >"$work/setup.log" 2>&1 || setup_failed "tessera migrate failed"
creds=$("$tessera" lrs credentials create --tenant conformance --name "conformance suite" 2>>"$work/setup.log") \
    || setup_failed "could not create LRS credentials"
key=$(sed -n 's/^key: *//p' <<<"$creds")
secret=$(sed -n 's/^secret: *//p' <<<"$creds")
[[ -n $key && -n $secret ]] || setup_failed "no key and secret in the output of tessera lrs credentials create"

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tessera" serve --host 127.0.0.1 --port "$port" --workers 1 >"$work/server.log" 2>&1 &
server_pid=$!
endpoint="http://127.0.0.1:$port/xapi"
for _ in $(seq 1 60); do
    "$python" -c "import urllib.request as u; u.urlopen('$endpoint/about', timeout=1)" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "tessera serve exited:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
    sleep 0.5
done
echo "Tessera LRS at $endpoint (tenant conformance)"

status=0
for version in 1.0.3 2.0.0; do
    out="$work/run-$version.out"
    # the runner's exit status is its number of failed tests
    (cd "$suite" && node bin/console_runner.js -e "$endpoint" -a -u "$key" -p "$secret" -x "$version" -z) >"$out" 2>&1 || true
    summary=$(grep '^{"total"' "$out" | tail -1 || true)
    log=$(sed -n 's/^Full run log written to //p' "$out" | tail -1)
    echo
    echo "xAPI $version: ${summary:-no summary (see below)}"
    if [[ -z $summary || -z $log ]]; then
        tail -20 "$out"
        status=1
        continue
    fi
    echo "  full log: $log"
    # the failing tests, by title, with the suite's message
    "$python" - "$log" <<'EOF' || status=1
import json
import sys


def failures(node, parents):
    children = node.get("tests") or []
    title = node.get("title") or node.get("name") or ""
    if not children and node.get("status") == "failed":
        yield " > ".join(p for p in parents[-1:] + [title] if p), str(node.get("error") or "").splitlines()[:1]
    for child in children:
        yield from failures(child, parents + [title])


log = json.load(open(sys.argv[1]))
found = list(failures(log.get("log") or {}, []))
for title, error in found:
    print("  FAILED", title)
    for line in error:
        print("         ", line)
sys.exit(1 if found else 0)
EOF
done
exit $status
