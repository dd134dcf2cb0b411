// The server frame: listeners, loops, connection registry, sweeper, drain, signals.
#include "coring/net/server.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <system_error>
#include <utility>

#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/signal.hpp"
#include "coring/runtime/time.hpp"

namespace coring::net {

// The connections of one loop: an intrusive list (no allocation per connection beyond
// its task's frame), the sweeper's tick, draining, and shutting them down. `count` is
// the server's total over its loops, for Server::connections().
class LoopConnections {
 public:
  LoopConnections(EventLoop& loop, BufferPool* pool, std::atomic<std::size_t>& count,
                  std::chrono::milliseconds period, std::chrono::milliseconds idle_timeout) noexcept
      : loop_(loop),
        pool_(pool),
        count_(count),
        period_ms_(static_cast<std::uint64_t>(std::max<std::int64_t>(period.count(), 1))),
        idle_ticks_(idle_timeout.count() > 0 ? ticks(idle_timeout) : Connection::never) {}
  LoopConnections(const LoopConnections&) = delete;
  LoopConnections& operator=(const LoopConnections&) = delete;
  // Every Connection has left: each lives in a task that the loop's scope joins first.
  ~LoopConnections() { assert(connections_.empty()); }
  [[nodiscard]] BufferPool* pool() const noexcept { return pool_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool draining() const noexcept { return draining_; }

  void add(Connection& conn, const TcpStream& stream) noexcept {
    assert(conn.owner_ == nullptr);
    conn.owner_ = this;
    conn.fd_ = stream.fd();
    conn.direct_ = stream.is_direct();
    connections_.push_front(conn);
    ++size_;
    count_.fetch_add(1, std::memory_order_relaxed);
    active(conn);
    // Accepted while the loop drains (the accept completed with the stop): nothing to
    // finish, shut at once.
    if (draining_) shut(conn, Expiry::shut_read);
  }
  // Takes `conn` off the list; nothing if it is not on it.
  void remove(Connection& conn) noexcept {
    if (conn.owner_ != this) return;
    connections_.unlink(conn);
    conn.owner_ = nullptr;
    --size_;
    count_.fetch_sub(1, std::memory_order_relaxed);
  }

  void active(Connection& conn) noexcept {
    conn.expiry_ = Expiry::shut_both;
    conn.deadline_tick_ =
        idle_ticks_ == Connection::never ? Connection::never : tick_ + idle_ticks_;
  }
  void set_deadline(Connection& conn, std::chrono::milliseconds timeout, Expiry expiry) noexcept {
    conn.expiry_ = expiry;
    conn.deadline_tick_ = tick_ + ticks(timeout);
  }

  // Advances the tick and shuts down the connections whose deadline has passed.
  void sweep() noexcept {
    ++tick_;
    for (Connection* conn = connections_.first(); conn != nullptr;) {
      Connection* next = connections_.next(*conn);
      if (tick_ > conn->deadline_tick_) expire(*conn);
      conn = next;
    }
  }
  // The shutdown's first step: idle connections are shut for reading, busy ones later.
  void drain() noexcept {
    draining_ = true;
    for (Connection* conn = connections_.first(); conn != nullptr;) {
      Connection* next = connections_.next(*conn);
      if (!conn->busy_) shut(*conn, Expiry::shut_read);
      conn = next;
    }
  }
  void shut_all() noexcept {
    draining_ = true;
    for (Connection* conn = connections_.first(); conn != nullptr;) {
      Connection* next = connections_.next(*conn);
      shut(*conn, Expiry::shut_both);
      conn = next;
    }
  }
  void set_busy(Connection& conn, bool busy) noexcept {
    conn.busy_ = busy;
    if (!busy && draining_) shut(conn, Expiry::shut_read);
  }

 private:
  // Whole sweep periods in `timeout`, rounded up: the deadline passes no earlier than
  // asked (the sweep after the tick it lands in shuts it).
  [[nodiscard]] std::uint64_t ticks(std::chrono::milliseconds timeout) const noexcept {
    const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(timeout.count(), 0));
    return (ms + period_ms_ - 1) / period_ms_;
  }

  void expire(Connection& conn) noexcept {
    if (shut(conn, conn.expiry_)) {
      conn.expired_ = true;
      conn.deadline_tick_ = Connection::never;  // once is enough, until a new deadline
    }
  }

