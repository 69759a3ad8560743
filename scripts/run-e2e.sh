#!/bin/sh
# run-e2e.sh BIN MARKEXPR [pytest args...] - the end-to-end suite against BIN:
# the tests that do not mind company on two pytest-xdist workers, then the
# ones marked `serial` (deadlines measured in seconds: membership, killing a
# worker at a chosen moment) alone. MARKEXPR narrows both ("" for all).
# pytest's exit 5 (nothing collected) is fine for one half, not for both.
# Each run has a temporary folder of its own (--basetemp): pytest's shared
# /tmp/pytest-of-<user> is made 0700 by every pytest that starts, which would
# lock the slot users of this run's nodes out of their data folders.
set -u
bin=$1; mark=$2; shift 2
py=${PYTHON:-/usr/bin/python3}
base=$(mktemp -d "${TMPDIR:-/tmp}/meshtest-e2e.XXXXXX") || exit 1
sel() { if [ -n "$mark" ]; then echo "($mark) and $1"; else echo "$1"; fi; }
MESHTEST_BIN=$bin timeout 1200 "$py" -m pytest -q -p no:cacheprovider -n 2 \
  --basetemp "$base/shared" -m "$(sel 'not serial')" "$@"
a=$?
MESHTEST_BIN=$bin timeout 900 "$py" -m pytest -q -p no:cacheprovider \
  --basetemp "$base/serial" -m "$(sel serial)" "$@"
b=$?
[ $a -eq 5 ] && [ $b -eq 5 ] && { echo "run-e2e: no test collected" >&2; exit 5; }
[ $a -eq 5 ] && a=0
[ $b -eq 5 ] && b=0
if [ $a -eq 0 ] && [ $b -eq 0 ]; then
  rm -rf "$base"
  exit 0
fi
echo "run-e2e: the nodes' folders and logs are in $base" >&2
exit 1
