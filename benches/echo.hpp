// coring-bench echo: coring's echo server against an epoll, a liburing and two Boost.Asio
// echo servers, under the same load, each on one CPU with the load client on another.
#pragma once

#include "cli.hpp"

namespace coring::bench {

int echo_main(Args& args);
// The load client alone, against a server already listening on 127.0.0.1:port (to
// profile a server by itself, e.g. coring-echo under callgrind).
int echo_load_main(Args& args);
// One of echo's servers alone, in a child process, until it is killed (--server N: 0
// coring, 1 epoll, 2 liburing, 3 asio-epoll, 4 asio-uring, 5 coring-recv, 6 coring-rt).
int echo_server_main(Args& args);

// The coring echo server of the benchmark, listening on 127.0.0.1 (reported through
// `ready_fd`, see ChildProcess::fork_server) until SIGINT or SIGTERM (then it returns 0).
int serve_coring_echo(int ready_fd);
// The epoll peer (serve_epoll_echo(), peers/echo_peers.hpp) the same way: listening on
// 127.0.0.1, reported through `ready_fd`, until it is killed.
int serve_epoll(int ready_fd);
// Diagnostic rows: coring-echo's code with a recv per message instead of a multishot
// receive; and an echo server on the runtime alone, without net/ and the Server frame.
int serve_coring_echo_recv(int ready_fd);
int serve_runtime_echo(int ready_fd);

}  // namespace coring::bench