  // Shuts the connection down `how`: its pending recv ends with 0 bytes, and with
  // shut_both any further send fails; its handler then returns as at the peer's end of
  // stream, and the frame closes the connection. A direct descriptor's shutdown goes
  // into the SQ now, ahead of the close the frame submits later. Returns false if the SQ
  // had no room (the next sweep tries again).
  bool shut(Connection& conn, Expiry how) noexcept {
    const int flags = how == Expiry::shut_both ? SHUT_RDWR : SHUT_RD;
    if (conn.direct_) {
      return loop_.submit_detached([&conn, flags](ring::Sqe& sqe) {
        ring::prep_shutdown(sqe, conn.fd_, flags);
        sqe.flags |= ring::sqe_flags::fixed_file;
      });
    }
    ::shutdown(conn.fd_, flags);
    return true;
  }

  EventLoop& loop_;
  BufferPool* pool_;
  std::atomic<std::size_t>& count_;
  std::uint64_t period_ms_;
  std::uint64_t idle_ticks_;
  IntrusiveList<Connection, &Connection::link_> connections_;
  std::size_t size_ = 0;
  std::uint64_t tick_ = 0;
  bool draining_ = false;
};

Connection::~Connection() {
  if (owner_ != nullptr) owner_->remove(*this);
}

void Connection::active() noexcept { owner_->active(*this); }

void Connection::set_deadline(std::chrono::milliseconds timeout, Expiry expiry) noexcept {
  owner_->set_deadline(*this, timeout, expiry);
}

void Connection::clear_deadline() noexcept { deadline_tick_ = never; }

void Connection::set_busy(bool busy) noexcept { owner_->set_busy(*this, busy); }

bool Connection::draining() const noexcept { return owner_->draining(); }

BufferPool* Connection::receive_pool() const noexcept { return owner_->pool(); }

namespace {

constexpr int sweeps_per_timeout = 4;

// What stops a server that handles signals.
constexpr std::initializer_list<int> stop_signals{SIGINT, SIGTERM};

// Prints "what: the error's message" to stderr. The message is a std::string: without
// memory for it, the error's number stands in.
void print_error(const char* what, const std::error_code& error) noexcept {
  try {
    std::fprintf(stderr, "%s: %s\n", what, error.message().c_str());
  } catch (const std::exception&) {
    std::fprintf(stderr, "%s: error %d (%s)\n", what, error.value(), error.category().name());
  }
}

// Reads SIGINT or SIGTERM through the loop, then triggers `stop`. Ends without a signal
// once `stop` is triggered by something else. The constructor blocked both in every
// thread, so the set changes no mask, and they stay blocked after it.
Task<void> watch_signals(std::stop_source stop) {
  std::optional<SignalSet> signals;
  try {
    signals.emplace(stop_signals);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s; SIGINT/SIGTERM will not stop the server cleanly\n", e.what());
    co_return;
  }
  Result<SignalInfo> got = co_await signals->next().with_stop(stop.get_token());
  // Cancelled with no stop asked: there was no memory for the stop's callback, and the
  // wait did not start (memory may stay short for as long as the server is loaded).
  // Wait with a timeout instead, which needs none, and look at the stop between waits.
  const auto short_of_memory = [&] {
    return !got && (got.error() == std::errc::not_enough_memory ||
                    got.error() == std::errc::operation_canceled);
  };
  while (!stop.stop_requested() && (short_of_memory() || got.error() == std::errc::timed_out)) {
    got = co_await signals->next().with_timeout(std::chrono::milliseconds(100));
  }
  if (got) std::fprintf(stderr, "%s: shutting down\n", ::strsignal(got->signo));
  stop.request_stop();
}

// The sweep period for `options` (see ServerOptions::sweep_period).
std::chrono::milliseconds sweep_period(const ServerOptions& options) noexcept {
  if (options.sweep_period.count() > 0) return options.sweep_period;
  if (options.idle_timeout.count() > 0) {
    return std::max(options.idle_timeout / sweeps_per_timeout, std::chrono::milliseconds(1));
  }
  return std::chrono::milliseconds(250);
}

Task<void> sweep(LoopConnections& connections, std::chrono::milliseconds period,
                 std::stop_token stop) {
  while (!stop.stop_requested()) {
    const IoResult slept = co_await sleep_for(period).with_stop(stop);
    // No memory for the stop's callback: the sleep did not start; sleep without it, so
    // that the sweeps keep their pace.
    if (slept.res == -ENOMEM) co_await sleep_for(period);
    connections.sweep();
  }
}

// Ends a drain: after `timeout`, shuts down every connection still open, unless `stop`
// (every connection has ended) comes first.
Task<void> end_drain(LoopConnections& connections, std::chrono::milliseconds timeout,
                     std::stop_token stop) {
  const IoResult slept = co_await sleep_for(timeout).with_stop(stop);
  // Stopped: every connection has ended. Any other result — the time passed, or no
  // memory for the stop's callback (-ENOMEM: the sleep did not start) — ends the drain.
  if (slept.res == -ECANCELED) co_return;
  connections.shut_all();
}

TcpListener bind_listener(const Address& address, bool reuse_port, bool direct,
                          std::stop_token stop) {
  ListenOptions options;
  options.reuse_port = reuse_port;
  options.direct = direct;
  auto listener = TcpListener::bind(address, options, std::move(stop));
  if (!listener) throw std::system_error(listener.error(), "listen on " + address.to_string());
  // Replies are written whole: Nagle's algorithm would only delay them. Accepted
  // connections inherit the option; a Unix socket has none (the error is ignored).
  (void)listener->set_nodelay(true);
  return std::move(*listener);
}

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit then.
rlim_t raise_open_files_limit() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

constexpr rlim_t max_direct_slots = 65536;

// A server's loops: an SQ large enough that a turn's burst of sends and receives goes
// to the kernel in one enter, and the CQ the kernel pairs with it (twice as large).
// Nothing here bounds the idle connections a loop holds: a receive waiting for its peer
// takes no CQ slot, and completions beyond the CQ wait in the kernel's overflow list.
LoopOptions server_loop_options() {
  LoopOptions loop;
  loop.entries = 4096;
  return loop;
}

RuntimeOptions runtime_options(const ServerOptions& options) {
  RuntimeOptions runtime;
  runtime.threads = options.threads;
  runtime.loop = server_loop_options();
  return runtime;
}

}  // namespace

namespace {

// Closes a connection without waiting for it, so that a connection's frame holds no
// awaitable for its close. A direct descriptor is closed through the ring, behind any
// shutdown the sweeper submitted for it (LoopConnections::shut), which must not reach
// the connection that takes the slot next; if the SQ has no room even after handing
// its entries to the kernel, the stream's destructor clears the slot instead. An fd is
// closed with close(2), which does not block on a socket without SO_LINGER (the sweeper
// shuts those down with shutdown(2), so nothing is queued behind).
void close_now(TcpStream& stream) noexcept {
  if (!stream.is_direct()) {
    stream.reset();
    return;
  }
  const auto slot = static_cast<std::uint32_t>(stream.fd());
  if (EventLoop::current()->submit_detached(
          [slot](ring::Sqe& sqe) { ring::prep_close_direct(sqe, slot); })) {
    (void)stream.release();
  }
}

}  // namespace

Server::Server(ServerOptions options, ConnectionHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.threads == 0) options_.threads = 1;
  const bool reuse_port = options_.threads > 1;
  const bool direct = options_.direct_descriptors;
  const rlim_t open_files = raise_open_files_limit();
  direct_slots_ = static_cast<std::uint32_t>(std::min(open_files, max_direct_slots));
  if (options_.max_connections > 0) {
    loop_max_connections_ = (options_.max_connections + options_.threads - 1) / options_.threads;
  }
  listeners_.push_back(bind_listener(options_.address, reuse_port, direct, stop_.get_token()));
  auto bound = listeners_.front().local_address();
  if (!bound) throw std::system_error(bound.error(), "getsockname");
  port_ = bound->port();
  Address same_port = *bound;
  for (std::size_t i = 1; i < options_.threads; ++i) {
    listeners_.push_back(bind_listener(same_port, reuse_port, direct, stop_.get_token()));
  }
  if (options_.handle_signals) {
    // Before the loops' threads start, so that they inherit the mask: the signals then
    // reach only the signalfd (even if a parent left them ignored, as a shell does to
    // SIGINT for background jobs: a blocked signal is queued all the same).
    SignalSet::block_in_thread(stop_signals);
    ignore_sigpipe();
  }
  if (options_.threads > 1) runtime_.emplace(runtime_options(options_));
}

