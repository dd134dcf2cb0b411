// Ring: one io_uring instance — its fd, its mapped queues, and the calls on them.
//
// The queue interface follows liburing and Zig's IoUring (the reference): get_sqe()
// hands out SQE slots by advancing a private tail, flush_sq() publishes them to the
// kernel with one release store, copy_cqes() copies a batch of CQEs out (across the
// wrap) and releases them with one store of the head. Head and tail are free-running
// u32 counters: all arithmetic on them wraps, and only `& mask` turns them into slots.
//
// Kernel-shared words are named k* (khead, ktail) and touched only through
// std::atomic_ref, each with a comment on what its ordering guards. Local shadows
// (sqe_head_, sqe_tail_) are plain.
//
// Errors are values (Result) except in the throwing constructors, which exist for
// callers who treat a ring that cannot be set up as a configuration failure.
//
// Two backends (docs/architecture.md, "Two backends"). A Ring is either the kernel's
// io_uring or, where that is blocked, coring's user-space ring on epoll: the same SQ
// and CQ layout in ordinary memory, and an enter() and register_raw() that execute
// the SQEs in this process (ring/src/emulator.cpp). Everything above enter() and
// register_raw() — get_sqe(), flush_sq(), the CQ — is the same code for both; those
// two test which backend they serve once per system call, never per SQE or CQE.
#pragma once

#include <sched.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

#include "coring/ring/abi.hpp"
#include "coring/ring/detail/syscall.hpp"
#include "coring/ring/error.hpp"
#include "coring/ring/probe.hpp"
#include "coring/ring/result.hpp"

namespace coring::ring {

namespace detail {
class Emulator;
}  // namespace detail

// Which implementation of the ring to set up.
enum class Backend : std::uint8_t {
  // The CORING_BACKEND environment variable's choice ("io_uring" or "epoll"); when it is
  // unset, io_uring, and the epoll emulation when io_uring_setup(2) fails with EPERM,
  // EACCES or ENOSYS (seccomp, kernel.io_uring_disabled, a kernel without io_uring),
  // said once in the log at warning level.
  automatic,
  io_uring,  // the kernel's ring; fails where io_uring is blocked
  epoll,     // the user-space ring: non-blocking calls, epoll and a worker pool
};
// "automatic", "io_uring" or "epoll".
[[nodiscard]] const char* to_string(Backend backend) noexcept;

// A relative time for the kernel (a timeout's timespec); negative durations become 0.
inline KernelTimespec to_kernel_timespec(std::chrono::nanoseconds duration) noexcept {
  const auto ns = std::max<std::int64_t>(duration.count(), 0);
  return KernelTimespec{ns / 1'000'000'000, ns % 1'000'000'000};
}

class Ring {
 public:
  // The largest SQ size the kernel accepts (IORING_MAX_ENTRIES).
  static constexpr std::uint32_t max_entries = 32768;

  // Sets up a ring with `entries` SQEs (a power of two, 1..32768) and setup flags.
  // Matches io_uring_queue_init() in liburing.
  [[nodiscard]] static Result<Ring> create(std::uint32_t entries, std::uint32_t flags = 0) noexcept;
  // Sets up a ring from full parameters (SQPOLL idle/cpu, CQSIZE, ...). The kernel
  // writes the final sizes and features back into `params`.
  // Matches io_uring_queue_init_params() in liburing.
  [[nodiscard]] static Result<Ring> create(std::uint32_t entries, Params& params) noexcept;
  // Sets up a ring on `backend` (create() above is Backend::io_uring). The emulation's
  // errors carry setup_category() like the kernel's, but for ENOMEM, which is this
  // process's memory (std::errc::not_enough_memory); a CORING_BACKEND value other than
  // "io_uring" or "epoll" is Errc::backend_unknown.
  [[nodiscard]] static Result<Ring> create(std::uint32_t entries, Params& params,
                                           Backend backend) noexcept;

