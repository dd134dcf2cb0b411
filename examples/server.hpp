// The frame the example servers (coring-echo, coring-http) share: listeners on N loops,
// a task per connection, idle timeouts, and a clean shutdown on SIGINT/SIGTERM.
//
//   Server server({.address = *net::Address::parse("127.0.0.1:8080"), .threads = 2},
//                 [](const net::TcpStream& stream, Connection& conn) -> Task<void> { ... });
//   return server.run();  // until SIGINT, SIGTERM or stop()
//
// Threads. One loop runs on the thread that calls run(). With `threads` > 1 a Runtime
// runs that many loops on as many threads of its own; each loop has its own listener on
// the same port (SO_REUSEPORT when there are several, so that the kernel
// spreads connections over them) and serves the connections it accepted to their end:
// nothing is shared between loops on the hot path.
//
// Connections. Each is accepted as a direct descriptor (ServerOptions::direct_descriptors):
// a slot of its loop's registered file table instead of an fd, so that no request on it
// looks the file up in the process's fd table. TCP_NODELAY is set on the listener, which
// accepted connections inherit (Linux copies it), since socket options cannot be set on
// a direct descriptor. The frame owns each connection: the handler gets the stream by
// const reference and returns; the frame then takes the connection off its loop's
// registry and closes it through the ring.
//
// Failures. An exception escaping a handler (std::bad_alloc under memory pressure, say)
// ends that connection only: the frame logs it, takes the connection off the registry
// and closes it, as after a return. A connection whose task cannot even be allocated is
// logged and closed at once. A handler must leave nothing in flight when it throws (a
// RecvStream is closed first: see echo_server.cpp). What a loop needs for itself —
// its receive pool, file table, listener and the frames of its shutdown — is allocated
// before it serves, so a loop that cannot set up fails at start and one that is serving
// can always shut down: a failure there stops the whole server, whose run() prints it
// and returns 1.
//
// Idle timeouts. A connection that has not reported activity (Connection::active()) for
// `idle_timeout` is shut down both ways (IORING_OP_SHUTDOWN for a direct descriptor,
// shutdown(2) for an fd), which ends its pending recv with 0 bytes, so its handler ends
// as it would at the peer's end of stream. A sweeper per loop checks every quarter of
// the timeout, so a connection is closed between 1 and 1.25 timeouts after its last
// activity. This costs the hot path one store per request, where a linked timeout on
// every recv would cost an SQE and a CQE each. The shutdown cannot reach another
// connection that reused the slot or fd: it is issued while the connection is still
// registered, and the frame closes a connection only after taking it off the registry
// (its close SQE then follows the shutdown's in the SQ).
//
// Descriptors. The constructor raises the process's RLIMIT_NOFILE soft limit to its hard
// limit (a server holds one descriptor or slot per connection); each loop's file table
// has that many slots, at most 65,536. Past that, accept() fails (the table or the fds
// are full) until connections close; the loop logs each failure and accepts again, the
// listener pacing its retries.
//
// Shutdown. SIGINT and SIGTERM (blocked in every thread, read by loop 0 through a
// coring::SignalSet) or stop() trigger the server's stop source: every listener's
// accept stream ends, each loop closes its listener, shuts down its connections and
// waits for their handlers to return, and run() returns 0. With those signals the
// frame also ignores SIGPIPE: it logs to stderr, and a write to a pipe whose reader has
// gone must fail with EPIPE, not kill the server (the sends on connections pass
// MSG_NOSIGNAL anyway).
//
// Start. run() reports readiness through its callback once every loop serves; a loop
// that fails to set up makes run() return 1 without it (the servers print their
// listening line there, so that a line means every loop is up).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include <coring/net/address.hpp>
#include <coring/net/buffer_pool.hpp>
#include <coring/net/listener.hpp>
#include <coring/net/stream.hpp>
#include <coring/runtime/intrusive_list.hpp>
#include <coring/runtime/runtime.hpp>
#include <coring/runtime/scope.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

class LoopConnections;

// A connection's entry in its loop's registry, for idle timeouts and shutdown. It leaves
// the registry when destroyed, however its task ends (the frame also takes it off before
// closing the stream, which must not be shut down after the close).
class Connection {
 public:
  Connection() noexcept = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Marks the connection active now (a request arrived): one store, no system call.
  void active() noexcept;
  // The loop's receive pool (ServerOptions::receive_pool), or nullptr.
  [[nodiscard]] net::BufferPool* receive_pool() const noexcept;

 private:
  friend class LoopConnections;
  LoopConnections* owner_ = nullptr;
  ListHook link_;        // in owner_'s list
  int fd_ = -1;          // or the slot of a direct descriptor
  bool direct_ = false;  // fd_ is a slot of the loop's registered file table
  std::uint64_t last_tick_ = 0;
};

// Serves one connection until either side ends it. The frame closes the stream after
// the handler returns or throws (see "Connections" and "Failures" above).
using ConnectionHandler = std::function<Task<void>(const net::TcpStream& stream, Connection& conn)>;

