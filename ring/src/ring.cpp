// Ring setup, teardown, entering the kernel and registration.
//
// Setup asks io_uring_setup(2) for a ring, then maps it: one mapping holds both
// the SQ and CQ rings (IORING_FEAT_SINGLE_MMAP, 5.4+; older kernels are refused),
// a second holds the SQE array. Because coring hands out SQEs strictly in order,
// the SQ index array is filled once with the identity mapping (slot i -> SQE i),
// so a submission publishes only the new tail (liburing 2.5 does the same). With
// setup::no_sqarray the kernel has no index array at all.
//
// Everything here is off the per-operation path except enter(), which is one
// raw system call plus the mapping of its errno.
#include "coring/ring/ring.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/detail/syscall.hpp"
#include "emulator.hpp"

namespace coring::ring {
namespace {

template <typename T>
T* at_offset(void* base, std::uint32_t offset) noexcept {
  return reinterpret_cast<T*>(static_cast<std::byte*>(base) + offset);
}

Result<void> check_entries(std::uint32_t entries) noexcept {
  if (entries == 0) return fail(Errc::entries_zero);
  if (entries > Ring::max_entries) return fail(Errc::entries_too_large);
  if ((entries & (entries - 1)) != 0) return fail(Errc::entries_not_power_of_two);
  return {};
}

Result<void> check_params(const Params& p, std::uint32_t entries) noexcept {
  // The kernel writes these; a caller reusing a filled-in Params would get EINVAL
  // from the reserved fields, so say so before the kernel does.
  if (p.sq_entries != 0 || p.features != 0) return fail(setup_error(EINVAL));
  if (p.resv[0] != 0 || p.resv[1] != 0 || p.resv[2] != 0) return fail(setup_error(EINVAL));
  // The kernel's rule: a CQ at least as large as the SQ.
  if ((p.flags & setup::cqsize) != 0 && p.cq_entries < entries)
    return fail(Errc::cq_entries_invalid);
  if ((p.flags & setup::cqsize) == 0 && p.cq_entries != 0) return fail(Errc::cq_entries_invalid);
  // We map the rings ourselves and enter through a real fd, and copy_cqes() reads
  // fixed-size CQEs: a CQE_MIXED ring's 32-byte entries and skip padding would be
  // misread, so it is refused rather than half supported.
  if ((p.flags & (setup::no_mmap | setup::registered_fd_only | setup::cqe_mixed)) != 0) {
    return fail(Errc::setup_flag_unsupported);
  }
  return {};
}

}  // namespace

const char* to_string(Backend backend) noexcept {
  switch (backend) {
    case Backend::automatic:
      return "automatic";
    case Backend::io_uring:
      return "io_uring";
    case Backend::epoll:
      return "epoll";
  }
  return "unknown";
}

Result<Ring> Ring::create(std::uint32_t entries, Params& params, Backend backend) noexcept {
  if (backend == Backend::automatic) {
    const char* env = std::getenv("CORING_BACKEND");
    if (env != nullptr && *env != '\0') {
      if (std::strcmp(env, "io_uring") == 0) {
        backend = Backend::io_uring;
      } else if (std::strcmp(env, "epoll") == 0) {
        backend = Backend::epoll;
      } else {
        // Once: a loop tries several setup flags, each a create().
        static std::atomic<bool> said{false};
        if (!said.exchange(true, std::memory_order_relaxed)) {
          try {
            coring::detail::log("ring", coring::detail::LogLevel::error,
                                "CORING_BACKEND=\"" + std::string(env) +
                                    "\": not a backend; it must be \"io_uring\" or \"epoll\" "
                                    "(or unset)");
          } catch (...) {
            // No memory for the message: the error code still says what is wrong.
          }
        }
        return fail(Errc::backend_unknown);
      }
    }
  }
  if (backend == Backend::epoll) return create_emulated(entries, params);
  const Params asked = params;
  auto ring = create(entries, params);
  if (ring || backend == Backend::io_uring) return ring;
  // Blocked (seccomp, kernel.io_uring_disabled, LSMs) or absent: the emulation.
  const int e = ring.error().category() == setup_category() ? ring.error().value() : 0;
  if (e != EPERM && e != EACCES && e != ENOSYS) return ring;
  params = asked;
  auto emulated = create_emulated(entries, params);
  if (!emulated) {
    // Setup flags the emulation cannot honour (SQPOLL, IOPOLL, ...) or flags it
    // refuses: what stops the program is that io_uring is blocked, so that is the error.
    if (emulated.error() == setup_error(EINVAL)) return ring;
    return emulated;
  }
  // Once per process: a program with a loop per core, or one that makes rings as it
  // goes, says it once.
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true, std::memory_order_relaxed)) {
    try {
      coring::detail::log(
          "ring", coring::detail::LogLevel::warn,
          "io_uring is unavailable (io_uring_setup: " + std::string(std::strerror(e)) +
              "); running on the epoll backend, coring's user-space ring: the same programs, "
              "at more CPU per operation (a system call per transfer, file I/O on worker "
              "threads). To use io_uring, allow its system calls (docs/getting-started.md, "
              "\"Containers\"); CORING_BACKEND=epoll chooses this backend without trying.");
    } catch (...) {
      // The message could not be built: the ring works all the same.
    }
  }
  return emulated;
}

