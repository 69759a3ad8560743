# Dockerfile - the meshtest node image, on Debian 12 (bookworm).
#
# Two stages: `build` installs the build dependencies with
# scripts/install-deps.sh (the script `make run` and CI use) and runs `make`;
# the runtime stage installs only what a node needs to run
# (`install-deps.sh --runtime`) and gets the binary and the entry point.
#
#   docker build -t meshtest:local .
#   docker compose --env-file .env up --build -d        (see README.md)
#
# The container needs user namespaces for the test sandbox: see the
# security_opt settings in docker-compose.yml and "What the sandbox needs from
# Docker" in README.md.

FROM debian:12 AS build
WORKDIR /src
# Packages first, so a code change does not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN sh scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
# Only what `make` reads: a build/ folder left on the host never gets in.
COPY Makefile ./
COPY scripts/ scripts/
COPY src/ src/
# Plain `make`: the Makefile's rule that generates build/gen/embedded.{c,h}
# races with itself under -j.
RUN make && ./build/meshtest version

FROM debian:12
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN sh /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/build/meshtest /usr/local/bin/meshtest
COPY scripts/entrypoint.sh /usr/local/bin/meshtest-entrypoint
# 0711: the unprivileged slot users must be able to reach the node's work
# folder inside the data folder, but not list it. `meshtest version` proves
# the runtime packages carry every library the binary links.
RUN chmod 0755 /usr/local/bin/meshtest /usr/local/bin/meshtest-entrypoint \
 && install -d -m 0711 /var/lib/meshtest \
 && meshtest version

# The node runs as root inside the container on purpose: it runs no test code
# itself, but drops each slot's modules to their own unprivileged uid (no
# capabilities, no_new_privs, resource limits) and kills every process of
# that uid afterwards, which needs root. Started as a normal user it cannot
# separate test code from itself.
USER root
VOLUME /var/lib/meshtest
EXPOSE 7000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/meshtest-entrypoint"]
