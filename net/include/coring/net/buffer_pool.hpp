// BufferPool: receive buffers the kernel picks, from a provided-buffer ring of one loop.
//
//   BufferPool pool(loop, {.buffer_size = 16384, .count = 256});
//   Result<BufferLease> got = co_await stream.recv(pool);   // one receive
//   RecvStream chunks = stream.recv_stream(pool);            // multishot: many receives
//   Result<BufferLease> next = co_await chunks.next();
//   use(next->data());                                       // the kernel-filled bytes
//   // dropping the lease hands the buffer back to the kernel
//
// The pool, incremental consumption (6.12) and the lifetimes of pools, leases and
// streams: docs/net.md, "Provided buffers". Loop thread only. No allocation after
// construction.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <utility>

#include "coring/net/socket.hpp"
#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/intrusive_list.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {
class EventLoop;
}

namespace coring::net {

class BufferPool;
class RecvStream;

struct BufferPoolOptions {
  std::uint32_t buffer_size = 4096;  // bytes per buffer
  std::uint32_t count = 256;         // buffers, a power of two up to 32768
  std::uint16_t group_id = 0;        // 0: the next free id of this process's counter
  bool incremental = true;           // ask for incremental consumption (6.12)
};

// The bytes of one receive, in a buffer of a BufferPool; the buffer goes back to the
// kernel when the lease is dropped (or reset()). An empty lease with no bytes is the
// peer's end of stream.
class BufferLease {
 public:
  BufferLease() noexcept = default;
  BufferLease(BufferLease&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)),
        data_(other.data_),
        size_(std::exchange(other.size_, 0)),
        id_(other.id_) {}
  BufferLease& operator=(BufferLease&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      data_ = other.data_;
      size_ = std::exchange(other.size_, 0);
      id_ = other.id_;
    }
    return *this;
  }
  BufferLease(const BufferLease&) = delete;
  BufferLease& operator=(const BufferLease&) = delete;
  ~BufferLease() { reset(); }

  [[nodiscard]] std::span<std::byte> data() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // No bytes: the peer ended the stream.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  // The buffer's id in its pool (for diagnostics); meaningful while the lease holds one.
  [[nodiscard]] std::uint16_t buffer_id() const noexcept { return id_; }
  // Gives the buffer back now.
  inline void reset() noexcept;

 private:
  friend class BufferPool;
  BufferLease(BufferPool* pool, std::byte* data, std::uint32_t size, std::uint16_t id) noexcept
      : pool_(pool), data_(data), size_(size), id_(id) {}

  BufferPool* pool_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint16_t id_ = 0;
};

namespace detail {

class BufferWaitList;

// What the wait list keeps of a stream on the pool (a base of RecvStream).
class BufferWaiter {
 public:
  // The stream's answer to a returned buffer: whether it re-armed its request for it.
  using WakeFn = bool (*)(BufferWaiter& self) noexcept;
  explicit BufferWaiter(WakeFn wake) noexcept : wake_(wake) {}

 private:
  friend class BufferWaitList;
  WakeFn wake_;
  ListHook starved_link_;              // in the list of streams waiting for a buffer
  ListHook woken_link_;                // in the list of streams woken and not yet judged
  std::uint64_t woken_round_ = 0;      // the verdict NOP that judges this wake
  std::uint64_t returned_at_arm_ = 0;  // buffers returned when the request was armed
};

// The pool's starvation protocol: which stream a returned buffer re-arms. A receive
// that finds the pool empty ends with -ENOBUFS (its bytes stay in the socket) and its
// stream waits here, oldest first; each returned buffer wakes the oldest, which holds
// the wake until a CQE carries a buffer. If it loses the buffer it goes back to the
// head; if its request ends without one, or waits for data without a CQE (found by a
// NOP behind the re-arm), the wake passes on. docs/net.md draws the states.
class BufferWaitList {
 public:
  explicit BufferWaitList(EventLoop& loop);
  ~BufferWaitList();
  BufferWaitList(const BufferWaitList&) = delete;
  BufferWaitList& operator=(const BufferWaitList&) = delete;

  // A stream's part. It joins when built and leaves when destroyed (out of every list,
  // passing nothing on: it holds nothing by then).
  void join() noexcept { ++streams_; }
  void leave(BufferWaiter& stream) noexcept;
  // Its request is about to be armed.
  void armed(BufferWaiter& stream) const noexcept { stream.returned_at_arm_ = returned_; }
  // A CQE of its request carried a buffer; `buffer_has_room`: the kernel keeps filling
  // it (incremental consumption), so another stream may take the rest.
  void took_buffer(BufferWaiter& stream, bool buffer_has_room) noexcept;
  // Its request ended with -ENOBUFS: true if it now waits for a buffer, false if one
  // came back since it was armed (re-arm at once).
  bool starve(BufferWaiter& stream) noexcept;
  // Its request ended for good (end of stream, error, close): out of the list, and a
  // wake it holds unused goes to the next stream.
  void done(BufferWaiter& stream) noexcept;

