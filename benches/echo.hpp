// coring-bench echo: coring's echo server against an epoll and a liburing echo server,
// under the same load, each on one CPU with the load client on another.
#pragma once

#include "cli.hpp"

namespace coring::bench {

int echo_main(Args& args);

// The coring echo server of the benchmark, serving `listen_fd` until SIGINT or SIGTERM
// (then it returns 0).
int serve_coring_echo(int listen_fd);

}  // namespace coring::bench