Server::~Server() = default;

int Server::run(const std::function<void()>& ready) {
  try {
    if (!runtime_) {
      run_here(ready);
    } else {
      runtime_->run_on_each([this, &ready](EventLoop& loop, std::size_t index) {
        return serve_loop(StopOnEnd(stop_), loop, index, ready);
      });
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "server: %s\n", e.what());
    return 1;
  }
  return 0;
}

// The loop owns the serving task (spawned, as a Runtime's loops own theirs), so that
// whatever ends run() — the task's end, or a failure of the loop itself — the loop's
// destructor cancels and drains the task's I/O before it destroys the task's frames.
void Server::run_here(const std::function<void()>& ready) {
  std::exception_ptr failure;  // declared first: outlives the loop and the task
  EventLoop loop(server_loop_options());
  loop.spawn(serve_then_stop(loop, ready, failure));
  loop.run();
  if (failure) std::rethrow_exception(failure);
}

Task<void> Server::serve_then_stop(EventLoop& loop, const std::function<void()>& ready,
                                   std::exception_ptr& failure) {
  try {
    // Not a temporary inside the co_await: GCC 12 may destroy those twice.
    Task<void> serving = serve_loop(StopOnEnd(stop_), loop, 0, ready);
    co_await std::move(serving);
  } catch (...) {
    failure = std::current_exception();
  }
  loop.stop();
}

