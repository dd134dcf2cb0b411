// The example servers' frame: listeners, loops, connection registry, sweeper, signals.
#include "server.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include <coring/ring/prep.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/scope.hpp>
#include <coring/runtime/signal.hpp>
#include <coring/runtime/time.hpp>

namespace coring::examples {

// The connections of one loop: an intrusive list (no allocation per connection beyond
// its task's frame), the sweeper's tick, and shutting them all down. `count` is the
// server's total over its loops, for Server::connections().
class LoopConnections {
 public:
  LoopConnections(EventLoop& loop, net::BufferPool* pool, std::atomic<std::size_t>& count) noexcept
      : loop_(loop), pool_(pool), count_(count) {}
  LoopConnections(const LoopConnections&) = delete;
  LoopConnections& operator=(const LoopConnections&) = delete;
  // Every Connection has left: each lives in a task that the loop's scope joins first.
  ~LoopConnections() { assert(connections_.empty()); }
  [[nodiscard]] net::BufferPool* pool() const noexcept { return pool_; }

  void add(Connection& conn, const net::TcpStream& stream) noexcept {
    assert(conn.owner_ == nullptr);
    conn.owner_ = this;
    conn.fd_ = stream.fd();
    conn.direct_ = stream.is_direct();
    conn.last_tick_ = tick_;
    connections_.push_front(conn);
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  // Takes `conn` off the list; nothing if it is not on it.
  void remove(Connection& conn) noexcept {
    if (conn.owner_ != this) return;
    connections_.unlink(conn);
    conn.owner_ = nullptr;
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t tick() const noexcept { return tick_; }

  // Advances the tick and shuts down the connections idle for more than `idle_ticks`.
  void sweep(std::uint64_t idle_ticks) noexcept {
    ++tick_;
    for (Connection* conn = connections_.first(); conn != nullptr;) {
      Connection* next = connections_.next(*conn);
      if (tick_ - conn->last_tick_ > idle_ticks) shut(*conn);
      conn = next;
    }
  }
  void shut_all() noexcept {
    for (Connection* conn = connections_.first(); conn != nullptr;) {
      Connection* next = connections_.next(*conn);
      shut(*conn);
      conn = next;
    }
  }

 private:
  // Ends the connection's pending recv (with 0 bytes) and any further send; its handler
  // then returns as at the peer's end of stream, and the frame closes the connection.
  // A direct descriptor's shutdown goes into the SQ now, ahead of the close the frame
  // submits later; if the SQ has no room, the next sweep tries again.
  void shut(Connection& conn) noexcept {
    if (conn.direct_) {
      const bool submitted = loop_.submit_detached([&conn](ring::Sqe& sqe) {
        ring::prep_shutdown(sqe, conn.fd_, SHUT_RDWR);
        sqe.flags |= ring::sqe_flags::fixed_file;
      });
      if (!submitted) return;
    } else {
      ::shutdown(conn.fd_, SHUT_RDWR);
    }
    conn.last_tick_ = ~std::uint64_t{0} / 2;  // once is enough
  }

  EventLoop& loop_;
  net::BufferPool* pool_;
  std::atomic<std::size_t>& count_;
  IntrusiveList<Connection, &Connection::link_> connections_;
  std::uint64_t tick_ = 0;
};

Connection::~Connection() {
  if (owner_ != nullptr) owner_->remove(*this);
}

void Connection::active() noexcept { last_tick_ = owner_->tick(); }

net::BufferPool* Connection::receive_pool() const noexcept { return owner_->pool(); }

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

Task<void> sweep_idle(LoopConnections& connections, std::chrono::milliseconds timeout,
                      std::stop_token stop) {
  const auto period = std::max(timeout / sweeps_per_timeout, std::chrono::milliseconds(1));
  while (!stop.stop_requested()) {
    const IoResult slept = co_await sleep_for(period).with_stop(stop);
    // No memory for the stop's callback: the sleep did not start; sleep without it, so
    // that the sweeps keep their pace.
    if (slept.res == -ENOMEM) co_await sleep_for(period);
    connections.sweep(static_cast<std::uint64_t>(sweeps_per_timeout));
  }
}

net::TcpListener bind_listener(const net::Address& address, bool reuse_port, bool direct,
                               std::stop_token stop) {
  net::ListenOptions options;
  options.reuse_port = reuse_port;
  options.direct = direct;
  auto listener = net::TcpListener::bind(address, options, std::move(stop));
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

Server::Server(ServerOptions options, ConnectionHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.threads == 0) options_.threads = 1;
  const bool reuse_port = options_.threads > 1;
  const bool direct = options_.direct_descriptors;
  const rlim_t open_files = raise_open_files_limit();
  direct_slots_ = static_cast<std::uint32_t>(std::min(open_files, max_direct_slots));
  listeners_.push_back(bind_listener(options_.address, reuse_port, direct, stop_.get_token()));
  auto bound = listeners_.front().local_address();
  if (!bound) throw std::system_error(bound.error(), "getsockname");
  port_ = bound->port();
  net::Address same_port = *bound;
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
  std::optional<net::BufferPool> pool;
  if (options_.receive_pool) pool.emplace(loop, *options_.receive_pool);
  if (options_.direct_descriptors) {
    auto table = net::enable_direct_descriptors(loop, direct_slots_);
    if (!table) {
      throw std::system_error(table.error(), "registering a file table of " +
                                                 std::to_string(direct_slots_) +
                                                 " slots for direct descriptors");
    }
  }
  // The listener lives and dies on its loop: destroying its accept record elsewhere,
  // even closed, would touch the loop (Multishot's destructor calls forget_cancel).
  net::TcpListener listener = std::move(listeners_[index]);
  // Allocated now, so that shutting down needs no memory: a lazy task does nothing
  // until it is awaited.
  Task<IoResult> close_listener = listener.close();
  LoopConnections connections(loop, pool ? &*pool : nullptr, connections_);
  TaskScope scope;
  std::exception_ptr failure;
  try {
    if (index == 0 && options_.handle_signals) scope.spawn(watch_signals(stop_));
    if (options_.idle_timeout.count() > 0) {
      scope.spawn(sweep_idle(connections, options_.idle_timeout, stop_.get_token()));
    }
    if (loops_up_.fetch_add(1, std::memory_order_acq_rel) + 1 == options_.threads && ready) {
      ready();
    }
    for (;;) {
      auto stream = co_await listener.accept();
      if (stream) {
        spawn_connection(scope, std::move(*stream), connections);
        continue;
      }
      if (stop_.stop_requested()) break;
      // Out of fds or slots, say: the listener paces its retries itself.
      print_error("accept", stream.error());
    }
  } catch (...) {
    failure = std::current_exception();
    // A loop that cannot serve stops the server, now: the join below waits for the
    // signal watcher and the sweeper, which end only then.
    stop_.request_stop();
  }
  (void)co_await std::move(close_listener);
  connections.shut_all();
  try {
    co_await scope.join();  // rethrows what a task of the scope threw (none should)
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  if (failure) std::rethrow_exception(failure);
}

namespace {

// Closes a connection without waiting for it, so that a connection's frame holds no
// awaitable for its close. A direct descriptor is closed through the ring, behind any
// shutdown the sweeper submitted for it (LoopConnections::shut), which must not reach
// the connection that takes the slot next; if the SQ has no room even after handing
// its entries to the kernel, the stream's destructor clears the slot instead. An fd is
// closed with close(2), which does not block on a socket without SO_LINGER (the sweeper
// shuts those down with shutdown(2), so nothing is queued behind).
void close_now(net::TcpStream& stream) noexcept {
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

// A connection whose frames cannot be allocated is closed at once (by the destructor
// of the stream, which is never registered); the loop goes on accepting.
void Server::spawn_connection(TaskScope& scope, net::TcpStream stream,
                              LoopConnections& connections) noexcept {
  try {
    scope.spawn(run_connection(std::move(stream), connections));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "connection not served: %s\n", e.what());
  }
}

Task<void> Server::run_connection(net::TcpStream stream, LoopConnections& connections) {
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

net::BufferPoolOptions default_receive_pool() {
  net::BufferPoolOptions options;
  options.buffer_size = 2048;
  options.count = 128;
  options.incremental = false;
  return options;
}

Task<bool> send_rest(const net::TcpStream& stream, std::span<const std::byte> data, IoResult put) {
  if (put.res < 0) co_return false;
  if (put.value() == data.size()) co_return true;
  const net::TransferResult rest = co_await stream.send_all(data.subspan(put.value()));
  co_return rest.ok();
}

// --- Command line ------------------------------------------------------------------------

namespace {

[[noreturn]] void usage_error(const char* usage, const std::string& what) {
  std::fprintf(stderr, "%s\n%s", what.c_str(), usage);
  std::exit(2);
}

std::uint64_t parse_number(const char* usage, std::string_view name, std::string_view text,
                           std::uint64_t min, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
    usage_error(usage, std::string(name) + " wants an integer in [" + std::to_string(min) + ", " +
                           std::to_string(max) + "], not '" + std::string(text) + "'");
  }
  return value;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv, const char* usage,
                               const std::vector<ExtraOption>& extra_options) {
  CommandLine line;
  line.extra.resize(extra_options.size());
  for (std::size_t i = 0; i < extra_options.size(); ++i) {
    line.extra[i] = extra_options[i].default_value;
  }
  bool have_port = false;
  const std::span<char* const> words(argv + 1, static_cast<std::size_t>(std::max(argc - 1, 0)));
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (word == "--help" || word == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 == words.size()) usage_error(usage, std::string(word) + " wants a value");
    const std::string_view value = words[++i];
    if (word == "--port") {
      line.port = static_cast<std::uint16_t>(parse_number(usage, word, value, 0, 65535));
      have_port = true;
    } else if (word == "--host") {
      line.host = value;
    } else if (word == "--threads") {
      line.threads = parse_number(usage, word, value, 1, 1024);
    } else {
      const auto extra =
          std::find_if(extra_options.begin(), extra_options.end(),
                       [word](const ExtraOption& option) { return word == option.name; });
      if (extra == extra_options.end()) {
        usage_error(usage, "unknown option '" + std::string(word) + "'");
      }
      line.extra[static_cast<std::size_t>(extra - extra_options.begin())] =
          parse_number(usage, word, value, extra->min, extra->max);
    }
  }
  if (!have_port) usage_error(usage, "--port is required");
  return line;
}

net::Address resolve(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  const std::string text = (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  auto address = net::Address::parse(text);
  if (!address) {
    std::fprintf(stderr, "--host: %s\n", address.message().c_str());
    std::exit(2);
  }
  return *address;
}

}  // namespace coring::examples
