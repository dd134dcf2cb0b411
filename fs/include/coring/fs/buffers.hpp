// Memory for file I/O: page-aligned buffers for O_DIRECT, and a pool of buffers
// registered with a loop's ring for read_fixed/write_fixed.
//
// Registering pins the pages once, so read_fixed/write_fixed skip that per request ("fixed"
// means registered, unlike net::BufferPool's provided buffers); a ring has one table, so a
// second registered pool fails with EBUSY. Leases, acquire() and O_DIRECT alignment:
// docs/fs.md, "Registered buffers and files".
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "coring/runtime/intrusive_list.hpp"

namespace coring {
class EventLoop;
}

namespace coring::fs {

// `size` bytes aligned to `alignment` (a power of two), zero-filled: an O_DIRECT buffer.
// The allocation is rounded up to a multiple of the alignment; size() is what was asked.
class AlignedBuffer {
 public:
  static constexpr std::size_t page_size = 4096;

  AlignedBuffer() noexcept = default;
  // Throws std::bad_alloc, and std::system_error (invalid_argument) unless `alignment`
  // is a power of two.
  explicit AlignedBuffer(std::size_t size, std::size_t alignment = page_size);

  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {memory_.get(), size_}; }
  [[nodiscard]] std::byte* data() const noexcept { return memory_.get(); }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t alignment() const noexcept { return alignment_; }

 private:
  struct Free {
    std::size_t alignment;
    void operator()(std::byte* memory) const noexcept;
  };
  std::unique_ptr<std::byte, Free> memory_{nullptr, Free{page_size}};
  std::size_t size_ = 0;
  std::size_t alignment_ = page_size;
};

// Part of a registered buffer: the bytes, and the buffer's index in the ring's table.
struct FixedSlice {
  std::span<std::byte> bytes;
  std::uint16_t index = 0;

  [[nodiscard]] FixedSlice first(std::size_t count) const noexcept {
    return {bytes.first(count), index};
  }
  [[nodiscard]] FixedSlice subspan(std::size_t offset, std::size_t count) const noexcept {
    return {bytes.subspan(offset, count), index};
  }
};

class FixedBufferPool;

// A lease on one buffer of a FixedBufferPool, given back when destroyed. Move-only.
class FixedBuffer {
 public:
  FixedBuffer() noexcept = default;
  FixedBuffer(FixedBuffer&& other) noexcept;
  FixedBuffer& operator=(FixedBuffer&& other) noexcept;
  FixedBuffer(const FixedBuffer&) = delete;
  FixedBuffer& operator=(const FixedBuffer&) = delete;
  ~FixedBuffer() { reset(); }

  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::uint16_t index() const noexcept { return index_; }
  [[nodiscard]] bool valid() const noexcept { return pool_ != nullptr; }
  // Whether the pool's buffers are registered (and so usable by read_fixed/write_fixed).
  [[nodiscard]] bool registered() const noexcept;
  // The whole buffer, or its first `count` bytes, for read_fixed/write_fixed.
  [[nodiscard]] FixedSlice slice() const noexcept { return {bytes_, index_}; }
  [[nodiscard]] FixedSlice first(std::size_t count) const noexcept { return slice().first(count); }
  operator FixedSlice() const noexcept { return slice(); }  // NOLINT: implicit by design
  // Gives the buffer back to its pool now.
  void reset() noexcept;

 private:
  friend class FixedBufferPool;
  FixedBuffer(FixedBufferPool& pool, std::uint16_t index, std::span<std::byte> bytes) noexcept
      : pool_(&pool), index_(index), bytes_(bytes) {}

  FixedBufferPool* pool_ = nullptr;
  std::uint16_t index_ = 0;
  std::span<std::byte> bytes_;
};

struct FixedBufferPoolOptions {
  std::uint32_t count = 32;            // buffers, 1..16384 (the kernel's table limit)
  std::size_t buffer_size = 64 << 10;  // bytes each, rounded up to the page size; <= 1 GiB
  // Register the buffers with the loop's ring. A pool that is not registered still
  // hands out aligned buffers, for read_at/write_at (a fallback where RLIMIT_MEMLOCK
  // forbids pinning).
  bool register_buffers = true;
};

// `count` page-aligned buffers registered with one loop's ring. Create, use and destroy
// it on that loop's thread; every lease must be given back before it is destroyed.
// Not movable: leases point to it.
class FixedBufferPool {
 public:
  // Throws std::system_error: invalid_argument for a bad count or size, or the code with
  // which the kernel refuses the registration (register_category(): ENOMEM names
  // RLIMIT_MEMLOCK; EBUSY means the ring already has registered buffers).
  FixedBufferPool(EventLoop& loop, const FixedBufferPoolOptions& options);
  ~FixedBufferPool();
  FixedBufferPool(const FixedBufferPool&) = delete;
  FixedBufferPool& operator=(const FixedBufferPool&) = delete;

  // A free buffer, or nothing when all are leased.
  [[nodiscard]] std::optional<FixedBuffer> try_acquire() noexcept;

  // co_await pool.acquire(): a free buffer, waiting (FIFO) for one to be given back.
  class [[nodiscard]] AcquireOp {
   public:
    explicit AcquireOp(FixedBufferPool& pool) noexcept : pool_(&pool) {}
    AcquireOp(const AcquireOp&) = delete;
    AcquireOp& operator=(const AcquireOp&) = delete;
    ~AcquireOp();
    bool await_ready() noexcept;
    void await_suspend(std::coroutine_handle<> waiter) noexcept;
    FixedBuffer await_resume() noexcept { return std::move(*buffer_); }

   private:
    friend class FixedBufferPool;
    FixedBufferPool* pool_;
    std::optional<FixedBuffer> buffer_;
    std::coroutine_handle<> waiter_;
    ListHook hook_;  // in the pool's waiters while it waits
  };
  [[nodiscard]] AcquireOp acquire() noexcept { return AcquireOp(*this); }

  [[nodiscard]] std::uint32_t count() const noexcept {
    return static_cast<std::uint32_t>(iovecs_count_);
  }
  [[nodiscard]] std::size_t buffer_size() const noexcept { return buffer_size_; }
  [[nodiscard]] std::uint32_t available() const noexcept {
    return static_cast<std::uint32_t>(free_.size());
  }
  [[nodiscard]] bool registered() const noexcept { return registered_; }

 private:
  friend class FixedBuffer;
  FixedBuffer lease(std::uint16_t index) noexcept;
  void give_back(std::uint16_t index) noexcept;

  EventLoop& loop_;
  AlignedBuffer memory_;
  std::size_t buffer_size_;
  std::size_t iovecs_count_;
  std::vector<std::uint16_t> free_;  // a stack: the most recently used buffer is warmest
  IntrusiveList<AcquireOp, &AcquireOp::hook_> waiters_;  // FIFO
  bool registered_ = false;
};

}  // namespace coring::fs