struct ServerOptions {
  net::Address address = net::Address::ipv4_loopback(0);
  std::size_t threads = 1;
  // 0: connections never time out.
  std::chrono::milliseconds idle_timeout{0};
  // Whether SIGINT and SIGTERM stop the server (they are then blocked in the process) and
  // SIGPIPE is ignored.
  bool handle_signals = true;
  // If set, each loop has a BufferPool of these options for its connections' receives
  // (Connection::receive_pool()): a multishot receive into it costs one SQE per
  // connection instead of one per message.
  std::optional<net::BufferPoolOptions> receive_pool;
  // Accept connections as direct descriptors (see "Connections" above). Off: plain fds,
  // for a handler that needs the fd for system calls of its own (setsockopt, say).
  bool direct_descriptors = true;
};

class Server {
 public:
  // Binds the listeners (throws std::system_error, e.g. EADDRINUSE) and, for more than one
  // loop, starts the loops' threads; connections are accepted from run() on (the backlog
  // holds them till then).
  Server(ServerOptions options, ConnectionHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port the listeners are bound to (the kernel's choice when the address had port 0).
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // Serves until a signal or stop(); returns 0 after a clean shutdown, 1 if a loop failed
  // (the error is printed to stderr). `ready` is called once, on a loop's thread, when
  // every loop serves (its pool, file table and listener set up); never if a loop fails
  // first.
  int run(const std::function<void()>& ready = {});
  // Ends run() as SIGTERM would. Any thread, any time (also before run()).
  void stop() noexcept { stop_.request_stop(); }
  // Connections in the loops' registries now (a connection leaves before its close).
  // Any thread.
  [[nodiscard]] std::size_t connections() const noexcept {
    return connections_.load(std::memory_order_relaxed);
  }

 private:
  void run_here(const std::function<void()>& ready);
  Task<void> serve_then_stop(EventLoop& loop, const std::function<void()>& ready,
                             std::exception_ptr& failure);
  // Requests the server's stop when destroyed (a moved-from source has no state, and
  // requests nothing): serve_loop's parameter, so that one loop's end ends them all.
  class StopOnEnd {
   public:
    explicit StopOnEnd(std::stop_source stop) noexcept : stop_(std::move(stop)) {}
    StopOnEnd(StopOnEnd&&) noexcept = default;
    StopOnEnd& operator=(StopOnEnd&&) = delete;
    ~StopOnEnd() { stop_.request_stop(); }

   private:
    std::stop_source stop_;
  };
  Task<void> serve_loop(StopOnEnd stop_on_end, EventLoop& loop, std::size_t index,
                        const std::function<void()>& ready);
  void spawn_connection(TaskScope& scope, net::TcpStream stream,
                        LoopConnections& connections) noexcept;
  Task<void> run_connection(net::TcpStream stream, LoopConnections& connections);

  ServerOptions options_;
  std::uint32_t direct_slots_ = 0;  // per loop, when options_.direct_descriptors
  ConnectionHandler handler_;
  std::stop_source stop_;
  std::vector<net::TcpListener> listeners_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> loops_up_{0};
  std::atomic<std::size_t> connections_{0};
  std::optional<Runtime> runtime_;  // threads > 1 only; built last: its threads start at once
};

// The receive pool the example servers give each loop: 128 buffers of 2 KiB, a whole
// buffer per receive. (Incremental consumption, where small messages share a buffer,
// works and is tested, but the servers' figures in docs/benchmarks.md were measured
// with whole buffers; incremental pools have not been measured yet.) A small pool
// keeps the buffers the kernel cycles through warm in the cache; a connection queues at
// most 16 of them (its share), and one that finds the pool empty receives into a buffer
// of its own (docs/net.md, "Fairness").
net::BufferPoolOptions default_receive_pool();

// After a send of `data` that moved put.res bytes: sends the rest, if any. Returns false
// if the connection failed. A coroutine of its own — a frame allocated — that handlers
// call only on the rare short send, so that the common path allocates nothing.
Task<bool> send_rest(const net::TcpStream& stream, std::span<const std::byte> data, IoResult put);

// Parses a server's command line: --port P (required), --host H (127.0.0.1), --threads N
// (1), and the extra integer options the server names. Prints the usage and exits with
// status 2 on bad input, 0 on --help.
struct CommandLine {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t threads = 1;
  std::vector<std::uint64_t> extra;  // the values of `extra_options`, in their order
};
struct ExtraOption {
  const char* name;  // "--idle-timeout-ms"
  std::uint64_t min;
  std::uint64_t max;
  std::uint64_t default_value;
};
CommandLine parse_command_line(int argc, char** argv, const char* usage,
                               const std::vector<ExtraOption>& extra_options = {});

// "host:port" for net::Address::parse, with brackets around an IPv6 host.
net::Address resolve(const std::string& host, std::uint16_t port);

}  // namespace coring::examples
