// --backend io_uring|epoll: the ring that coring's side of a benchmark runs on.
//
// coring takes its backend from the CORING_BACKEND environment variable whenever a loop
// or a ring is made with ring::Backend::automatic, and every piece of coring code the
// benchmarks run does: the in-process loops (runtime-nop, file-randread) and rings
// (ring-nop's coring side), and the coring servers forked from this process (echo, http,
// idle, fairness), as coring-echo and coring-http do. So --backend sets CORING_BACKEND in
// this process before any of them is made, and without it the environment decides, as
// for any coring program. The peers are unaffected: none of them is coring code (the
// epoll and liburing echo servers, Asio's, nginx, wrk and fio do not read the variable).
//
// A single coring server can also run on a backend of its own (serve_on()): the rows of
// `all` and the reference rows of echo and http that set coring on one backend against
// the same peer runs as the rest.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "cli.hpp"
#include "coring/ring/ring.hpp"

namespace coring::bench {

struct CoringBackend {
  std::optional<ring::Backend> requested;           // --backend's, if given
  ring::Backend backend = ring::Backend::io_uring;  // what a loop made now runs on

  // "epoll", "io_uring".
  [[nodiscard]] std::string name() const { return ring::to_string(backend); }
  // The backend and what chose it: "epoll (--backend epoll)", "io_uring (CORING_BACKEND
  // unset)", "epoll (CORING_BACKEND=epoll)", "epoll (CORING_BACKEND unset; io_uring is
  // blocked here)".
  [[nodiscard]] std::string describe() const;
};

// Takes --backend io_uring|epoll (UsageError for another value) and, if it is given,
// sets CORING_BACKEND; then finds which backend a loop made now runs on by setting up a
// small ring the way the loops do (Backend::automatic). Throws std::runtime_error if
// that fails: --backend io_uring (or CORING_BACKEND=io_uring) where io_uring is blocked,
// or a CORING_BACKEND that names no backend.
[[nodiscard]] CoringBackend take_backend(Args& args);

// The other one of the two backends.
[[nodiscard]] ring::Backend other_backend(ring::Backend backend) noexcept;

// "" if a ring can be set up on `backend` (io_uring or epoll) here, else why not.
[[nodiscard]] std::string backend_unavailable(ring::Backend backend);

// A server for ChildProcess::fork_server() that runs serve(ready_fd) with CORING_BACKEND
// set to `backend` in the child (this process's environment is left as it is).
[[nodiscard]] std::function<int(int ready_fd)> serve_on(ring::Backend backend,
                                                        int (*serve)(int ready_fd));

}  // namespace coring::bench