  // The pool's part: a buffer went back to the kernel.
  void buffer_returned() noexcept;
  [[nodiscard]] std::uint64_t returned() const noexcept { return returned_; }
  [[nodiscard]] std::uint32_t streams() const noexcept { return streams_; }

 private:
  class VerdictOp;
  void wake_next() noexcept;
  bool clear_woken(BufferWaiter& stream) noexcept;
  void verdict_done() noexcept;

  EventLoop* loop_;
  IntrusiveList<BufferWaiter, &BufferWaiter::starved_link_> starved_;  // oldest first
  IntrusiveList<BufferWaiter, &BufferWaiter::woken_link_> woken_;
  VerdictOp* verdict_;               // owned; outlives the list if its NOP is in flight
  std::uint64_t verdict_round_ = 0;  // NOPs submitted so far
  std::uint64_t returned_ = 0;       // buffers handed back to the kernel
  std::uint32_t streams_ = 0;        // streams alive on the pool
};

}  // namespace detail

class BufferPool {
 public:
  // Registers the ring on `loop`'s ring; throws std::system_error if the kernel refuses
  // (before 5.19: no provided-buffer rings) or memory runs out.
  explicit BufferPool(EventLoop& loop, BufferPoolOptions options = {});
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  [[nodiscard]] std::uint16_t group_id() const noexcept { return ring_.group_id(); }
  [[nodiscard]] std::uint32_t buffer_size() const noexcept { return buffer_size_; }
  [[nodiscard]] std::uint32_t count() const noexcept { return ring_.entries(); }
  [[nodiscard]] bool incremental() const noexcept { return ring_.incremental(); }
  // Buffers the application holds (some lease on them, or the kernel is still filling
  // them piece by piece): count() - held() are in the kernel's hands.
  [[nodiscard]] std::uint32_t held() const noexcept { return held_; }
  // Buffers handed back to the kernel since construction (for tests and diagnostics).
  [[nodiscard]] std::uint64_t returned() const noexcept { return waiters_.returned(); }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

  // The bytes a receive's CQE delivered (res, flags) as a lease; an error result is
  // returned as its error; a result of 0 is an empty lease (end of stream).
  Result<BufferLease> lease(const IoResult& result) noexcept;
  // The streams that wait for this pool's buffers (RecvStream's part of the protocol).
  [[nodiscard]] detail::BufferWaitList& waiters() noexcept { return waiters_; }

 private:
  friend class BufferLease;

  struct Slot {
    std::uint32_t head = 0;    // bytes of the buffer handed out so far (incremental)
    std::uint32_t leases = 0;  // leases on pieces of it
    bool in_kernel = true;     // the kernel owns it, or may still add pieces to it
  };

  void release(std::uint16_t id) noexcept;
  void give_back(std::uint16_t id) noexcept;
  [[nodiscard]] std::byte* buffer(std::uint16_t id) const noexcept {
    return memory_.get() + std::size_t{buffer_size_} * id;
  }
  EventLoop* loop_;
  ring::BufferRing ring_;
  std::uint32_t buffer_size_;
  std::unique_ptr<std::byte[]> memory_;
  std::unique_ptr<Slot[]> slots_;
  std::uint32_t held_ = 0;
  detail::BufferWaitList waiters_;
};

inline void BufferLease::reset() noexcept {
  if (pool_ == nullptr) return;
  std::exchange(pool_, nullptr)->release(id_);
  size_ = 0;
}

namespace detail {
// recv(pool): one IORING_OP_RECV that selects a buffer of the pool.
//
// The piece of the buffer is claimed when the CQE is reaped, not when the coroutine
// resumes: with incremental consumption only the order of a buffer's CQEs says where
// each piece starts, and other receives on the pool (a RecvStream, another recv(pool))
// may complete in between.
struct PoolRecvBody {
  BufferPool* pool;
  int fd;
  int flags;
  bool direct;
  BufferLease claimed{};
  std::error_code claim_error{};

  void prep(ring::Sqe& sqe) const noexcept {
    ring::prep_recv_buffer_select(sqe, fd, pool->group_id(), 0, flags);
    if (direct) ring::use_fixed_file(sqe);
  }
  void on_cqe(const IoResult& cqe) noexcept {
    Result<BufferLease> lease = pool->lease(cqe);
    if (lease) {
      claimed = std::move(*lease);
    } else {
      claim_error = lease.error();
    }
  }
  static bool again(const IoResult&) noexcept { return false; }
  // `final` may differ from the CQE (a timeout's -ETIMEDOUT for the cancelled request's
  // -ECANCELED); a CQE with an error carries no buffer.
  Result<BufferLease> result(const IoResult& final) noexcept {
    if (final.res < 0) return fail(final.error());
    if (claim_error) return fail(claim_error);
    return std::move(claimed);
  }
};
}  // namespace detail

}  // namespace coring::net
