#!/bin/sh
# entrypoint.sh - the container's entry point: starts one meshtest node.
#
# Maps the seed's environment (.env, docker-compose) to `meshtest serve`:
#   PORT          port to listen on, on every interface (default 7000)
#   HOST_IP       this machine's address; the node advertises HOST_IP:PORT
#   NODE_ADDRESS  the address peers use, when not HOST_IP:PORT
#   SEED_NODES    comma-separated host:port to join (meshtest reads it itself)
# The secrets MESHTEST_CLUSTER_KEY and MESHTEST_API_TOKEN (or their _FILE
# forms) stay in the environment, where meshtest reads them: they never go on
# a command line, which every local user can read. Data lives in
# /var/lib/meshtest (the image's volume).
#
# Extra arguments are passed on to `meshtest serve`. A first argument that is
# another meshtest command runs that command instead, so
# `docker compose run --rm meshtest keygen` prints a fresh secret.
set -eu

data_dir=/var/lib/meshtest

case "${1:-}" in
keygen | submit | status | version | --version | help | --help | -h)
	exec meshtest "$@"
	;;
serve)
	shift
	;;
esac

PORT="${PORT:-7000}"
case "$PORT" in
'' | *[!0-9]*)
	echo "entrypoint: PORT must be a port number, not '$PORT'" >&2
	exit 2
	;;
esac

if [ -z "${NODE_ADDRESS:-}" ]; then
	if [ -z "${HOST_IP:-}" ]; then
		echo "entrypoint: set HOST_IP (this machine's address, see 'hostname -I')" \
			"or NODE_ADDRESS in .env" >&2
		exit 2
	fi
	NODE_ADDRESS="$HOST_IP:$PORT"
fi
export PORT NODE_ADDRESS

exec meshtest serve --listen "0.0.0.0:$PORT" --advertise "$NODE_ADDRESS" \
	--data-dir "$data_dir" "$@"
