// Server: the frame of a TCP server — listeners on N loops, a task per connection,
// deadlines and idle timeouts, a connection limit, and a graceful shutdown on SIGINT and
// SIGTERM. coring-echo and coring::http's server are built on it.
//
//   net::Server server({.address = *net::Address::parse("127.0.0.1:8080"), .threads = 2},
//                      [](const net::TcpStream& stream, net::Connection& conn) -> Task<void> {
//                        ...  // serve the connection; return when it is done
//                      });
//   return server.run();  // until SIGINT, SIGTERM or stop()
//
// Threads. One loop runs on the thread that calls run(). With `threads` > 1 a Runtime
// runs that many loops on as many threads of its own; each loop has its own listener on
// the same port (SO_REUSEPORT when there are several, so that the kernel spreads
// connections over them) and serves the connections it accepted to their end: nothing
// is shared between loops on the hot path.
//
// Connections. Each is accepted as a direct descriptor (ServerOptions::direct_descriptors):
// a slot of its loop's registered file table instead of an fd, so that no request on it
// looks the file up in the process's fd table. TCP_NODELAY is set on the listener, which
// accepted connections inherit (Linux copies it). The frame owns each connection: the
// handler gets the stream by const reference and returns; the frame then takes the
// connection off its loop's registry and closes it through the ring. A loop holds at most
// its share of ServerOptions::max_connections; a connection accepted beyond it is closed
// at once (the peer sees its connection end before any byte) and counted in refused().
//
// Failures. An exception escaping a handler (std::bad_alloc under memory pressure, say)
// ends that connection only: the frame logs it, takes the connection off the registry
// and closes it, as after a return. A connection whose task cannot even be allocated is
// logged and closed at once. A handler must leave nothing in flight when it throws (a
// RecvStream is closed first). What a loop needs for itself — its receive pool, file
// table, listener and the frames of its shutdown — is allocated before it serves, so a
// loop that cannot set up fails at start and one that is serving can always shut down: a
// failure there stops the whole server, whose run() prints it and returns 1.
//
// Deadlines. Each connection has one deadline, which a sweeper per loop checks every
// sweep period. At the deadline the frame shuts the connection down — both ways
// (Expiry::shut_both: its pending recv ends with 0 bytes and a pending send fails), or
// only for reading (Expiry::shut_read: the recv ends, the handler may still send, e.g. a
// 408) — and sets Connection::expired(). `idle_timeout` is the deadline a connection gets
// when it is accepted and from every Connection::active(); Connection::set_deadline()
// sets another. A deadline is a store, where a linked timeout on every recv would cost an
// SQE and a CQE each; the price is resolution: it fires between the deadline and one
// sweep period after it. The shutdown cannot reach another connection that reused the
// slot or fd: it is issued while the connection is registered, and the frame closes a
// connection only after taking it off the registry (its close SQE then follows the
// shutdown's in the SQ).
//
// Descriptors. The constructor raises the process's RLIMIT_NOFILE soft limit to its hard
// limit (a server holds one descriptor or slot per connection); each loop's file table
// has that many slots, at most 65,536. Past that, accept() fails (the table or the fds
// are full) until connections close; the loop logs each failure and accepts again, the
// listener pacing its retries.
//
// Shutdown. SIGINT and SIGTERM (blocked in every thread, read by loop 0 through a
// coring::SignalSet) or stop() start it: every loop closes its listener. With a
// `drain_timeout` of 0 it then shuts every connection down both ways. Otherwise it
// drains: a connection between requests (Connection::set_busy(false), the state a
// connection starts in) is shut down for reading, so that its handler sees the end of
// its stream and returns; a busy one is left to finish, and shut for reading when it
// says it is no longer busy; whatever is still open after `drain_timeout` is shut down
// both ways. run() returns 0 once every handler has returned. With those signals the
// frame also ignores SIGPIPE: a write to a pipe whose reader has gone must fail with
// EPIPE, not kill the server (the sends on connections pass MSG_NOSIGNAL anyway).
//
// Start. run() reports readiness through its callback once every loop serves; a loop
// that fails to set up makes run() return 1 without it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "coring/net/address.hpp"
#include "coring/net/buffer_pool.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/intrusive_list.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

class LoopConnections;

// What a connection's deadline does to it.
enum class Expiry : std::uint8_t {
  shut_both,  // shutdown(SHUT_RDWR): receives end, sends fail
  shut_read,  // shutdown(SHUT_RD): receives end, sends still go out
};

