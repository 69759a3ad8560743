#!/bin/sh
# run-e2e.sh BIN MARKEXPR [pytest args...] - the end-to-end suite against BIN:
# the tests that do not mind company on two pytest-xdist workers, then the
# ones marked `serial` (deadlines measured in seconds: membership, killing a
# worker at a chosen moment) alone. MARKEXPR narrows both ("" for all).
# pytest's exit 5 (nothing collected) is fine for one half, not for both.
set -u
bin=$1; mark=$2; shift 2
py=${PYTHON:-/usr/bin/python3}
sel() { if [ -n "$mark" ]; then echo "($mark) and $1"; else echo "$1"; fi; }
MESHTEST_BIN=$bin timeout 1200 "$py" -m pytest -q -p no:cacheprovider -n 2 \
  -m "$(sel 'not serial')" "$@"
a=$?
MESHTEST_BIN=$bin timeout 900 "$py" -m pytest -q -p no:cacheprovider \
  -m "$(sel serial)" "$@"
b=$?
[ $a -eq 5 ] && [ $b -eq 5 ] && { echo "run-e2e: no test collected" >&2; exit 5; }
[ $a -eq 5 ] && a=0
[ $b -eq 5 ] && b=0
[ $a -eq 0 ] && [ $b -eq 0 ]