  // Throwing forms of create(): std::system_error carries the same error_code.
  explicit Ring(std::uint32_t entries, std::uint32_t flags = 0);
  Ring(std::uint32_t entries, Params& params);

  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  // Unregisters the ring fd (if registered), unmaps the queues and closes the fd; the
  // kernel cancels whatever is still in flight.
  ~Ring();

  // The ring's fd: io_uring's, or on the emulation its epoll fd, which is readable when
  // its sockets, timers or workers have something for an enter, and which MSG_RING
  // from another emulated ring targets.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  // Backend::io_uring or Backend::epoll (never automatic).
  [[nodiscard]] Backend backend() const noexcept {
    return emu_ == nullptr ? Backend::io_uring : Backend::epoll;
  }
  [[nodiscard]] std::uint32_t flags() const noexcept { return flags_; }
  [[nodiscard]] std::uint32_t features() const noexcept { return features_; }
  [[nodiscard]] std::uint32_t sq_entries() const noexcept { return sq_mask_ + 1; }
  [[nodiscard]] std::uint32_t cq_entries() const noexcept { return cq_mask_ + 1; }
  [[nodiscard]] bool has_feature(std::uint32_t feature) const noexcept {
    return (features_ & feature) == feature;
  }

  // --- Submission queue -----------------------------------------------------------------

  // A vacant SQE, or nullptr if the submission queue is full (submit, then retry).
  // The slot's previous contents remain: a prep_* helper overwrites every field but
  // user_data. Matches io_uring_get_sqe() in liburing.
  [[nodiscard]] Sqe* get_sqe() noexcept {
    // Acquire: with SQPOLL the kernel thread advances khead after it has read the
    // SQEs; the slots behind it may be reused only once that read is complete.
    const std::uint32_t head =
        std::atomic_ref<std::uint32_t>(*khead_).load(std::memory_order_acquire);
    const std::uint32_t next = sqe_tail_ + 1;
    if (next - head > sq_mask_ + 1) return nullptr;
    Sqe* sqe = &sqes_[(sqe_tail_ & sq_mask_) << sqe_shift_];
    sqe_tail_ = next;
    return sqe;
  }

  // Hands each SQE that get_sqe() gave out and flush_sq() has not yet published to
  // `visit`, oldest first, for tools that inspect or rewrite requests before the kernel
  // sees them (tracing, fault injection).
  template <typename Visit>
  void for_each_unpublished_sqe(Visit&& visit) noexcept(noexcept(visit(std::declval<Sqe&>()))) {
    for (std::uint32_t i = sqe_head_; i != sqe_tail_; ++i) {
      visit(sqes_[(i & sq_mask_) << sqe_shift_]);
    }
  }

  // Publishes the SQEs handed out by get_sqe() to the kernel's ring. Returns the number
  // of SQEs the kernel has yet to consume, including ones flushed earlier.
  // Matches __io_uring_flush_sq() in liburing.
  std::uint32_t flush_sq() noexcept {
    if (sqe_head_ != sqe_tail_) {
      sqe_head_ = sqe_tail_;
      // Release: the SQE contents written before this point must be visible to the
      // kernel (or the SQPOLL thread) before it sees the new tail. The sq array was
      // filled with the identity mapping at setup, so the tail is all we publish.
      std::atomic_ref<std::uint32_t>(*ktail_).store(sqe_tail_, std::memory_order_release);
    }
    return sq_ready();
  }

  // Submits queued SQEs; returns how many the kernel consumed (with SQPOLL, a
  // best-effort count). Matches io_uring_submit() in liburing.
  Result<std::uint32_t> submit() noexcept { return submit_and_wait(0); }

  // Submits queued SQEs and waits for at least `wait_nr` completions.
  // Matches io_uring_submit_and_wait() in liburing.
  Result<std::uint32_t> submit_and_wait(std::uint32_t wait_nr) noexcept {
    const std::uint32_t submitted = flush_sq();
    std::uint32_t flags = 0;
    if (sq_ring_needs_enter(submitted, flags) || wait_nr > 0) {
      if (wait_nr > 0 || (flags_ & setup::iopoll) != 0) flags |= enter_flags::getevents;
      return enter(submitted, wait_nr, flags);
    }
    // The emulation makes progress only inside enter(): a submit with nothing to hand
    // over still looks for what became ready (the kernel's ring needs no call for that).
    if (emu_ != nullptr) [[unlikely]]
      return enter(0, 0, enter_flags::getevents);
    return submitted;
  }