// A connection's entry in its loop's registry: its deadline, whether it is busy, and
// the loop's state. Used on the connection's loop thread only. It leaves the registry
// when destroyed, however its task ends.
class Connection {
 public:
  Connection() noexcept = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Pushes the deadline back to ServerOptions::idle_timeout from now (Expiry::shut_both):
  // a store, no system call. Nothing when the server has no idle timeout.
  void active() noexcept;
  // The deadline `timeout` from now, doing `expiry`. Replaces the one before.
  void set_deadline(std::chrono::milliseconds timeout, Expiry expiry) noexcept;
  // No deadline until the next active() or set_deadline().
  void clear_deadline() noexcept;
  // Whether a deadline shut the connection down (stays true).
  [[nodiscard]] bool expired() const noexcept { return expired_; }

  // Whether the connection is in the middle of a request (see "Shutdown" above). While
  // the server drains, set_busy(false) shuts the connection down for reading.
  void set_busy(bool busy) noexcept;
  // Whether the server is shutting down: a handler answers its request in progress and
  // closes (an HTTP server says `Connection: close`).
  [[nodiscard]] bool draining() const noexcept;

  // The loop's receive pool (ServerOptions::receive_pool), or nullptr.
  [[nodiscard]] BufferPool* receive_pool() const noexcept;

 private:
  friend class LoopConnections;
  static constexpr std::uint64_t never = ~std::uint64_t{0};

  LoopConnections* owner_ = nullptr;
  ListHook link_;  // in owner_'s list
  int fd_ = -1;    // or the slot of a direct descriptor
  bool direct_ = false;
  bool busy_ = false;
  bool expired_ = false;
  Expiry expiry_ = Expiry::shut_both;
  std::uint64_t deadline_tick_ = never;  // shut at the first sweep past this tick
};

// Serves one connection until either side ends it. The frame closes the stream after
// the handler returns or throws (see "Connections" and "Failures" above).
using ConnectionHandler = std::function<Task<void>(const TcpStream& stream, Connection& conn)>;

struct ServerOptions {
  Address address = Address::ipv4_loopback(0);
  std::size_t threads = 1;
  // The deadline of a new connection and of active(); 0: none.
  std::chrono::milliseconds idle_timeout{0};
  // How often each loop checks deadlines; 0: a quarter of idle_timeout (with no idle
  // timeout, 250 ms). Deadlines fire up to one period late.
  std::chrono::milliseconds sweep_period{0};
  // Connections the server holds at once, shared evenly by the loops; 0: as many as the
  // descriptors allow.
  std::size_t max_connections = 0;
  // How long a shutdown lets busy connections finish (see "Shutdown"); 0: no drain.
  std::chrono::milliseconds drain_timeout{0};
  // Whether SIGINT and SIGTERM stop the server (they are then blocked in the process) and
  // SIGPIPE is ignored.
  bool handle_signals = true;
  // If set, each loop has a BufferPool of these options for its connections' receives
  // (Connection::receive_pool()): a multishot receive into it costs one SQE per
  // connection instead of one per message.
  std::optional<BufferPoolOptions> receive_pool;
  // Accept connections as direct descriptors (see "Connections" above). Off: plain fds,
  // for a handler that needs the fd for system calls of its own.
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
  // Starts the shutdown, as SIGTERM would. Any thread, any time (also before run()).
  void stop() noexcept { stop_.request_stop(); }
  // Connections in the loops' registries now (a connection leaves before its close).
  // Any thread.
  [[nodiscard]] std::size_t connections() const noexcept {
    return connections_.load(std::memory_order_relaxed);
  }
  // Connections closed at once because the loop held its share of max_connections.
  [[nodiscard]] std::size_t refused() const noexcept {
    return refused_.load(std::memory_order_relaxed);
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
  void spawn_connection(TaskScope& scope, TcpStream stream, LoopConnections& connections) noexcept;
  Task<void> run_connection(TcpStream stream, LoopConnections& connections);

  ServerOptions options_;
  std::uint32_t direct_slots_ = 0;        // per loop, when options_.direct_descriptors
  std::size_t loop_max_connections_ = 0;  // per loop; 0: no limit
  ConnectionHandler handler_;
  std::stop_source stop_;
  std::vector<TcpListener> listeners_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> loops_up_{0};
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> refused_{0};
  std::optional<Runtime> runtime_;  // threads > 1 only; built last: its threads start at once
};

// A receive pool for servers whose messages are small: 128 buffers of 2 KiB, a whole
// buffer per receive. A small pool keeps the buffers the kernel cycles through warm in
// the cache; a connection queues at most 16 of them (its share), and one that finds the
// pool empty receives into a buffer of its own (docs/net.md, "Fairness").
BufferPoolOptions default_receive_pool();

}  // namespace coring::net