Result<Ring> Ring::create_emulated(std::uint32_t entries, Params& params) noexcept {
  if (auto ok = check_entries(entries); !ok) return fail(ok.error());
  if (auto ok = check_params(params, entries); !ok) return fail(ok.error());
  std::unique_ptr<detail::Emulator> emu;
  if (const int rc = detail::Emulator::create(entries, params, emu); rc < 0) {
    // This process's memory, not the kernel's rings: setup_category()'s advice on
    // ENOMEM (RLIMIT_MEMLOCK) would mislead.
    if (rc == -ENOMEM) return fail(std::make_error_code(std::errc::not_enough_memory));
    return fail(setup_error(-rc));
  }
  Ring ring;
  detail::EmulatedWords* words = emu->words();
  ring.fd_ = emu->fd();
  ring.enter_fd_ = -1;
  ring.flags_ = params.flags;
  ring.features_ = params.features;
  ring.khead_ = &words->sq_head;
  ring.ktail_ = &words->sq_tail;
  ring.kflags_ = &words->sq_flags;
  ring.kdropped_ = &words->sq_dropped;
  ring.sqes_ = emu->sqes();
  ring.sq_mask_ = params.sq_entries - 1;
  ring.cq_khead_ = &words->cq_head;
  ring.cq_ktail_ = &words->cq_tail;
  ring.cq_koverflow_ = &words->cq_overflow;
  ring.cqes_ = emu->cqes();
  ring.cq_mask_ = params.cq_entries - 1;
  ring.emu_ = emu.release();
  return ring;
}

Result<std::uint32_t> Ring::emulated_enter(std::uint32_t to_submit, std::uint32_t min_complete,
                                           std::uint32_t flags, const GeteventsArg* arg) noexcept {
  const int res = emu_->enter(to_submit, min_complete, flags, arg);
  if (res < 0) return fail(enter_error(-res));
  return static_cast<std::uint32_t>(res);
}

Result<Ring> Ring::create(std::uint32_t entries, std::uint32_t flags) noexcept {
  Params params;
  params.flags = flags;
  params.sq_thread_idle = 1000;  // the kernel's and liburing's default: 1 s
  return create(entries, params);
}

Result<Ring> Ring::create(std::uint32_t entries, Params& params) noexcept {
  if (auto ok = check_entries(entries); !ok) return fail(ok.error());
  if (auto ok = check_params(params, entries); !ok) return fail(ok.error());

  // coring hands SQEs out in order, so it needs no SQ index array: with NO_SQARRAY
  // (6.6) the kernel reads SQE i directly, without the array's load and bounds check
  // per SQE. Ask for it unless the caller did, and set up without it on kernels that
  // refuse it, as liburing 2.6's io_uring_queue_init_try_nosqarr() does.
  const std::uint32_t asked = params.flags;
  params.flags |= setup::no_sqarray;
  int fd = sys::io_uring_setup(entries, &params);
  if (fd == -EINVAL && (asked & setup::no_sqarray) == 0) {
    params.flags = asked;
    fd = sys::io_uring_setup(entries, &params);
  }
  if (fd < 0) return fail(setup_error(-fd));

  Ring ring;
  ring.fd_ = fd;
  ring.enter_fd_ = fd;
  ring.flags_ = params.flags;
  ring.features_ = params.features;
  if ((params.features & feat::single_mmap) == 0) return fail(Errc::kernel_too_old);
  // "Impossible is nothing": check what the kernel gave us before relying on it.
  assert(params.sq_entries != 0 && params.cq_entries >= params.sq_entries);
  if (auto mapped = ring.map_queues(params); !mapped) return fail(mapped.error());
  return ring;
}

