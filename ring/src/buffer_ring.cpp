// Provided-buffer rings: mapping, registration, and the BufferGroup bookkeeping.
//
// The ring memory is an anonymous, page-aligned private mapping that we register
// with the kernel (the kernel pins it). Registration first asks for what the
// caller wants; a BufferGroup asks for incremental consumption and, if the kernel
// answers EINVAL (before 6.12), registers again without it, as the reference does.
#include "coring/ring/buffer_ring.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <utility>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/prep.hpp"

namespace coring::ring {

Result<BufferRing> BufferRing::create(Ring& ring, std::uint16_t group_id, std::uint32_t entries,
                                      std::uint16_t flags) noexcept {
  if (entries == 0 || entries > Ring::max_entries) return fail(Errc::buf_ring_entries_out_of_range);
  if ((entries & (entries - 1)) != 0) return fail(Errc::buf_ring_entries_not_power_of_two);

  BufferRing br;
  br.map_size_ = std::size_t{entries} * sizeof(Buf);
  void* map =
      ::mmap(nullptr, br.map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return fail(std::error_code(errno, std::generic_category()));
  br.bufs_ = static_cast<Buf*>(map);
  br.ktail_ =
      reinterpret_cast<std::uint16_t*>(reinterpret_cast<std::byte*>(map) + buf_ring_tail_offset);
  br.mask_ = static_cast<std::uint16_t>(entries - 1);
  br.group_id_ = group_id;

  BufReg reg;
  reg.ring_addr = reinterpret_cast<std::uint64_t>(map);
  reg.ring_entries = entries;
  reg.bgid = group_id;
  reg.flags = flags;
  if (auto registered = ring.register_buf_ring(reg); !registered) return fail(registered.error());
  br.ring_ = &ring;  // registered: release() must unregister from here on
  br.incremental_ = (flags & pbuf_flags::inc) != 0;
  return br;
}

BufferRing::BufferRing(BufferRing&& other) noexcept { *this = std::move(other); }

BufferRing& BufferRing::operator=(BufferRing&& other) noexcept {
  if (this == &other) return *this;
  release();
  ring_ = std::exchange(other.ring_, nullptr);
  bufs_ = std::exchange(other.bufs_, nullptr);
  ktail_ = std::exchange(other.ktail_, nullptr);
  map_size_ = std::exchange(other.map_size_, 0);
  mask_ = other.mask_;
  group_id_ = other.group_id_;
  incremental_ = other.incremental_;
  return *this;
}

BufferRing::~BufferRing() { release(); }

void BufferRing::release() noexcept {
  if (ring_ != nullptr) {
    if (auto done = ring_->unregister_buf_ring(group_id_); !done) {
      coring::detail::log_error("ring", "BufferRing::release", done.error());
    }
  }
  if (bufs_ != nullptr) ::munmap(bufs_, map_size_);
  ring_ = nullptr;
  bufs_ = nullptr;
  ktail_ = nullptr;
}

// --- BufferGroup ---------------------------------------------------------------------------

BufferGroup::BufferGroup(Ring& owner, BufferRing ring, std::uint32_t buffer_size,
                         std::uint32_t count, std::unique_ptr<std::byte[]> memory,
                         std::unique_ptr<std::uint32_t[]> heads) noexcept
    : owner_(&owner),
      ring_(std::move(ring)),
      buffer_size_(buffer_size),
      count_(count),
      memory_(std::move(memory)),
      heads_(std::move(heads)) {}

Result<BufferGroup> BufferGroup::create(Ring& ring, std::uint16_t group_id,
                                        std::uint32_t buffer_size, std::uint32_t count) noexcept {
  if (buffer_size == 0 || buffer_size == ~0U) return fail(Errc::buffer_size_invalid);

  auto br = BufferRing::create(ring, group_id, count, pbuf_flags::inc);
  if (!br && br.error() == std::errc::invalid_argument) {
    br = BufferRing::create(ring, group_id, count, 0);  // before 6.12: no incremental mode
  }
  if (!br) return fail(br.error());

  std::unique_ptr<std::byte[]> memory(new (std::nothrow)
                                          std::byte[std::size_t{buffer_size} * count]);
  std::unique_ptr<std::uint32_t[]> heads(new (std::nothrow) std::uint32_t[count]());
  if (!memory || !heads) return fail(std::make_error_code(std::errc::not_enough_memory));

  BufferGroup group(ring, std::move(*br), buffer_size, count, std::move(memory), std::move(heads));
  for (std::uint32_t id = 0; id < count; ++id) {
    group.ring_.add(group.whole(static_cast<std::uint16_t>(id)), static_cast<std::uint16_t>(id),
                    static_cast<std::uint16_t>(id));
  }
  group.ring_.advance(static_cast<std::uint16_t>(count));
  return group;
}

Sqe* BufferGroup::recv(std::uint64_t user_data, int fd, int msg_flags) noexcept {
  Sqe* sqe = owner_->get_sqe();
  if (sqe == nullptr) return nullptr;
  prep_recv_buffer_select(*sqe, fd, group_id(), 0, msg_flags);
  sqe->user_data = user_data;
  return sqe;
}

Sqe* BufferGroup::recv_multishot(std::uint64_t user_data, int fd, int msg_flags) noexcept {
  Sqe* sqe = owner_->get_sqe();
  if (sqe == nullptr) return nullptr;
  prep_recv_multishot(*sqe, fd, group_id(), msg_flags);
  sqe->user_data = user_data;
  return sqe;
}

Result<std::uint16_t> BufferGroup::id_of(const Cqe& cqe) const noexcept {
  if (!cqe.has_buffer() || cqe.buffer_id() >= count_) return fail(Errc::buffer_id_invalid);
  return cqe.buffer_id();
}

Result<std::span<std::byte>> BufferGroup::get(const Cqe& cqe) noexcept {
  auto id = id_of(cqe);
  if (!id) return fail(id.error());
  const std::uint32_t used = cqe.res > 0 ? static_cast<std::uint32_t>(cqe.res) : 0;
  return whole(*id).subspan(heads_[*id], used);
}

Result<void> BufferGroup::put(const Cqe& cqe) noexcept {
  auto id = id_of(cqe);
  if (!id) return fail(id.error());
  if ((cqe.flags & cqe_flags::buf_more) != 0) {
    // Incremental consumption: the kernel keeps the buffer and fills on from here.
    heads_[*id] += cqe.res > 0 ? static_cast<std::uint32_t>(cqe.res) : 0;
    return {};
  }
  heads_[*id] = 0;
  ring_.add(whole(*id), *id, 0);
  ring_.advance(1);
  return {};
}

}  // namespace coring::ring
