#!/bin/sh
# install-deps.sh [--runtime | --test] - install the Debian packages meshtest
# needs, and only those that are missing: to run and build it (no flag: `make
# run`), only to run it (--runtime: the Dockerfile), or to run, build and test
# it (--test: `make check`, .ci/run; adds the sanitizer and fuzzing compiler,
# pytest plugins, wrk and the browser the dashboard's tests drive).
set -eu
runtime="ca-certificates git bubblewrap python3 python3-venv python3-pytest \
 libmicrohttpd12 libcurl4 libjansson4 libarchive13 libsqlite3-0 libssl3 libgnutls30 procps iproute2"
build="build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev \
 libjansson-dev libarchive-dev libsqlite3-dev libssl-dev libgnutls28-dev"
test="libcmocka-dev python3-pytest-xdist python3-pytest-timeout python3-prometheus-client \
 clang libclang-rt-14-dev wrk chromium chromium-driver python3-selenium"
case "${1:-}" in
  --runtime) pkgs="$runtime" ;;
  --test) pkgs="$runtime $build $test" ;;
  "") pkgs="$runtime $build" ;;
  *) echo "usage: install-deps.sh [--runtime | --test]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
