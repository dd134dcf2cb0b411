// BufferPool: a provided-buffer ring with per-buffer lease counts.
//
// Each buffer is in one of three states: in the kernel's ring (available), being filled
// piece by piece (incremental mode: the kernel still owns it while leases exist on the
// pieces it has posted), or out of the kernel's hands with leases on it. A buffer goes
// back to the ring when the kernel is done with it and its last lease is dropped.
#include "coring/net/buffer_pool.hpp"

#include <algorithm>
#include <atomic>
#include <system_error>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/error.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::net {
namespace {

// Group ids handed out when the caller does not pick one; process-wide, so that pools
// on one ring never collide (ids already taken on a ring are skipped).
std::atomic<std::uint16_t> next_group_id{1};

ring::BufferRing register_ring(EventLoop& loop, const BufferPoolOptions& options) {
  if (options.buffer_size == 0) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "BufferPool: buffer_size must not be 0");
  }
  const std::uint16_t flags = options.incremental ? ring::pbuf_flags::inc : 0;
  for (int attempt = 0;; ++attempt) {
    std::uint16_t id = options.group_id;
    while (id == 0) id = next_group_id.fetch_add(1, std::memory_order_relaxed);
    auto created =
        ring::BufferRing::create(coring::detail::LoopOps(loop).ring(), id, options.count, flags);
    if (!created && flags != 0 && created.error() == std::errc::invalid_argument) {
      created = ring::BufferRing::create(coring::detail::LoopOps(loop).ring(), id, options.count,
                                         0);  // before 6.12
    }
    if (created) return std::move(created).value();
    const bool taken = created.error() == std::errc::file_exists;
    if (!taken || options.group_id != 0 || attempt > 64) {
      // The kernel pins the ring of buffer descriptors (16 bytes per entry, in whole
      // pages), not the buffers; from 6.14 it charges that ring to RLIMIT_MEMLOCK.
      const std::size_t ring_kib = (std::size_t{options.count} * 16 + 4095) / 4096 * 4;
      throw std::system_error(created.error(), "BufferPool: registering provided-buffer group " +
                                                   std::to_string(id) + " (count " +
                                                   std::to_string(options.count) + ": a ring of " +
                                                   std::to_string(ring_kib) + " KiB, pinned)");
    }
  }
}

}  // namespace

BufferPool::BufferPool(EventLoop& loop, BufferPoolOptions options)
    : loop_(&loop),
      ring_(register_ring(loop, options)),
      buffer_size_(options.buffer_size),
      memory_(new std::byte[std::size_t{options.buffer_size} * options.count]),
      slots_(new Slot[options.count]),
      share_(options.share != 0 ? options.share : std::max(1U, options.count / 8)) {
  for (std::uint32_t id = 0; id < options.count; ++id) {
    const auto bid = static_cast<std::uint16_t>(id);
    ring_.add({buffer(bid), buffer_size_}, bid, bid);
  }
  ring_.advance(static_cast<std::uint16_t>(options.count));
}

BufferPool::~BufferPool() {
  // Bugs: a stream or a lease would touch freed memory later. Logged; fatal in debug.
  const auto leased = std::count_if(slots_.get(), slots_.get() + count(),
                                    [](const Slot& slot) { return slot.leases != 0; });
  if (streams_ != 0 || leased != 0) {
    coring::detail::log("net", coring::detail::LogLevel::error,
                        "BufferPool destroyed while " + std::to_string(streams_) +
                            " RecvStream(s) use it and leases hold " + std::to_string(leased) +
                            " of its buffers");
  }
  assert(streams_ == 0 && "destroy a BufferPool after the RecvStreams that use it");
  assert(leased == 0 && "destroy a BufferPool after the BufferLeases on its buffers");
}

Result<BufferLease> BufferPool::lease(const IoResult& result) noexcept {
  if (result.res < 0) return fail(result.error());
  if ((result.flags & ring::cqe_flags::buffer) == 0) {
    if (result.res == 0) return BufferLease();  // end of stream, no buffer taken
    return fail(ring::Errc::buffer_id_invalid);
  }
  const auto id = static_cast<std::uint16_t>(result.flags >> ring::cqe_flags::buffer_shift);
  if (id >= count()) return fail(ring::Errc::buffer_id_invalid);
  Slot& slot = slots_[id];
  const std::uint32_t length = result.value();
  const std::uint32_t offset = incremental() ? slot.head : 0;
  slot.head = offset + length;
  if (slot.leases == 0 && slot.in_kernel) ++held_;
  if ((result.flags & ring::cqe_flags::buf_more) == 0) slot.in_kernel = false;
  ++slot.leases;
  return BufferLease(this, buffer(id) + offset, length, id);
}

void BufferPool::release(std::uint16_t id) noexcept {
  Slot& slot = slots_[id];
  assert(slot.leases > 0);
  if (--slot.leases > 0) return;
  if (slot.in_kernel) {
    --held_;  // the kernel is still filling it: nothing to hand back
    return;
  }
  give_back(id);
}

void BufferPool::give_back(std::uint16_t id) noexcept {
  Slot& slot = slots_[id];
  slot.head = 0;
  slot.in_kernel = true;
  ring_.add({buffer(id), buffer_size_}, id, 0);
  ring_.advance(1);
  --held_;
  ++returned_;
}

}  // namespace coring::net
