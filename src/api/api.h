/*
 * api.h - the public and internal HTTP endpoints, one route table per
 * endpoint family. Handlers get the node's engine as their context.
 */
#ifndef MESHTEST_API_H
#define MESHTEST_API_H

#include "http/http_server.h"

extern const struct http_route api_evaluation_routes[];
extern const struct http_route api_stats_routes[];
extern const struct http_route api_network_routes[];

#endif
