// Provided-buffer rings (IORING_REGISTER_PBUF_RING, 5.19).
//
// A BufferRing is a ring of io_uring_buf entries shared with the kernel: the
// application adds buffers at the tail and publishes them with one release store
// (advance); the kernel picks one for each receive or read that asks for a buffer
// from the group and names it in the CQE (Cqe::buffer_id()).
//
// A BufferGroup owns a BufferRing and the memory of `count` buffers of one size,
// and turns a CQE back into the bytes it refers to. With incremental consumption
// (pbuf_flags::inc, 6.12) the kernel fills a buffer piece by piece and flags each
// CQE but the last with cqe_flags::buf_more; the group tracks how far each buffer
// has been filled. Where the kernel refuses incremental mode, the group falls back
// to whole-buffer consumption.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "coring/ring/abi.hpp"
#include "coring/ring/result.hpp"
#include "coring/ring/ring.hpp"

namespace coring::ring {

class BufferRing {
 public:
  // Maps and registers a ring of `entries` (a power of two, 1..32768) buffer slots for
  // group `group_id`. flags: pbuf_flags::inc for incremental consumption.
  // Matches io_uring_setup_buf_ring() in liburing.
  [[nodiscard]] static Result<BufferRing> create(Ring& ring, std::uint16_t group_id,
                                                 std::uint32_t entries,
                                                 std::uint16_t flags = 0) noexcept;

  BufferRing(BufferRing&& other) noexcept;
  BufferRing& operator=(BufferRing&& other) noexcept;
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  // Unregisters the group and unmaps the ring. Matches io_uring_free_buf_ring().
  ~BufferRing();

  // Places `buffer` with id `buffer_id` at tail + `offset`; it is not visible to the
  // kernel until advance(). Matches io_uring_buf_ring_add() in liburing.
  void add(std::span<std::byte> buffer, std::uint16_t buffer_id, std::uint16_t offset) noexcept {
    Buf& slot = bufs_[static_cast<std::uint16_t>(tail() + offset) & mask_];
    slot.addr = reinterpret_cast<std::uint64_t>(buffer.data());
    slot.len = static_cast<std::uint32_t>(buffer.size());
    slot.bid = buffer_id;
  }
  // Publishes `count` buffers added since the last advance.
  // Matches io_uring_buf_ring_advance() in liburing.
  void advance(std::uint16_t count) noexcept {
    // Release: the entries written by add() must be visible before the kernel sees
    // the tail move past them.
    std::atomic_ref<std::uint16_t>(*ktail_).store(static_cast<std::uint16_t>(tail() + count),
                                                  std::memory_order_release);
  }
  // The index mask for add(). Matches io_uring_buf_ring_mask().
  [[nodiscard]] std::uint16_t mask() const noexcept { return mask_; }
  [[nodiscard]] std::uint32_t entries() const noexcept { return std::uint32_t{mask_} + 1; }
  [[nodiscard]] std::uint16_t group_id() const noexcept { return group_id_; }
  // Whether the kernel accepted incremental consumption for this ring.
  [[nodiscard]] bool incremental() const noexcept { return incremental_; }

 private:
  BufferRing() = default;
  void release() noexcept;
  [[nodiscard]] std::uint16_t tail() const noexcept {
    // Relaxed: only the application writes the tail.
    return std::atomic_ref<std::uint16_t>(*ktail_).load(std::memory_order_relaxed);
  }

  Ring* ring_ = nullptr;
  Buf* bufs_ = nullptr;
  std::uint16_t* ktail_ = nullptr;  // overlays bufs_[0].resv
  std::size_t map_size_ = 0;
  std::uint16_t mask_ = 0;
  std::uint16_t group_id_ = 0;
  bool incremental_ = false;
};

class BufferGroup {
 public:
  // `count` buffers of `buffer_size` bytes in group `group_id`, all handed to the
  // kernel. Tries incremental consumption first.
  [[nodiscard]] static Result<BufferGroup> create(Ring& ring, std::uint16_t group_id,
                                                  std::uint32_t buffer_size,
                                                  std::uint32_t count) noexcept;

  // Queues a recv that takes a buffer from this group; nullptr if the SQ is full.
  Sqe* recv(std::uint64_t user_data, int fd, int msg_flags) noexcept;
  // Queues a multishot recv: one CQE per chunk while Cqe::has_more().
  Sqe* recv_multishot(std::uint64_t user_data, int fd, int msg_flags) noexcept;

  // The bytes a CQE delivered; Errc::buffer_id_invalid if it names no buffer of ours.
  [[nodiscard]] Result<std::span<std::byte>> get(const Cqe& cqe) noexcept;
  // Returns the CQE's buffer to the kernel once the application is done with it (under
  // incremental consumption, only after the kernel's last piece of it).
  Result<void> put(const Cqe& cqe) noexcept;

  [[nodiscard]] std::uint16_t group_id() const noexcept { return ring_.group_id(); }
  [[nodiscard]] std::uint32_t buffer_size() const noexcept { return buffer_size_; }
  [[nodiscard]] std::uint32_t count() const noexcept { return count_; }
  [[nodiscard]] bool incremental() const noexcept { return ring_.incremental(); }

 private:
  BufferGroup(Ring& owner, BufferRing ring, std::uint32_t buffer_size, std::uint32_t count,
              std::unique_ptr<std::byte[]> memory, std::unique_ptr<std::uint32_t[]> heads) noexcept;
  [[nodiscard]] Result<std::uint16_t> id_of(const Cqe& cqe) const noexcept;
  [[nodiscard]] std::span<std::byte> whole(std::uint16_t id) const noexcept {
    return {memory_.get() + std::size_t{buffer_size_} * id, buffer_size_};
  }

  Ring* owner_;
  BufferRing ring_;
  std::uint32_t buffer_size_;
  std::uint32_t count_;
  std::unique_ptr<std::byte[]> memory_;
  std::unique_ptr<std::uint32_t[]> heads_;  // bytes already consumed, per buffer
};

}  // namespace coring::ring