  // Like submit_and_wait(), but gives up after `timeout` with enter's ETIME error.
  // Needs feat::ext_arg (5.11). Matches io_uring_submit_and_wait_timeout() in liburing.
  Result<std::uint32_t> submit_and_wait_timeout(std::uint32_t wait_nr,
                                                std::chrono::nanoseconds timeout) noexcept;

  // io_uring_enter(2) on this ring (through the registered ring fd when there is one).
  // Returns the number of SQEs consumed. Errors carry enter_category().
  //
  // Inline, like the rest of the submit and reap path, so that the system call is made
  // from the caller's frame: a return executed after a system call, from a function
  // entered before it, mispredicts where the kernel refills or untrains the return
  // stack on entry (AMD Zen's SRSO "Safe RET", retbleed/RSB mitigations), and that
  // one return costs more than the rest of the user-space submit path.
  Result<std::uint32_t> enter(std::uint32_t to_submit, std::uint32_t min_complete,
                              std::uint32_t flags) noexcept {
    if (emu_ != nullptr) [[unlikely]]
      return emulated_enter(to_submit, min_complete, flags, nullptr);
    const int res =
        sys::io_uring_enter(enter_fd_, to_submit, min_complete, flags | enter_flags_, nullptr, 0);
    if (res < 0) [[unlikely]]
      return fail(enter_error(-res));
    return static_cast<std::uint32_t>(res);
  }
  // The same with an extended argument (enter_flags::ext_arg is added).
  Result<std::uint32_t> enter(std::uint32_t to_submit, std::uint32_t min_complete,
                              std::uint32_t flags, const GeteventsArg& arg) noexcept;

  // Whether submitting `submitted` SQEs needs io_uring_enter(2); adds sq_wakeup to
  // `flags` when an idle SQPOLL thread must be woken, and getevents when the kernel
  // holds completions (CQ overflow, pending task work) that only an enter can post.
  // Matches sq_ring_needs_enter() in liburing.
  bool sq_ring_needs_enter(std::uint32_t submitted, std::uint32_t& flags) const noexcept {
    if ((flags_ & setup::sqpoll) == 0) {
      if (submitted > 0) return true;
    } else {
      // A full fence: our store of ktail must be visible before we read the SQPOLL
      // thread's need_wakeup flag, or both sides could decide the other will act.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if ((kflags_load() & sq_flags::need_wakeup) != 0) {
        flags |= enter_flags::sq_wakeup;
        return true;
      }
    }
    if (cq_ring_needs_flush()) {
      flags |= enter_flags::getevents;
      return true;
    }
    return false;
  }

  // SQEs handed out and not yet consumed by the kernel. Matches io_uring_sq_ready().
  [[nodiscard]] std::uint32_t sq_ready() const noexcept {
    // Acquire: pairs with the kernel's release of khead, see get_sqe().
    return sqe_tail_ - std::atomic_ref<std::uint32_t>(*khead_).load(std::memory_order_acquire);
  }
  // Free SQE slots. Matches io_uring_sq_space_left().
  [[nodiscard]] std::uint32_t sq_space_left() const noexcept { return sq_entries() - sq_ready(); }
  // SQEs the kernel dropped as invalid since setup.
  [[nodiscard]] std::uint32_t sq_dropped() const noexcept {
    return std::atomic_ref<std::uint32_t>(*kdropped_).load(std::memory_order_relaxed);
  }

  // --- Completion queue ---------------------------------------------------------------

  // CQEs waiting to be reaped. Matches io_uring_cq_ready() in liburing.
  [[nodiscard]] std::uint32_t cq_ready() const noexcept {
    // Acquire: the kernel writes a CQE and then releases ktail; reading the tail with
    // acquire makes the CQEs before it visible to us.
    return std::atomic_ref<std::uint32_t>(*cq_ktail_).load(std::memory_order_acquire) -
           cq_khead_load();
  }

