// Listener: a bound, listening socket and its multishot accept. TcpListener and
// UnixListener name the same type; the address decides the family.
//
//   auto listener = TcpListener::bind(Address::ipv4_loopback(8080));
//   for (;;) {
//     Result<TcpStream> conn = co_await listener->accept();
//     if (conn) {
//       scope.spawn(serve(std::move(*conn)));
//     } else if (conn.error() == std::errc::operation_canceled) {
//       break;                                // closed or stopped
//     } else {
//       log(conn.error());                    // e.g. out of fds; accept() again
//     }
//   }
//   co_await listener->close();
//
// Backpressure (accept_queue), errors and the pauses after a shortage (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), the lazy close() task and direct descriptors: docs/net.md,
// "Listeners and accept".
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "coring/net/address.hpp"
#include "coring/net/socket.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

class Listener;

struct ListenOptions {
  int backlog = SOMAXCONN;          // listen(2)'s backlog
  bool reuse_address = true;        // SO_REUSEADDR (IP only)
  bool reuse_port = false;          // SO_REUSEPORT: one listener per core on the same port
  bool direct = false;              // accept as direct descriptors (see above)
  std::uint32_t accept_queue = 64;  // accepted connections queued before pausing
};
// Trivially destructible, so that a braced temporary inside co_await is safe with g++ 12
// (see MultishotOptions).
static_assert(std::is_trivially_destructible_v<ListenOptions>);

namespace detail {
struct AcceptPrep {
  int fd;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    if (direct) {
      // No SOCK_CLOEXEC: a direct descriptor is in no fd table (the kernel refuses it).
      ring::prep_multishot_accept_direct(sqe, fd, nullptr, nullptr, 0);
    } else {
      ring::prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
  }
};
using AcceptRecord = Multishot<AcceptPrep>;

// The pause before an accept request that a shortage ended is re-armed: an
// IORING_OP_TIMEOUT. An accept() called meanwhile parks its coroutine here. When the
// time is up, or the stop token fires, the record re-arms (a stopped one closes) and
// the parked accept() goes on waiting on it.
class AcceptPause final : public coring::detail::AwaitableOp {
 public:
  AcceptPause(AcceptRecord& record, std::stop_token stop) noexcept
      : AwaitableOp(&prep_fn, &complete_fn), record_(&record) {
    stop_token_ = std::move(stop);
  }
  AcceptPause(AcceptPause&&) = delete;

  [[nodiscard]] bool waiting() const noexcept { return in_flight(); }
  // Starts a pause of `duration`. Inside a running loop, with the record not in flight.
  void start(std::chrono::nanoseconds duration) noexcept;
  // Parks the coroutine of an accept() until the pause is over.
  void park(std::coroutine_handle<> consumer) noexcept { waiter_ = consumer; }

  // co_await cancel(): ends a pause early and resumes once its CQE is reaped.
  class [[nodiscard]] CancelAwaiter {
   public:
    explicit CancelAwaiter(AcceptPause& pause) noexcept : pause_(&pause) {}
    bool await_ready() const noexcept { return pause_->begin_cancel(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept { pause_->closer_ = waiter; }
    void await_resume() const noexcept {}

   private:
    AcceptPause* pause_;
  };
  CancelAwaiter cancel() noexcept { return CancelAwaiter(*this); }

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept;
  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool second) noexcept;
  bool begin_cancel() noexcept;
  void over() noexcept;

  AcceptRecord* record_;
  ring::KernelTimespec duration_{};
  std::coroutine_handle<> closer_;
};

// A listener's accept stream: the multishot record and its pause, on the heap (the
// kernel holds their addresses, and a listener moves).
struct AcceptStream {
  AcceptStream(AcceptPrep prep, MultishotOptions options, std::stop_token stop)
      : record(prep, options, stop), pause(record, std::move(stop)) {}
  [[nodiscard]] bool in_flight() const noexcept { return record.in_flight() || pause.in_flight(); }

  AcceptRecord record;
  AcceptPause pause;
};

// A close() task of a Listener that has not started: the listener points it at itself
// whenever it moves and clears it when destroyed. The task frame's copy of the link
// (move-constructed from the argument) is the one the listener knows.
class ListenerCloseLink {
 public:
  explicit ListenerCloseLink(Listener& listener) noexcept { attach(&listener); }
  ListenerCloseLink(ListenerCloseLink&& other) noexcept {
    attach(std::exchange(other.listener_, nullptr));
  }
  ListenerCloseLink& operator=(ListenerCloseLink&&) = delete;
  ~ListenerCloseLink() { detach(); }

