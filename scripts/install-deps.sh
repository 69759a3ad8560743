#!/bin/sh
# install-deps.sh - install the Debian packages meshtest needs to build, run
# and test, and only those that are missing. Used by `make run`, `make check`,
# .ci/run and the Dockerfile (with --runtime: only what a node needs to run).
set -eu
runtime="ca-certificates git bubblewrap python3 python3-venv python3-pytest \
 libmicrohttpd12 libcurl4 libjansson4 libarchive13 libsqlite3-0 libssl3 libgnutls30 procps iproute2"
build="build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev \
 libjansson-dev libarchive-dev libsqlite3-dev libssl-dev libgnutls28-dev libcmocka-dev \
 python3-pytest-xdist python3-pytest-timeout python3-prometheus-client clang libclang-rt-14-dev wrk \
 chromium chromium-driver python3-selenium"
pkgs="$runtime"
[ "${1:-}" = "--runtime" ] || pkgs="$runtime $build"

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