Result<void> Ring::map_queues(const Params& p) noexcept {
  sqe_shift_ = (p.flags & setup::sqe128) != 0 ? 1 : 0;
  cqe_shift_ = (p.flags & setup::cqe32) != 0 ? 1 : 0;
  const bool has_array = (p.flags & setup::no_sqarray) == 0;

  std::size_t sq_size = p.sq_off.array + (has_array ? p.sq_entries * sizeof(std::uint32_t) : 0);
  std::size_t cq_size = p.cq_off.cqes + (std::size_t{p.cq_entries} * sizeof(Cqe) << cqe_shift_);
  ring_map_size_ = std::max(sq_size, cq_size);
  ring_map_ = ::mmap(nullptr, ring_map_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                     fd_, static_cast<off_t>(mmap_offset::sq_ring));
  if (ring_map_ == MAP_FAILED) {
    ring_map_ = nullptr;
    return fail(setup_error(errno));
  }
  sqe_map_size_ = std::size_t{p.sq_entries} * sizeof(Sqe) << sqe_shift_;
  sqe_map_ = ::mmap(nullptr, sqe_map_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                    static_cast<off_t>(mmap_offset::sqes));
  if (sqe_map_ == MAP_FAILED) {
    sqe_map_ = nullptr;
    return fail(setup_error(errno));
  }

  khead_ = at_offset<std::uint32_t>(ring_map_, p.sq_off.head);
  ktail_ = at_offset<std::uint32_t>(ring_map_, p.sq_off.tail);
  kflags_ = at_offset<std::uint32_t>(ring_map_, p.sq_off.flags);
  kdropped_ = at_offset<std::uint32_t>(ring_map_, p.sq_off.dropped);
  sq_mask_ = *at_offset<std::uint32_t>(ring_map_, p.sq_off.ring_mask);
  sqes_ = static_cast<Sqe*>(sqe_map_);
  cq_khead_ = at_offset<std::uint32_t>(ring_map_, p.cq_off.head);
  cq_ktail_ = at_offset<std::uint32_t>(ring_map_, p.cq_off.tail);
  cq_koverflow_ = at_offset<std::uint32_t>(ring_map_, p.cq_off.overflow);
  cq_mask_ = *at_offset<std::uint32_t>(ring_map_, p.cq_off.ring_mask);
  cqes_ = at_offset<Cqe>(ring_map_, p.cq_off.cqes);

  // The starting state the kernel promises.
  assert(*at_offset<std::uint32_t>(ring_map_, p.sq_off.ring_entries) == p.sq_entries);
  assert(*at_offset<std::uint32_t>(ring_map_, p.cq_off.ring_entries) == p.cq_entries);
  assert(sq_mask_ == p.sq_entries - 1 && cq_mask_ == p.cq_entries - 1);
  assert(*khead_ == 0 && *ktail_ == 0 && *cq_khead_ == 0 && *kdropped_ == 0);

  if (has_array) {
    auto* array = at_offset<std::uint32_t>(ring_map_, p.sq_off.array);
    for (std::uint32_t i = 0; i < p.sq_entries; ++i) array[i] = i;
  }
  return {};
}

Ring::Ring(std::uint32_t entries, std::uint32_t flags) : Ring(create(entries, flags).value()) {}

Ring::Ring(std::uint32_t entries, Params& params) : Ring(create(entries, params).value()) {}

