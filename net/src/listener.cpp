// Listener: socket setup with plain system calls, then a runtime Multishot record for
// the accept stream. The record cannot move (its address is the SQE's user_data), so
// it lives on the heap, allocated once per listener.
#include "coring/net/listener.hpp"

#include <unistd.h>

#include <cerrno>

#include "coring/runtime/event_loop.hpp"

namespace coring::net {
namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

// Owns a record whose request is still in flight until the kernel has finished with it.
Task<void> close_later(std::unique_ptr<detail::AcceptRecord> record, Socket socket) {
  co_await record->close();
  socket.reset();
}

}  // namespace

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
  record_ = std::make_unique<detail::AcceptRecord>(
      detail::AcceptPrep{fd_, options.direct},
      MultishotOptions{.bound = options.accept_queue == 0 ? 1 : options.accept_queue,
                       .fd_results = !options.direct},
      std::move(stop));
}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close_record();
    Socket::operator=(std::move(other));
    record_ = std::move(other.record_);
    loop_ = std::exchange(other.loop_, nullptr);
    direct_ = other.direct_;
  }
  return *this;
}

Listener::~Listener() { close_record(); }

void Listener::close_record() noexcept {
  if (!record_ || !record_->in_flight()) return;
  // In flight means its loop is alive: a loop's destruction drains every request first.
  loop_->spawn(close_later(std::move(record_), Socket(release())));
}

Task<IoResult> Listener::close() {
  if (record_) {
    co_await record_->close();
    // Freed here, on the loop's thread while the loop is alive: a closed Multishot's
    // destructor may still call into its loop (EventLoop::forget_cancel), which must not
    // happen after the loop is gone, as it would for a listener destroyed later.
    record_.reset();
  }
  co_return co_await Socket::close();
}

Result<StreamSocket> Listener::accepted(const IoResult& result) noexcept {
  if (result.ok()) {
    return StreamSocket(static_cast<int>(result.res), direct_ ? loop_ : nullptr);
  }
  // An error ended the stream (or it was closed): the next accept() tries again.
  if (!record_->closed()) record_->rearm();
  return fail(result.error());
}

Result<void> enable_direct_descriptors(EventLoop& loop, std::uint32_t slots) noexcept {
  return loop.ring().register_files_sparse(slots);
}

}  // namespace coring::net
