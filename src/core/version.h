/*
 * version.h - the release, as `meshtest version`, the start-up log line and
 * GET /health say it. The node-to-node protocol has its own version
 * (cluster/peer.h).
 */
#ifndef MESHTEST_VERSION_H
#define MESHTEST_VERSION_H

#define MESHTEST_VERSION "0.3.0"

#endif