  // Copies up to cqes.size() ready CQEs and releases their slots with one store.
  // If none are ready, enters the kernel to wait for `wait_nr` (0: only flush pending
  // completions). Returns the number copied. Matches io_uring_peek_batch_cqe() in
  // liburing, plus waiting, as the reference's copy_cqes().
  Result<std::uint32_t> copy_cqes(std::span<Cqe> cqes, std::uint32_t wait_nr) noexcept {
    std::uint32_t count = copy_cqes_ready(cqes);
    if (count > 0) return count;
    if (wait_nr > 0 || cq_ring_needs_flush()) {
      auto entered = enter(0, wait_nr, enter_flags::getevents);
      if (!entered) return fail(entered.error());
      return copy_cqes_ready(cqes);
    }
    return 0U;
  }

  // Hands each ready CQE, where it lies in the CQ, to `handle`, then releases them all
  // with one store of the head; returns how many. Nothing is copied, so `handle` must
  // not reap (it may submit). Does not enter the kernel. Matches liburing's
  // io_uring_for_each_cqe() followed by io_uring_cq_advance().
  // At most `limit` CQEs are handed over; the rest stay for a later call.
  template <typename Handle>
  std::uint32_t for_each_cqe(Handle&& handle, std::uint32_t limit = UINT32_MAX) noexcept(
      noexcept(handle(std::declval<const Cqe&>()))) {
    const std::uint32_t head = cq_khead_load();
    // Acquire: see cq_ready().
    const std::uint32_t ready = std::min(
        std::atomic_ref<std::uint32_t>(*cq_ktail_).load(std::memory_order_acquire) - head, limit);
    // Locals, not members: what `handle` stores (through pointers of any type) cannot
    // make the compiler reload them for every CQE.
    Cqe* const cqes = cqes_;
    const std::uint32_t mask = cq_mask_;
    const std::uint32_t shift = cqe_shift_;
    for (std::uint32_t i = 0; i < ready; ++i) {
      handle(static_cast<const Cqe&>(cqes[((head + i) & mask) << shift]));
    }
    if (ready > 0) {
      // Release: our reads of the CQEs must complete before the kernel can reuse them.
      std::atomic_ref<std::uint32_t>(*cq_khead_).store(head + ready, std::memory_order_release);
    }
    return ready;
  }

  // Waits for and returns one CQE. The reference's copy_cqe().
  Result<Cqe> copy_cqe() noexcept;

  // Waits until at least `wait_nr` CQEs are ready or `timeout` passes (enter's ETIME
  // error), without copying them. Needs feat::ext_arg.
  Result<void> wait_cqes(std::uint32_t wait_nr, std::chrono::nanoseconds timeout) noexcept;

  // The CQE at the head, or nullptr when none is ready; release it with cqe_seen().
  // Matches io_uring_peek_cqe() without entering the kernel.
  [[nodiscard]] Cqe* peek_cqe() noexcept {
    if (cq_ready() == 0) return nullptr;
    return &cqes_[(cq_khead_load() & cq_mask_) << cqe_shift_];
  }

  // Whether the kernel holds completions that need an enter with getevents to post:
  // CQ overflow or (with taskrun_flag) pending task work. Matches cq_ring_needs_flush().
  [[nodiscard]] bool cq_ring_needs_flush() const noexcept {
    return (kflags_load() & (sq_flags::cq_overflow | sq_flags::taskrun)) != 0;
  }

  // Marks one CQE obtained by peek_cqe() as consumed. Not idempotent.
  // Matches io_uring_cqe_seen() in liburing.
  void cqe_seen(const Cqe* /*cqe*/) noexcept { cq_advance(1); }