// Sets the loop up, serves until the server stops, then closes the listener, shuts the
// connections down and waits for their tasks. Once the scope holds a task, nothing may
// leave this frame before the scope is joined: an exception from then on is kept,
// stops the server, and is rethrown after the join. However the frame ends — even
// destroyed before it started — its `stop_on_end` stops the other loops.
Task<void> Server::serve_loop([[maybe_unused]] StopOnEnd stop_on_end, EventLoop& loop,
                              std::size_t index, const std::function<void()>& ready) {
  // Declared first: the pool outlives every connection's receives.
  std::optional<BufferPool> pool;
  if (options_.receive_pool) pool.emplace(loop, *options_.receive_pool);
  if (options_.direct_descriptors) {
    auto table = enable_direct_descriptors(loop, direct_slots_);
    if (!table) {
      throw std::system_error(table.error(), "registering a file table of " +
                                                 std::to_string(direct_slots_) +
                                                 " slots for direct descriptors");
    }
  }
  // The listener lives and dies on its loop: destroying its accept record elsewhere,
  // even closed, would touch the loop (Multishot's destructor calls forget_cancel).
  TcpListener listener = std::move(listeners_[index]);
  // Allocated now, so that shutting down needs no memory: a lazy task does nothing
  // until it is awaited.
  Task<IoResult> close_listener = listener.close();
  LoopConnections connections(loop, pool ? &*pool : nullptr, connections_, sweep_period(options_),
                              options_.idle_timeout);
  // Two scopes: the connections, whose end the drain waits for, and the loop's own
  // tasks (signals, sweeper, the drain's bound), which serve until then.
  TaskScope scope;
  TaskScope services;
  std::stop_source services_stop;
  std::optional<Task<void>> drain_bound;
  if (options_.drain_timeout.count() > 0) {
    drain_bound.emplace(end_drain(connections, options_.drain_timeout, services_stop.get_token()));
  }
  std::exception_ptr failure;
  try {
    if (index == 0 && options_.handle_signals) services.spawn(watch_signals(stop_));
    services.spawn(sweep(connections, sweep_period(options_), services_stop.get_token()));
    if (loops_up_.fetch_add(1, std::memory_order_acq_rel) + 1 == options_.threads && ready) {
      ready();
    }
    for (;;) {
      auto stream = co_await listener.accept();
      if (stream) {
        if (loop_max_connections_ != 0 && connections.size() >= loop_max_connections_) {
          refused_.fetch_add(1, std::memory_order_relaxed);
          close_now(*stream);
          continue;
        }
        spawn_connection(scope, std::move(*stream), connections);
        continue;
      }
      if (stop_.stop_requested()) break;
      // Out of fds or slots, say: the listener paces its retries itself.
      print_error("accept", stream.error());
    }
  } catch (...) {
    failure = std::current_exception();
    // A loop that cannot serve stops the server, now: the joins below wait for the
    // signal watcher, which ends only then.
    stop_.request_stop();
  }
  (void)co_await std::move(close_listener);
  bool drained = false;
  if (drain_bound && !failure) {
    try {
      services.spawn(std::move(*drain_bound));
      connections.drain();
      drained = true;
    } catch (...) {
      // No room to run the bound: no drain, then.
    }
  }
  if (!drained) connections.shut_all();
  try {
    co_await scope.join();  // rethrows what a task of the scope threw (none should)
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  services_stop.request_stop();
  try {
    co_await services.join();
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  if (failure) std::rethrow_exception(failure);
}

// A connection whose frames cannot be allocated is closed at once (by the destructor
// of the stream, which is never registered); the loop goes on accepting.
void Server::spawn_connection(TaskScope& scope, TcpStream stream,
                              LoopConnections& connections) noexcept {
  try {
    scope.spawn(run_connection(std::move(stream), connections));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "connection not served: %s\n", e.what());
  }
}

Task<void> Server::run_connection(TcpStream stream, LoopConnections& connections) {
  {
    Connection conn;
    connections.add(conn, stream);
    try {
      co_await handler_(stream, conn);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "connection: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "connection: an exception of a non-std type\n");
    }
  }  // off the registry here, before the close
  close_now(stream);
}

BufferPoolOptions default_receive_pool() {
  BufferPoolOptions options;
  options.buffer_size = 2048;
  options.count = 128;
  options.incremental = false;
  return options;
}

}  // namespace coring::net