Ring::Ring(Ring&& other) noexcept { *this = std::move(other); }

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this == &other) return *this;
  release();
  // Every field is taken with exchange, so a moved-from ring holds no pointer into
  // the mappings it gave away: using it fails loudly (null) instead of corrupting ours.
  fd_ = std::exchange(other.fd_, -1);
  emu_ = std::exchange(other.emu_, nullptr);
  enter_fd_ = std::exchange(other.enter_fd_, -1);
  enter_flags_ = std::exchange(other.enter_flags_, 0);
  flags_ = std::exchange(other.flags_, 0);
  features_ = std::exchange(other.features_, 0);
  khead_ = std::exchange(other.khead_, nullptr);
  ktail_ = std::exchange(other.ktail_, nullptr);
  kflags_ = std::exchange(other.kflags_, nullptr);
  kdropped_ = std::exchange(other.kdropped_, nullptr);
  sqes_ = std::exchange(other.sqes_, nullptr);
  sq_mask_ = std::exchange(other.sq_mask_, 0);
  sqe_shift_ = std::exchange(other.sqe_shift_, 0);
  sqe_head_ = std::exchange(other.sqe_head_, 0);
  sqe_tail_ = std::exchange(other.sqe_tail_, 0);
  cq_khead_ = std::exchange(other.cq_khead_, nullptr);
  cq_ktail_ = std::exchange(other.cq_ktail_, nullptr);
  cq_koverflow_ = std::exchange(other.cq_koverflow_, nullptr);
  cqes_ = std::exchange(other.cqes_, nullptr);
  cq_mask_ = std::exchange(other.cq_mask_, 0);
  cqe_shift_ = std::exchange(other.cqe_shift_, 0);
  ring_map_ = std::exchange(other.ring_map_, nullptr);
  ring_map_size_ = std::exchange(other.ring_map_size_, 0);
  sqe_map_ = std::exchange(other.sqe_map_, nullptr);
  sqe_map_size_ = std::exchange(other.sqe_map_size_, 0);
  return *this;
}

Ring::~Ring() { release(); }

void Ring::release() noexcept {
  if (emu_ != nullptr) {
    // The emulation owns the queues' memory and the fd.
    delete std::exchange(emu_, nullptr);
    fd_ = -1;
    return;
  }
  if (enter_flags_ != 0) {
    // Best effort: a registered index left behind would pin the ring for the life
    // of the registering thread.
    if (auto done = unregister_ring_fd(); !done) {
      coring::detail::log_error("ring", "Ring::release", done.error());
    }
  }
  // The mappings reference the fd's ring, so unmap before closing it.
  if (sqe_map_ != nullptr) ::munmap(sqe_map_, sqe_map_size_);
  if (ring_map_ != nullptr) ::munmap(ring_map_, ring_map_size_);
  if (fd_ >= 0) ::close(fd_);
  sqe_map_ = nullptr;
  ring_map_ = nullptr;
  fd_ = -1;
  enter_fd_ = -1;
}

Result<std::uint32_t> Ring::enter(std::uint32_t to_submit, std::uint32_t min_complete,
                                  std::uint32_t flags, const GeteventsArg& arg) noexcept {
  assert(fd_ >= 0);
  if (emu_ != nullptr)
    return emulated_enter(to_submit, min_complete, flags | enter_flags::ext_arg, &arg);
  const int res =
      sys::io_uring_enter(enter_fd_, to_submit, min_complete,
                          flags | enter_flags_ | enter_flags::ext_arg, &arg, sizeof(arg));
  if (res < 0) return fail(enter_error(-res));
  return static_cast<std::uint32_t>(res);
}

Result<std::uint32_t> Ring::submit_and_wait_timeout(std::uint32_t wait_nr,
                                                    std::chrono::nanoseconds timeout) noexcept {
  if (!has_feature(feat::ext_arg)) return fail(Errc::feature_unsupported);
  const std::uint32_t submitted = flush_sq();
  const KernelTimespec ts = to_kernel_timespec(timeout);
  GeteventsArg arg;
  arg.ts = reinterpret_cast<std::uint64_t>(&ts);
  std::uint32_t flags = enter_flags::getevents;
  (void)sq_ring_needs_enter(submitted, flags);
  return enter(submitted, wait_nr, flags, arg);
}

