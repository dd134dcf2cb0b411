// BufferedReader: what is buffered, and how a read moves bytes in and out of it.
//
// Buffered bytes are the storage's [begin_, end_) followed by the lease's
// [lease_pos_, size): the storage holds bytes only while they are older than the lease's.
// buffered() is the storage's part when it has one, else the lease's, so a delimited
// piece that lies inside one lease is a view into the lease. When a read needs more
// contiguous bytes than that, pull() copies the lease's bytes behind the storage's; a
// read_until() that then finds its delimiter gives back to the lease the bytes it had
// copied beyond it, so that only a piece that spans leases stays copied.
//
// A read first tries what is buffered (start(), from await_ready: no request at all
// when that settles it). Otherwise it is one request(body) whose again() keeps
// receiving until advance() settles the read: found, limit exceeded, or the buffer full.
// Before each receive the read's own steps leave the lease empty, so the reader holds at
// most one lease, and the receive goes to the pool, to the free end of the storage, or
// (read_some/read_exact with nothing buffered and no pool) straight into the target.
// The storage is compacted only inside a call, which is what keeps a view valid until
// the next one; a lease read to its end is released by the next call for the same
// reason.
#include "coring/net/reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "coring/ring/prep.hpp"

namespace coring::net {

using detail::ReadGoal;

namespace {
std::unique_ptr<std::byte[]> make_storage(std::uint32_t capacity) {
  if (capacity == 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "BufferedReader: BufferedReaderOptions::capacity must be above 0");
  }
  return std::make_unique<std::byte[]>(capacity);
}
}  // namespace

BufferedReader::BufferedReader(const StreamSocket& socket, BufferedReaderOptions options)
    : socket_(&socket), storage_(make_storage(options.capacity)), capacity_(options.capacity) {}

BufferedReader::BufferedReader(const StreamSocket& socket, BufferPool& pool,
                               BufferedReaderOptions options)
    : BufferedReader(socket, options) {
  pool_ = &pool;
}

BufferedReader::~BufferedReader() = default;

std::span<const std::byte> BufferedReader::buffered() const noexcept {
  if (stored() > 0) return {storage_.get() + begin_, stored()};
  return lease_.data().subspan(lease_pos_);
}

void BufferedReader::consume(std::size_t n) noexcept {
  assert(!busy_);
  release_spent();
  advance_front(n);
}

void BufferedReader::advance_front(std::size_t n) noexcept {
  assert(n <= buffered().size());
  if (stored() > 0) {
    begin_ += n;
    from_lease_ = std::min(from_lease_, stored());
    if (begin_ == end_) begin_ = end_ = 0;  // the bytes stay until the next receive
  } else {
    lease_pos_ += n;
  }
}

void BufferedReader::release_spent() noexcept {
  if (!lease_.empty() && leased() == 0) {
    lease_.reset();
    lease_pos_ = 0;
    from_lease_ = 0;
  }
}

void BufferedReader::compact() noexcept {
  if (begin_ == 0) return;
  std::memmove(storage_.get(), storage_.get() + begin_, stored());
  end_ -= begin_;
  begin_ = 0;
}

// Copies as much of the lease as fits behind the storage's bytes.
void BufferedReader::pull() noexcept {
  compact();
  const std::size_t n = std::min(leased(), capacity_ - end_);
  std::memcpy(storage_.get() + end_, lease_.data().data() + lease_pos_, n);
  end_ += n;
  lease_pos_ += n;
  from_lease_ += n;
  bytes_copied_ += n;
}

bool BufferedReader::start(ReadGoal goal, std::string_view delimiter, std::size_t limit,
                           std::span<std::byte> target) noexcept {
  assert(!busy_ && "one read at a time on a BufferedReader");
  busy_ = true;
  release_spent();
  goal_ = goal;
  delimiter_ = delimiter;
  limit_ = limit;
  target_ = target;
  scanned_ = 0;
  done_ = 0;
  before_ = buffered().size();
  error_ = {};
  outcome_ = Outcome::completed;
  status_ = Status::pending;
  return advance();
}

bool BufferedReader::advance() noexcept {
  switch (goal_) {
    case ReadGoal::until:
    case ReadGoal::line:
      return advance_until();
    case ReadGoal::fill:
      return advance_fill();
    case ReadGoal::some:
    case ReadGoal::exact:
      return advance_copy();
  }
  return true;
}

bool BufferedReader::advance_until() noexcept {
  const std::size_t d = delimiter_.size();
  const std::size_t window_max =
      limit_ > std::numeric_limits<std::size_t>::max() - d ? limit_ : limit_ + d;
  for (;;) {
    const std::span<const std::byte> bytes = buffered();
    const std::size_t window = std::min(bytes.size(), window_max);
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), window);
    const std::size_t at = text.find(delimiter_, scanned_ >= d - 1 ? scanned_ - (d - 1) : 0);
    if (at != std::string_view::npos) {
      if (stored() > 0) {
        // Bytes pulled beyond the delimiter go back to the lease they came from.
        const std::size_t beyond = std::min(from_lease_, stored() - (at + d));
        end_ -= beyond;
        lease_pos_ -= beyond;
        from_lease_ -= beyond;
        bytes_copied_ -= beyond;
      }
      found_ = text.substr(0, at);
      if (goal_ == ReadGoal::line && !found_.empty() && found_.back() == '\r') {
        found_.remove_suffix(1);
      }
      advance_front(at + d);
      status_ = Status::done;
      return true;
    }
    scanned_ = window;
    if (window == window_max || stored() == capacity_) {
      status_ = Status::exceeded;
      return true;
    }
    if (leased() == 0) break;
    pull();
  }
  release_spent();
  return false;
}

