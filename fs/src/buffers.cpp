// AlignedBuffer and FixedBufferPool: one page-aligned allocation cut into equal
// buffers, registered with the loop's ring as one table entry per buffer.
//
// Leases come from a stack of free indices (the buffer given back last is handed out
// next, while its cache lines are warm). When none is free, acquire() queues its
// awaiter (FIFO); giving a buffer back hands it straight to the oldest waiter and
// schedules that coroutine on the loop, so a buffer never sits free while someone waits.
#include "coring/fs/buffers.hpp"

#include <sys/uio.h>

#include <bit>
#include <cstring>
#include <new>
#include <system_error>

#include "coring/ring/detail/log.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::fs {

namespace {
constexpr std::uint32_t max_registered_buffers = 1U << 14;     // IORING_MAX_REG_BUFFERS
constexpr std::size_t max_buffer_size = std::size_t{1} << 30;  // the kernel's per-buffer limit

std::size_t round_up(std::size_t size, std::size_t alignment) noexcept {
  return (size + alignment - 1) & ~(alignment - 1);
}
}  // namespace

// --- AlignedBuffer ---------------------------------------------------------------------

AlignedBuffer::AlignedBuffer(std::size_t size, std::size_t alignment)
    : memory_(nullptr, Free{alignment}), size_(size), alignment_(alignment) {
  if (!std::has_single_bit(alignment)) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "fs::AlignedBuffer: alignment must be a power of two");
  }
  if (size == 0) return;
  const std::size_t allocated = round_up(size, alignment);
  auto* memory = static_cast<std::byte*>(::operator new (allocated, std::align_val_t{alignment}));
  std::memset(memory, 0, allocated);
  memory_.reset(memory);
}

void AlignedBuffer::Free::operator()(std::byte* memory) const noexcept {
  ::operator delete (memory, std::align_val_t{alignment});
}

// --- FixedBuffer -----------------------------------------------------------------------

FixedBuffer::FixedBuffer(FixedBuffer&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), index_(other.index_), bytes_(other.bytes_) {}

FixedBuffer& FixedBuffer::operator=(FixedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    index_ = other.index_;
    bytes_ = other.bytes_;
  }
  return *this;
}

bool FixedBuffer::registered() const noexcept { return pool_ != nullptr && pool_->registered(); }

void FixedBuffer::reset() noexcept {
  if (pool_ != nullptr) std::exchange(pool_, nullptr)->give_back(index_);
}

// --- FixedBufferPool -------------------------------------------------------------------

FixedBufferPool::FixedBufferPool(EventLoop& loop, const FixedBufferPoolOptions& options)
    : loop_(loop),
      buffer_size_(round_up(options.buffer_size, AlignedBuffer::page_size)),
      iovecs_count_(options.count) {
  if (options.count == 0 || options.count > max_registered_buffers) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "fs::FixedBufferPool: count must be 1..16384");
  }
  if (options.buffer_size == 0 || options.buffer_size > max_buffer_size) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "fs::FixedBufferPool: buffer_size must be 1 byte..1 GiB");
  }
  memory_ = AlignedBuffer(buffer_size_ * options.count);
  std::vector<iovec> iovecs(options.count);
  for (std::uint32_t i = 0; i < options.count; ++i) {
    iovecs[i] = iovec{memory_.data() + i * buffer_size_, buffer_size_};
  }
  if (options.register_buffers) {
    if (auto registered = coring::detail::LoopOps(loop_).ring().register_buffers(iovecs);
        !registered) {
      throw std::system_error(registered.error(), "fs::FixedBufferPool: registering the buffers");
    }
    registered_ = true;
  }
  free_.reserve(options.count);
  for (std::uint32_t i = options.count; i > 0; --i)
    free_.push_back(static_cast<std::uint16_t>(i - 1));
}

FixedBufferPool::~FixedBufferPool() {
  assert(free_.size() == iovecs_count_ && "a FixedBufferPool destroyed with buffers leased");
  assert(waiters_.empty() && "a FixedBufferPool destroyed with coroutines waiting");
  if (registered_) {
    if (auto done = coring::detail::LoopOps(loop_).ring().unregister_buffers(); !done) {
      coring::detail::log_error("fs", "fs::~FixedBufferPool: unregister_buffers", done.error());
    }
  }
}

std::optional<FixedBuffer> FixedBufferPool::try_acquire() noexcept {
  if (free_.empty()) return std::nullopt;
  const std::uint16_t index = free_.back();
  free_.pop_back();
  return lease(index);
}

FixedBuffer FixedBufferPool::lease(std::uint16_t index) noexcept {
  return FixedBuffer(*this, index, memory_.bytes().subspan(index * buffer_size_, buffer_size_));
}

void FixedBufferPool::give_back(std::uint16_t index) noexcept {
  if (waiters_.empty()) {
    free_.push_back(index);  // never reallocates: reserved for every buffer
    return;
  }
  AcquireOp& waiter = waiters_.pop_front();
  waiter.buffer_.emplace(lease(index));
  coring::detail::LoopOps(loop_).schedule(waiter.waiter_);
}

FixedBufferPool::AcquireOp::~AcquireOp() {
  if (hook_.linked()) decltype(pool_->waiters_)::unlink(*this);  // destroyed while it waits
}

bool FixedBufferPool::AcquireOp::await_ready() noexcept {
  buffer_ = pool_->try_acquire();
  return buffer_.has_value();
}

void FixedBufferPool::AcquireOp::await_suspend(std::coroutine_handle<> waiter) noexcept {
  waiter_ = waiter;
  pool_->waiters_.push_back(*this);
}

}  // namespace coring::fs