Result<void> Ring::wait_cqes(std::uint32_t wait_nr, std::chrono::nanoseconds timeout) noexcept {
  if (cq_ready() >= wait_nr) return {};
  if (!has_feature(feat::ext_arg)) return fail(Errc::feature_unsupported);
  const KernelTimespec ts = to_kernel_timespec(timeout);
  GeteventsArg arg;
  arg.ts = reinterpret_cast<std::uint64_t>(&ts);
  auto entered = enter(0, wait_nr, enter_flags::getevents, arg);
  if (!entered) return fail(entered.error());
  return {};
}

Result<Cqe> Ring::copy_cqe() noexcept {
  Cqe cqe{};
  for (;;) {
    auto copied = copy_cqes(std::span<Cqe>(&cqe, 1), 1);
    if (!copied) return fail(copied.error());
    if (*copied == 1) return cqe;
  }
}

// --- Registration -------------------------------------------------------------------------

Result<int> Ring::register_raw(RegisterOp op, const void* arg, std::uint32_t nr_args) noexcept {
  assert(fd_ >= 0);
  const int res = emu_ != nullptr
                      ? emu_->register_op(op, arg, nr_args)
                      : sys::io_uring_register(fd_, static_cast<unsigned>(op), arg, nr_args);
  if (res < 0) return fail(register_error(-res));
  return res;
}

namespace {
Result<void> discard_value(Result<int> result) noexcept {
  if (!result) return fail(result.error());
  return {};
}
}  // namespace

Result<void> Ring::register_ring_fd() noexcept {
  if (enter_flags_ != 0) return fail(register_error(EBUSY));
  RsrcUpdate update;
  update.offset = file_index_alloc;  // let the kernel pick a slot
  update.data = static_cast<std::uint64_t>(fd_);
  auto res = register_raw(RegisterOp::register_ring_fds, &update, 1);
  if (!res) return fail(res.error());
  if (*res != 1) return fail(register_error(EINVAL));
  enter_fd_ = static_cast<int>(update.offset);
  enter_flags_ = enter_flags::registered_ring;
  return {};
}

Result<void> Ring::unregister_ring_fd() noexcept {
  if (enter_flags_ == 0) return fail(register_error(ENXIO));
  RsrcUpdate update;
  update.offset = static_cast<std::uint32_t>(enter_fd_);
  auto res = register_raw(RegisterOp::unregister_ring_fds, &update, 1);
  if (!res) return fail(res.error());
  enter_fd_ = fd_;
  enter_flags_ = 0;
  return {};
}

Result<void> Ring::register_files(std::span<const int> fds) noexcept {
  return discard_value(
      register_raw(RegisterOp::register_files, fds.data(), static_cast<std::uint32_t>(fds.size())));
}

Result<void> Ring::register_files_sparse(std::uint32_t count) noexcept {
  RsrcRegister reg;
  reg.nr = count;
  reg.flags = rsrc_register_sparse;
  return discard_value(register_raw(RegisterOp::register_files2, &reg, sizeof(reg)));
}

Result<void> Ring::register_files_update(std::uint32_t offset, std::span<const int> fds) noexcept {
  FilesUpdate update;
  update.offset = offset;
  update.fds = reinterpret_cast<std::uint64_t>(fds.data());
  return discard_value(register_raw(RegisterOp::register_files_update, &update,
                                    static_cast<std::uint32_t>(fds.size())));
}

Result<void> Ring::unregister_files() noexcept {
  return discard_value(register_raw(RegisterOp::unregister_files, nullptr, 0));
}

Result<void> Ring::register_file_alloc_range(std::uint32_t offset, std::uint32_t length) noexcept {
  FileIndexRange range;
  range.off = offset;
  range.len = length;
  return discard_value(register_raw(RegisterOp::register_file_alloc_range, &range, 0));
}

Result<void> Ring::register_buffers(std::span<const iovec> buffers) noexcept {
  return discard_value(register_raw(RegisterOp::register_buffers, buffers.data(),
                                    static_cast<std::uint32_t>(buffers.size())));
}

