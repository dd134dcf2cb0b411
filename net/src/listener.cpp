// Listener: socket setup with plain system calls, then the accept stream — a runtime
// Multishot record and the pause that spaces out its re-arms after a shortage — which
// cannot move (their addresses are user_data) and so live on the heap, allocated once
// per listener.
//
// A shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM) ends the multishot accept with the
// connection still in the backlog, so re-arming at once fails at once, again and again,
// until something frees what ran out. The first one re-arms at once; after that
// accepted() arms the AcceptPause instead (an IORING_OP_TIMEOUT), and the record re-arms
// when it expires. Meanwhile accept() parks on the pause rather than on the ended
// record, which would hand out the same error again at once.
#include "coring/net/listener.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "coring/net/error.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

// Owns a stream whose requests are still in flight until the kernel has finished with
// them; the listening socket is closed after it.
Task<void> close_later(std::unique_ptr<detail::AcceptStream> stream, Socket socket) {
  co_await stream->record.close();
  co_await stream->pause.cancel();
  socket.reset();
}

// Whether `error` (a positive errno from an accept) says that something ran out.
bool is_shortage(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

// The pause after the n-th shortage in a row: none after the first, then 1 ms doubling
// up to 1 s.
std::chrono::milliseconds pause_after(std::uint32_t shortages) noexcept {
  if (shortages <= 1) return 0ms;
  const std::uint32_t doublings = std::min<std::uint32_t>(shortages - 2, 10);
  return std::min<std::chrono::milliseconds>(1ms * (1U << doublings), 1s);
}

// Whether the system-wide file table is full: /proc/sys/fs/file-nr holds "allocated
// unused max". Read only after a direct accept's ENFILE, which is either this or the
// loop's own table; opening the file fails with ENFILE itself when it is this.
bool system_file_table_full() noexcept {
  const int fd = ::open("/proc/sys/fs/file-nr", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENFILE;
  char text[96];
  const ssize_t length = ::read(fd, text, sizeof(text));
  ::close(fd);
  if (length <= 0) return false;
  const char* const end = text + length;
  std::uint64_t counts[3] = {};
  const char* at = text;
  for (std::uint64_t& count : counts) {
    while (at < end && (*at == ' ' || *at == '\t')) ++at;
    const auto parsed = std::from_chars(at, end, count);
    if (parsed.ec != std::errc()) return false;
    at = parsed.ptr;
  }
  return counts[0] >= counts[2];
}

// What a caller sees for a shortage: the fd errors name the limit that was hit.
std::error_code shortage_error(int error, bool direct) noexcept {
  if (error == EMFILE) return Errc::fd_limit;
  if (error == ENFILE) {
    return direct && !system_file_table_full() ? Errc::direct_table_full : Errc::system_file_limit;
  }
  return {error, std::system_category()};
}

}  // namespace

// --- The pause after a shortage --------------------------------------------------------

namespace detail {

void AcceptPause::start(std::chrono::nanoseconds duration) noexcept {
  duration_ = ring::to_kernel_timespec(duration);
  // Not started when the stop token has fired already: over() closes the record then.
  if (!AwaitableOp::start({})) over();
}

void AcceptPause::prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
  auto& pause = static_cast<AcceptPause&>(self);
  ring::prep_timeout(*sqes[0], &pause.duration_, 0, 0);
}

void AcceptPause::complete_fn(Operation& self, const ring::Cqe& /*cqe*/, bool /*second*/) noexcept {
  // Expired (-ETIME) or cancelled (-ECANCELED: stop, close, the loop's drain) alike.
  static_cast<AcceptPause&>(self).over();
}

bool AcceptPause::begin_cancel() noexcept {
  if (!in_flight()) return true;
  coring::detail::LoopOps(*loop_).cancel(
      *this);  // completes here, synchronously, if still waiting for room
  return !in_flight();
}

void AcceptPause::over() noexcept {
  // Let go of the stop callback now, on the loop's thread while the loop is alive: the
  // listener may be destroyed after it.
  if (stop_callback_) {
    stop_callback_.reset();
    coring::detail::LoopOps(*loop_).forget_cancel(*this);
  }
  // A closed record stays closed and a stopped one closes. While the loop drains nothing
  // may be armed (the drain would wait for it for ever): the record closes instead, which
  // lets go of its loop now, as a listener that outlives the loop needs. It is not in
  // flight, so its close completes at once.
  if (loop_->draining()) {
    (void)record_->close().await_ready();
  } else {
    record_->rearm();
  }
  if (waiter_) {
    const std::coroutine_handle<> consumer = std::exchange(waiter_, {});
    auto next = record_->next();
    if (next.await_ready()) {
      coring::detail::LoopOps(*loop_).schedule(consumer);
    } else {
      next.await_suspend(consumer);
    }
  }
  if (closer_) coring::detail::LoopOps(*loop_).schedule(std::exchange(closer_, {}));
}

// --- close() tasks that follow their listener ------------------------------------------

void ListenerCloseLink::attach(Listener* listener) noexcept {
  listener_ = listener;
  if (listener_ == nullptr) return;
  // One pending close per listener: an earlier task that has not started finds it gone.
  if (listener_->close_link_ != nullptr && listener_->close_link_ != this) {
    listener_->close_link_->listener_ = nullptr;
  }
  listener_->close_link_ = this;
}

void ListenerCloseLink::detach() noexcept {
  if (listener_ != nullptr && listener_->close_link_ == this) listener_->close_link_ = nullptr;
  listener_ = nullptr;
}

}  // namespace detail

