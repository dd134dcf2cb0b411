// The echo servers coring's is measured against, each as a competent hand-written server
// of its kind would be. Each serves the listening socket it is given until the process
// is killed (they run in a child process of coring-bench, see child_process.hpp), and
// returns non-zero only if it failed.
//
// The liburing peer is defined in liburing_echo.cpp, which (with liburing_nop.cpp) is the
// only file of coring that includes <liburing.h>, when CMake found liburing; otherwise in
// liburing_echo_absent.cpp, where it is unavailable.
#pragma once

namespace coring::bench {

// Non-blocking sockets and one level-triggered epoll set: one read() and one write()
// per message, epoll_wait() for up to 256 events at a time.
int serve_epoll_echo(int listen_fd);

// Whether this build has the liburing peer; when false, serve_liburing_echo() throws.
[[nodiscard]] bool liburing_echo_available() noexcept;

// liburing: a multishot accept, then one recv and one send at a time per connection;
// SINGLE_ISSUER | DEFER_TASKRUN and a registered ring fd, as coring's loop.
int serve_liburing_echo(int listen_fd);

}  // namespace coring::bench