  // Releases `count` CQEs to the kernel. Matches io_uring_cq_advance() in liburing.
  void cq_advance(std::uint32_t count) noexcept {
    if (count == 0) return;
    // Release: our reads of the CQEs must complete before the kernel can see their
    // slots as free and overwrite them.
    std::atomic_ref<std::uint32_t>(*cq_khead_)
        .store(cq_khead_load() + count, std::memory_order_release);
  }

  // CQEs the kernel could not post (overflowed and dropped) since setup.
  [[nodiscard]] std::uint32_t cq_overflow() const noexcept {
    return std::atomic_ref<std::uint32_t>(*cq_koverflow_).load(std::memory_order_relaxed);
  }
  // Raw SQ ring flags (sq_flags::*), for diagnostics and tests.
  [[nodiscard]] std::uint32_t sq_ring_flags() const noexcept { return kflags_load(); }

  // --- Registration (io_uring_register(2)); errors carry register_category() -----------

  // Registers the ring fd with this thread so enter() skips the fd lookup. The
  // registration belongs to the calling thread: use the ring from that thread.
  // Matches io_uring_register_ring_fd() in liburing.
  Result<void> register_ring_fd() noexcept;
  Result<void> unregister_ring_fd() noexcept;
  [[nodiscard]] bool ring_fd_registered() const noexcept { return enter_flags_ != 0; }

  Result<void> register_files(std::span<const int> fds) noexcept;
  Result<void> register_files_sparse(std::uint32_t count) noexcept;
  Result<void> register_files_update(std::uint32_t offset, std::span<const int> fds) noexcept;
  Result<void> unregister_files() noexcept;
  Result<void> register_file_alloc_range(std::uint32_t offset, std::uint32_t length) noexcept;

  Result<void> register_buffers(std::span<const iovec> buffers) noexcept;
  Result<void> register_buffers_sparse(std::uint32_t count) noexcept;
  Result<void> unregister_buffers() noexcept;

  Result<void> register_eventfd(int event_fd) noexcept;
  Result<void> register_eventfd_async(int event_fd) noexcept;
  Result<void> unregister_eventfd() noexcept;

  Result<void> register_napi(Napi& napi) noexcept;
  Result<void> unregister_napi(Napi& napi) noexcept;

  // The operations this kernel supports. Matches io_uring_get_probe_ring().
  Result<Probe> get_probe() const noexcept;

  // Cancels matching requests and waits for them. Matches io_uring_register_sync_cancel().
  Result<void> register_sync_cancel(const SyncCancelReg& reg) noexcept;

  // Sets the io-wq worker limits {bounded, unbounded}; 0 leaves one as it is. The
  // previous limits are written back. Matches io_uring_register_iowq_max_workers().
  Result<void> register_iowq_max_workers(std::array<std::uint32_t, 2>& limits) noexcept;
  Result<void> register_iowq_aff(const cpu_set_t& cpus) noexcept;
  Result<void> unregister_iowq_aff() noexcept;

  // Restrictions apply to a ring created with setup::r_disabled, before enable_rings().
  Result<void> register_restrictions(std::span<const Restriction> restrictions) noexcept;
  Result<void> enable_rings() noexcept;

  // Registers the caller's credentials; returns the personality id for sqe.personality.
  Result<std::uint16_t> register_personality() noexcept;
  Result<void> unregister_personality(std::uint16_t id) noexcept;

  // Provided-buffer rings (see buffer_ring.hpp for the owning type).
  Result<void> register_buf_ring(const BufReg& reg) noexcept;
  Result<void> unregister_buf_ring(std::uint16_t group_id) noexcept;
  // The kernel's current head of a buffer ring. Matches io_uring_buf_ring_head().
  Result<std::uint16_t> buf_ring_head(std::uint16_t group_id) noexcept;

  // Every registration above goes through here; returns the kernel's non-negative
  // result. Public for opcodes coring has no wrapper for.
  Result<int> register_raw(RegisterOp op, const void* arg, std::uint32_t nr_args) noexcept;