  // The listener to close, or nullptr: it was destroyed, or a later close() took over.
  [[nodiscard]] Listener* listener() const noexcept { return listener_; }
  void detach() noexcept;

 private:
  friend class coring::net::Listener;
  void attach(Listener* listener) noexcept;

  Listener* listener_ = nullptr;
};
}  // namespace detail

class Listener : public Socket {
 public:
  // socket(2), SO_REUSEADDR/SO_REUSEPORT as asked, bind(2), listen(2). Port 0 picks a
  // free port (local_address() tells which). `stop` closes the accept stream: accept()
  // then returns ECANCELED.
  static Result<Listener> bind(const Address& address, ListenOptions options = {},
                               std::stop_token stop = {});

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  // An accept stream still armed (or pausing) is closed by a task spawned on its loop
  // (the kernel must finish with it before it is freed); the fd is closed after it.
  ~Listener();

  class [[nodiscard]] AcceptAwaiter {
   public:
    explicit AcceptAwaiter(Listener& listener) noexcept : listener_(&listener) {}
    bool await_ready() noexcept {
      detail::AcceptStream* stream = listener_->stream_.get();
      return stream == nullptr || (!stream->pause.waiting() && stream->record.next().await_ready());
    }
    void await_suspend(std::coroutine_handle<> waiter) noexcept {
      detail::AcceptStream& stream = *listener_->stream_;
      if (stream.pause.waiting()) {
        stream.pause.park(waiter);
      } else {
        stream.record.next().await_suspend(waiter);
      }
    }
    Result<StreamSocket> await_resume() noexcept {
      if (listener_->stream_ == nullptr)
        return fail(std::make_error_code(std::errc::operation_canceled));
      return listener_->accepted(listener_->stream_->record.next().await_resume());
    }

   private:
    Listener* listener_;
  };
  // The next connection, in the order the kernel accepted them; ECANCELED once closed.
  AcceptAwaiter accept() noexcept {
    if (loop_ == nullptr) loop_ = EventLoop::current();
    return AcceptAwaiter(*this);
  }
  // Cancels the accept stream (connections queued and not taken are closed), then
  // closes the socket. accept() returns ECANCELED from the moment the task starts. A
  // listener has one pending close task: an earlier one that has not started returns
  // EBADF (docs/net.md, "Listeners and accept").
  Task<IoResult> close();

  // For tests and diagnostics: accept requests submitted, pauses for backpressure, and
  // pauses after a shortage.
  [[nodiscard]] std::uint64_t accept_arms() const noexcept {
    return stream_ ? stream_->record.arms() : 0;
  }
  [[nodiscard]] std::uint64_t accept_pauses() const noexcept {
    return stream_ ? stream_->record.pauses() : 0;
  }
  [[nodiscard]] std::uint64_t shortage_pauses() const noexcept { return shortage_pauses_; }
  [[nodiscard]] std::uint32_t queued() const noexcept {
    return stream_ ? stream_->record.size() : 0;
  }

 private:
  friend class detail::ListenerCloseLink;

  Listener(Socket socket, const ListenOptions& options, std::stop_token stop);
  static Task<IoResult> close_linked(detail::ListenerCloseLink link);
  Result<StreamSocket> accepted(const IoResult& result) noexcept;
  Result<StreamSocket> after_shortage(int error) noexcept;
  void close_stream() noexcept;
  void take_link(Listener& other) noexcept;

  std::unique_ptr<detail::AcceptStream> stream_;
  EventLoop* loop_ = nullptr;  // where the accept stream runs, once accept() was called
  detail::ListenerCloseLink* close_link_ = nullptr;  // a close() task not started yet
  std::uint64_t shortage_pauses_ = 0;
  std::uint32_t shortages_ = 0;  // accept requests a shortage ended since the last connection
  bool direct_ = false;
};

using TcpListener = Listener;
using UnixListener = Listener;

// Registers a sparse file table of `slots` entries on `loop`'s ring, for listeners that
// accept direct descriptors. Fails (EBUSY) if the ring already has a file table.
Result<void> enable_direct_descriptors(EventLoop& loop, std::uint32_t slots) noexcept;

}  // namespace coring::net