Result<void> Ring::register_buffers_sparse(std::uint32_t count) noexcept {
  RsrcRegister reg;
  reg.nr = count;
  reg.flags = rsrc_register_sparse;
  return discard_value(register_raw(RegisterOp::register_buffers2, &reg, sizeof(reg)));
}

Result<void> Ring::unregister_buffers() noexcept {
  return discard_value(register_raw(RegisterOp::unregister_buffers, nullptr, 0));
}

Result<void> Ring::register_eventfd(int event_fd) noexcept {
  return discard_value(register_raw(RegisterOp::register_eventfd, &event_fd, 1));
}

Result<void> Ring::register_eventfd_async(int event_fd) noexcept {
  return discard_value(register_raw(RegisterOp::register_eventfd_async, &event_fd, 1));
}

Result<void> Ring::unregister_eventfd() noexcept {
  return discard_value(register_raw(RegisterOp::unregister_eventfd, nullptr, 0));
}

Result<void> Ring::register_napi(Napi& napi) noexcept {
  return discard_value(register_raw(RegisterOp::register_napi, &napi, 1));
}

Result<void> Ring::unregister_napi(Napi& napi) noexcept {
  return discard_value(register_raw(RegisterOp::unregister_napi, &napi, 1));
}

Result<Probe> Ring::get_probe() const noexcept {
  static_assert(offsetof(Probe, ops_) == sizeof(ProbeHeader), "Probe must match io_uring_probe");
  Probe probe;
  // IORING_REGISTER_PROBE only reads the ring's state: register_raw() is not const
  // because most registrations change it.
  auto res =
      const_cast<Ring*>(this)->register_raw(RegisterOp::register_probe, &probe, Probe::max_ops);
  if (!res) return fail(res.error());
  return probe;
}

Result<void> Ring::register_sync_cancel(const SyncCancelReg& reg) noexcept {
  return discard_value(register_raw(RegisterOp::register_sync_cancel, &reg, 1));
}

Result<void> Ring::register_iowq_max_workers(std::array<std::uint32_t, 2>& limits) noexcept {
  return discard_value(register_raw(RegisterOp::register_iowq_max_workers, limits.data(), 2));
}

Result<void> Ring::register_iowq_aff(const cpu_set_t& cpus) noexcept {
  return discard_value(register_raw(RegisterOp::register_iowq_aff, &cpus, sizeof(cpus)));
}

Result<void> Ring::unregister_iowq_aff() noexcept {
  return discard_value(register_raw(RegisterOp::unregister_iowq_aff, nullptr, 0));
}

Result<void> Ring::register_restrictions(std::span<const Restriction> restrictions) noexcept {
  return discard_value(register_raw(RegisterOp::register_restrictions, restrictions.data(),
                                    static_cast<std::uint32_t>(restrictions.size())));
}

Result<void> Ring::enable_rings() noexcept {
  return discard_value(register_raw(RegisterOp::register_enable_rings, nullptr, 0));
}

Result<std::uint16_t> Ring::register_personality() noexcept {
  auto res = register_raw(RegisterOp::register_personality, nullptr, 0);
  if (!res) return fail(res.error());
  return static_cast<std::uint16_t>(*res);
}

Result<void> Ring::unregister_personality(std::uint16_t id) noexcept {
  return discard_value(register_raw(RegisterOp::unregister_personality, nullptr, id));
}

Result<void> Ring::register_buf_ring(const BufReg& reg) noexcept {
  return discard_value(register_raw(RegisterOp::register_pbuf_ring, &reg, 1));
}

Result<void> Ring::unregister_buf_ring(std::uint16_t group_id) noexcept {
  BufReg reg;
  reg.bgid = group_id;
  return discard_value(register_raw(RegisterOp::unregister_pbuf_ring, &reg, 1));
}

Result<std::uint16_t> Ring::buf_ring_head(std::uint16_t group_id) noexcept {
  BufStatus status;
  status.buf_group = group_id;
  auto res = register_raw(RegisterOp::register_pbuf_status, &status, 1);
  if (!res) return fail(res.error());
  return static_cast<std::uint16_t>(status.head);
}

}  // namespace coring::ring
