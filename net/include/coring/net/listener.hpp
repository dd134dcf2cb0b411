// Listener: a bound, listening socket and its multishot accept. TcpListener and
// UnixListener name the same type; the address decides the family.
//
//   auto listener = TcpListener::bind(Address::ipv4_loopback(8080));
//   for (;;) {
//     Result<TcpStream> conn = co_await listener->accept();
//     if (!conn) break;                       // e.g. ECANCELED once closed or stopped
//     scope.spawn(serve(std::move(*conn)));
//   }
//   co_await listener->close();
//
// One IORING_OP_ACCEPT with the multishot flag (5.19) serves every accept(): the kernel
// posts a CQE per connection and the listener queues them (a runtime Multishot record).
// When `accept_queue` connections wait and nobody accepts, the listener cancels the
// request, so the kernel stops taking connections and the backlog — then SYN handling —
// pushes back on clients; it re-arms once accept() has taken the queue down to half.
// Connections nobody will take (queued when the listener closes) are closed.
//
// An error from the kernel (EMFILE, ENFILE, ENOMEM) ends the request and is returned by
// accept(); the next accept() re-arms, so a server that closes a few connections and
// calls accept() again recovers.
//
// With `direct`, connections are accepted as direct descriptors (slots of the loop's
// registered file table, which enable_direct_descriptors() sets up): no fd-table entry
// and no fd lookup per operation. The streams are then usable only on that loop.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <stop_token>
#include <type_traits>

#include "coring/net/address.hpp"
#include "coring/net/socket.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

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
}  // namespace detail

class Listener : public Socket {
 public:
  // socket(2), SO_REUSEADDR/SO_REUSEPORT as asked, bind(2), listen(2). Port 0 picks a
  // free port (local_address() tells which). `stop` closes the accept stream: accept()
  // then returns ECANCELED.
  static Result<Listener> bind(const Address& address, ListenOptions options = {},
                               std::stop_token stop = {});

  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&& other) noexcept;
  // An accept stream still armed is closed by a task spawned on its loop (the kernel
  // must finish with the record before it is freed); the fd is closed after it.
  ~Listener();

  class [[nodiscard]] AcceptAwaiter {
   public:
    explicit AcceptAwaiter(Listener& listener) noexcept : listener_(&listener) {}
    bool await_ready() noexcept {
      return listener_->record_ == nullptr || listener_->record_->next().await_ready();
    }
    void await_suspend(std::coroutine_handle<> waiter) noexcept {
      listener_->record_->next().await_suspend(waiter);
    }
    Result<StreamSocket> await_resume() noexcept {
      if (listener_->record_ == nullptr)
        return fail(std::make_error_code(std::errc::operation_canceled));
      return listener_->accepted(listener_->record_->next().await_resume());
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
  // closes the socket. accept() returns ECANCELED from here on.
  Task<IoResult> close();

  // For tests and diagnostics: accept requests submitted and pauses for backpressure.
  [[nodiscard]] std::uint64_t accept_arms() const noexcept { return record_ ? record_->arms() : 0; }
  [[nodiscard]] std::uint64_t accept_pauses() const noexcept {
    return record_ ? record_->pauses() : 0;
  }
  [[nodiscard]] std::uint32_t queued() const noexcept { return record_ ? record_->size() : 0; }

 private:
  Listener(Socket socket, const ListenOptions& options, std::stop_token stop);
  Result<StreamSocket> accepted(const IoResult& result) noexcept;
  void close_record() noexcept;

  std::unique_ptr<detail::AcceptRecord> record_;
  EventLoop* loop_ = nullptr;  // where the accept stream runs, once accept() was called
  bool direct_ = false;
};

using TcpListener = Listener;
using UnixListener = Listener;

// Registers a sparse file table of `slots` entries on `loop`'s ring, for listeners that
// accept direct descriptors. Fails (EBUSY) if the ring already has a file table.
Result<void> enable_direct_descriptors(EventLoop& loop, std::uint32_t slots) noexcept;

}  // namespace coring::net