 private:
  Ring() = default;
  Result<void> map_queues(const Params& p) noexcept;
  static Result<Ring> create_emulated(std::uint32_t entries, Params& params) noexcept;
  Result<std::uint32_t> emulated_enter(std::uint32_t to_submit, std::uint32_t min_complete,
                                       std::uint32_t flags, const GeteventsArg* arg) noexcept;
  void release() noexcept;

  std::uint32_t copy_cqes_ready(std::span<Cqe> cqes) noexcept {
    const std::uint32_t head = cq_khead_load();
    // Acquire: see cq_ready().
    const std::uint32_t ready =
        std::atomic_ref<std::uint32_t>(*cq_ktail_).load(std::memory_order_acquire) - head;
    const std::uint32_t count = std::min(static_cast<std::uint32_t>(cqes.size()), ready);
    if (count == 0) return 0;
    if (count < memcpy_min_cqes || cqe_shift_ != 0) {
      // A few CQEs: one 16-byte move each is cheaper than memcpy's call, or the
      // `rep movs` the compiler may inline for it, which is slow to start.
      for (std::uint32_t i = 0; i < count; ++i) {
        cqes[i] = cqes_[((head + i) & cq_mask_) << cqe_shift_];
      }
    } else {
      // At most two copies: up to the end of the array, then from its start.
      const std::uint32_t slot = head & cq_mask_;
      const std::uint32_t first = std::min(count, cq_mask_ + 1 - slot);
      std::memcpy(cqes.data(), &cqes_[slot], first * sizeof(Cqe));
      if (first < count) {
        std::memcpy(cqes.data() + first, &cqes_[0], (count - first) * sizeof(Cqe));
      }
    }
    // Release: our reads of the CQEs must complete before the kernel can see their
    // slots as free and overwrite them.
    std::atomic_ref<std::uint32_t>(*cq_khead_).store(head + count, std::memory_order_release);
    return count;
  }
  // Below this many CQEs, copy_cqes_ready() copies one CQE at a time.
  static constexpr std::uint32_t memcpy_min_cqes = 16;

  [[nodiscard]] std::uint32_t kflags_load() const noexcept {
    // Relaxed: the flags are hints re-checked by the kernel on enter.
    return std::atomic_ref<std::uint32_t>(*kflags_).load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t cq_khead_load() const noexcept {
    // Relaxed: only this thread writes the CQ head.
    return std::atomic_ref<std::uint32_t>(*cq_khead_).load(std::memory_order_relaxed);
  }

  int fd_ = -1;
  int enter_fd_ = -1;              // fd_, or the registered ring index
  std::uint32_t enter_flags_ = 0;  // enter_flags::registered_ring once registered
  std::uint32_t flags_ = 0;
  std::uint32_t features_ = 0;

  // Submission queue: kernel-shared words and our shadows.
  std::uint32_t* khead_ = nullptr;
  std::uint32_t* ktail_ = nullptr;
  std::uint32_t* kflags_ = nullptr;
  std::uint32_t* kdropped_ = nullptr;
  Sqe* sqes_ = nullptr;
  std::uint32_t sq_mask_ = 0;
  std::uint32_t sqe_shift_ = 0;  // 1 with setup::sqe128: an SQE takes two slots
  std::uint32_t sqe_head_ = 0;   // next SQE to publish
  std::uint32_t sqe_tail_ = 0;   // next SQE to hand out

  // Completion queue.
  std::uint32_t* cq_khead_ = nullptr;
  std::uint32_t* cq_ktail_ = nullptr;
  std::uint32_t* cq_koverflow_ = nullptr;
  Cqe* cqes_ = nullptr;
  std::uint32_t cq_mask_ = 0;
  std::uint32_t cqe_shift_ = 0;  // 1 with setup::cqe32

  // The user-space ring, owned; nullptr for the kernel's. It owns the memory the
  // queue pointers above point into, and the fd.
  detail::Emulator* emu_ = nullptr;

  // Mappings.
  void* ring_map_ = nullptr;
  std::size_t ring_map_size_ = 0;
  void* sqe_map_ = nullptr;
  std::size_t sqe_map_size_ = 0;
};

}  // namespace coring::ring