bool BufferedReader::advance_fill() noexcept {
  if (buffered().size() > before_) {
    done_ = buffered().size() - before_;
    status_ = Status::done;
    return true;
  }
  if (leased() > 0) {
    // buffered() is the lease's (the storage is empty), or the storage's with the lease
    // behind it: either way, more contiguous bytes means the lease's in the storage.
    pull();
    if (buffered().size() > before_) return advance_fill();
  }
  if (stored() == capacity_) {
    status_ = Status::exceeded;
    return true;
  }
  release_spent();
  return false;
}

bool BufferedReader::advance_copy() noexcept {
  while (done_ < target_.size()) {
    const std::span<const std::byte> bytes = buffered();
    if (bytes.empty()) break;
    const std::size_t n = std::min(bytes.size(), target_.size() - done_);
    std::memcpy(target_.data() + done_, bytes.data(), n);
    done_ += n;
    advance_front(n);
  }
  if (done_ == target_.size() || (goal_ == ReadGoal::some && done_ > 0)) {
    status_ = Status::done;
    return true;
  }
  release_spent();
  return false;
}

void BufferedReader::prep_receive(ring::Sqe& sqe) noexcept {
  const int fd = socket_->fd();
  if (pool_ != nullptr && !dry_) {
    request_ = Request::pool;
    ring::prep_recv_buffer_select(sqe, fd, pool_->group_id(), 0, 0);
  } else if ((goal_ == ReadGoal::some || goal_ == ReadGoal::exact) && buffered().empty()) {
    request_ = Request::target;
    const std::size_t n = std::min(target_.size() - done_, coring::net::detail::max_request_bytes);
    ring::prep_recv(sqe, fd, target_.subspan(done_, n), 0);
  } else {
    request_ = Request::storage;
    compact();
    ring::prep_recv(sqe, fd, {storage_.get() + end_, capacity_ - end_}, 0);
  }
  ring::use_fixed_file(sqe, socket_->is_direct());
}

// The request's CQE, in the order the loop reaps CQEs: a piece of an incremental
// buffer is claimed here (see detail::PoolRecvBody).
void BufferedReader::on_receive(const IoResult& result) noexcept {
  if (result.res <= 0) return;
  const auto n = static_cast<std::size_t>(result.res);
  switch (request_) {
    case Request::pool: {
      assert(leased() == 0);
      Result<BufferLease> lease = pool_->lease(result);
      if (!lease) {
        error_ = lease.error();
        status_ = Status::failed;
        return;
      }
      lease_ = std::move(*lease);
      lease_pos_ = 0;
      from_lease_ = 0;
      return;
    }
    case Request::target:
      done_ += n;
      break;
    case Request::storage:
      end_ += n;
      break;
  }
  dry_ = false;  // a receive outside the pool: the next one tries the pool again
}

bool BufferedReader::receive_again(const IoResult& result) noexcept {
  if (result.res == -ENOBUFS && request_ == Request::pool) {
    dry_ = true;
    return true;
  }
  if (result.res <= 0 || status_ != Status::pending) return false;
  return !advance();
}

void BufferedReader::settle(const IoResult& result) noexcept {
  outcome_ = result.outcome;
  if (status_ != Status::pending) return;
  if (result.res > 0) {
    // Bytes that again() did not see: a request a bound cut short (partial), or one that
    // completed while the loop drained (request() does not ask again() then).
    if (advance()) return;
    error_ = std::make_error_code(
        result.outcome == Outcome::partial ? std::errc::timed_out : std::errc::operation_canceled);
    status_ = Status::failed;
  } else if (result.res == 0) {
    status_ = Status::ended;
  } else {
    error_ = result.error();
    status_ = Status::failed;
  }
}

std::error_code BufferedReader::read_error() const noexcept {
  switch (status_) {
    case Status::pending:
    case Status::done:
      return {};
    case Status::exceeded:
      return Errc::limit_exceeded;
    case Status::ended:
      return Errc::end_of_stream;
    case Status::failed:
      return error_;
  }
  return {};
}

namespace detail {
void ReaderBody::prep(ring::Sqe& sqe) noexcept { reader->prep_receive(sqe); }
void ReaderBody::on_cqe(const IoResult& result) noexcept { reader->on_receive(result); }
bool ReaderBody::again(const IoResult& result) noexcept { return reader->receive_again(result); }
}  // namespace detail

}  // namespace coring::net