// --- Listener ----------------------------------------------------------------------------

Result<Listener> Listener::bind(const Address& address, ListenOptions options,
                                std::stop_token stop) {
  auto socket = open_socket(address.domain(), SOCK_STREAM);
  if (!socket) return fail(socket.error());
  if (!address.is_unix()) {
    if (options.reuse_address) {
      if (auto set = socket->set_reuse_address(true); !set) return fail(set.error());
    }
    if (options.reuse_port) {
      if (auto set = socket->set_option(SOL_SOCKET, SO_REUSEPORT, 1); !set) {
        return fail(set.error());
      }
    }
  }
  if (::bind(socket->fd(), address.data(), address.size()) != 0) return fail(last_error());
  if (::listen(socket->fd(), options.backlog) != 0) return fail(last_error());
  return Listener(std::move(*socket), options, std::move(stop));
}

Listener::Listener(Socket socket, const ListenOptions& options, std::stop_token stop)
    : Socket(std::move(socket)), direct_(options.direct) {
  stream_ = std::make_unique<detail::AcceptStream>(
      detail::AcceptPrep{fd_, options.direct},
      MultishotOptions{.bound = options.accept_queue == 0 ? 1 : options.accept_queue,
                       .fd_results = !options.direct,
                       .direct_fd_results = options.direct},
      std::move(stop));
}

Listener::Listener(Listener&& other) noexcept
    : Socket(std::move(other)),
      stream_(std::move(other.stream_)),
      loop_(other.loop_),
      shortage_pauses_(other.shortage_pauses_),
      shortages_(other.shortages_),
      direct_(other.direct_) {
  take_link(other);
}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close_stream();
    // A close task of the listener being replaced has nothing left to close.
    if (close_link_ != nullptr) close_link_->detach();
    Socket::operator=(std::move(other));
    stream_ = std::move(other.stream_);
    loop_ = std::exchange(other.loop_, nullptr);
    shortage_pauses_ = other.shortage_pauses_;
    shortages_ = other.shortages_;
    direct_ = other.direct_;
    take_link(other);
  }
  return *this;
}

Listener::~Listener() {
  if (close_link_ != nullptr) close_link_->detach();
  close_stream();
}

void Listener::take_link(Listener& other) noexcept {
  close_link_ = std::exchange(other.close_link_, nullptr);
  if (close_link_ != nullptr) close_link_->listener_ = this;
}

void Listener::close_stream() noexcept {
  if (!stream_ || !stream_->in_flight()) return;
  // In flight means its loop is alive: a loop's destruction drains every request first.
  loop_->spawn(close_later(std::move(stream_), Socket(release())));
}

Task<IoResult> Listener::close() { return close_linked(detail::ListenerCloseLink(*this)); }

Task<IoResult> Listener::close_linked(detail::ListenerCloseLink link) {
  Listener* self = link.listener();
  if (self == nullptr) co_return IoResult{-EBADF, 0};
  link.detach();
  // From here the stream and the fd are this task's: the listener is closed, and may
  // move or be destroyed while the task waits.
  std::unique_ptr<detail::AcceptStream> stream = std::move(self->stream_);
  Socket socket(self->release());
  if (stream) {
    // Awaitables, not tasks: closing allocates nothing, so that it cannot fail when
    // memory has run out (the task's own frame was allocated when close() was called).
    // The record first; then the pause ends, which hands a parked accept() to the
    // closed record.
    co_await stream->record.close();
    co_await stream->pause.cancel();
    // Freed here, on the loop's thread while the loop is alive: a closed Multishot's
    // destructor may still call into its loop (EventLoop::forget_cancel), which must not
    // happen after the loop is gone, as it would for a listener destroyed later.
    stream.reset();
  }
  co_return co_await socket.close();
}

Result<StreamSocket> Listener::accepted(const IoResult& result) noexcept {
  if (result.ok()) {
    shortages_ = 0;
    return StreamSocket(static_cast<int>(result.res), direct_ ? loop_ : nullptr);
  }
  // An error ended the stream (or it was closed): accept again, at once or after a pause.
  if (stream_->record.closed()) return fail(result.error());
  if (is_shortage(-result.res)) return after_shortage(-result.res);
  stream_->record.rearm();
  return fail(result.error());
}

Result<StreamSocket> Listener::after_shortage(int error) noexcept {
  if (shortages_ != UINT32_MAX) ++shortages_;
  const std::chrono::milliseconds pause = pause_after(shortages_);
  if (pause == 0ms) {
    stream_->record.rearm();
  } else {
    ++shortage_pauses_;
    stream_->pause.start(pause);
  }
  return fail(shortage_error(error, direct_));
}

Result<void> enable_direct_descriptors(EventLoop& loop, std::uint32_t slots) noexcept {
  return coring::detail::LoopOps(loop).ring().register_files_sparse(slots);
}

}  // namespace coring::net
