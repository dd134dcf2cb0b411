// The user-space ring (emulator.hpp says what runs where).
//
// Requests. Each consumed SQE becomes a Request: a copy of the SQE and the state of
// its execution. Requests come from slabs that never move and go back to a free list,
// so that a warm ring allocates nothing per operation, as the kernel's does not. Every
// live request is in a hash by user_data (cancel) and a list of all (cancel any/fd/op).
//
// Links. The SQEs of a chain are read whole before its head starts; a LINK_TIMEOUT
// right after a request becomes that request's timer. A request's completion starts
// the next of its chain, or (it failed, and was not HARDLINKed) completes every
// remaining one with -ECANCELED. Failure is the kernel's: a negative result, a short
// read or write, a short MSG_WAITALL transfer; -ETIME of a timeout with ETIME_SUCCESS
// is not one.
//
// Completions. post() writes the CQ like the kernel: the CQE, then a release store of
// the tail. A full CQ sends it to the overflow list (IORING_FEAT_NODROP) and sets
// IORING_SQ_CQ_OVERFLOW; each enter moves what fits back. A multishot request that
// finds the CQ full posts that result as its final CQE, ending itself, as the kernel
// does, so that one stream cannot grow the overflow without bound.
#include "emulator.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <new>
#include <utility>

namespace coring::ring::detail {

namespace {

// epoll data values that are not fds.
constexpr std::uint64_t event_tag = std::uint64_t{1} << 32;
constexpr std::uint64_t timer_tag = std::uint64_t{2} << 32;

// How many results one multishot request takes from one edge before the fd's other
// waiters (and other fds) get their turn; it runs again before the next wait.
constexpr int multishot_batch = 32;
// A wait satisfied without looking at epoll still looks every this many enters, so
// that a loop whose operations keep completing at once does not starve its sockets.
constexpr std::uint32_t poll_every = 32;
constexpr std::uint32_t requests_per_slab = 256;
constexpr std::uint32_t npos = ~std::uint32_t{0};

// The ops that give resources back and complete at once: they may take a request of
// the reserve (Emulator::reserve_) when there is no memory for another.
constexpr bool gives_back(Op op) noexcept {
  switch (op) {
    case Op::close:
    case Op::async_cancel:
    case Op::poll_remove:
    case Op::timeout_remove:
    case Op::shutdown:
    case Op::files_update:
      return true;
    default:
      return false;
  }
}

// Ops that the emulation implements: its probe reports these, the rest fail with
// -EOPNOTSUPP.
constexpr Op implemented_ops[] = {
    Op::nop,
    Op::readv,
    Op::writev,
    Op::fsync,
    Op::read_fixed,
    Op::write_fixed,
    Op::poll_add,
    Op::poll_remove,
    Op::sync_file_range,
    Op::sendmsg,
    Op::recvmsg,
    Op::timeout,
    Op::timeout_remove,
    Op::accept,
    Op::async_cancel,
    Op::link_timeout,
    Op::connect,
    Op::fallocate,
    Op::openat,
    Op::close,
    Op::files_update,
    Op::statx,
    Op::read,
    Op::write,
    Op::fadvise,
    Op::madvise,
    Op::send,
    Op::recv,
    Op::openat2,
    Op::epoll_ctl,
    Op::splice,
    Op::tee,
    Op::shutdown,
    Op::renameat,
    Op::unlinkat,
    Op::mkdirat,
    Op::symlinkat,
    Op::linkat,
    Op::msg_ring,
    Op::fsetxattr,
    Op::setxattr,
    Op::fgetxattr,
    Op::getxattr,
    Op::socket,
    Op::uring_cmd,
    Op::send_zc,
    Op::sendmsg_zc,
    Op::waitid,
    Op::fixed_fd_install,
    Op::ftruncate,
    Op::bind,
    Op::listen,
    Op::pipe,
};

// implemented_ops as a table by opcode: issue() asks it for every request.
constexpr std::array<bool, 256> implemented_table = [] {
  std::array<bool, 256> table{};
  for (Op op : implemented_ops) table[static_cast<std::uint8_t>(op)] = true;
  return table;
}();

bool is_implemented(std::uint8_t opcode) noexcept { return implemented_table[opcode]; }

// Whether a request of `op` works on the file its SQE's fd names: else the fd is a
// dirfd or unused (paths, madvise, waitid; socket and pipe, which complete at issue,
// are not asked).
bool has_file(Op op) noexcept {
  switch (op) {
    case Op::openat:
    case Op::openat2:
    case Op::statx:
    case Op::renameat:
    case Op::unlinkat:
    case Op::mkdirat:
    case Op::symlinkat:
    case Op::linkat:
    case Op::getxattr:
    case Op::setxattr:
    case Op::madvise:
    case Op::waitid:
      return false;
    default:
      return true;
  }
}

template <typename T>
T* ptr(std::uint64_t value) noexcept {
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>(value));
}

// The rings by fd, for MSG_RING between emulated rings.
std::mutex registry_mutex;
std::vector<std::pair<int, Emulator*>>& registry() {
  static std::vector<std::pair<int, Emulator*>> rings;
  return rings;
}

std::atomic<std::uint64_t> next_ring_id{1};

// The signal that interrupts a worker's blocking call: a real-time signal, handled by a
// function that does nothing and installed without SA_RESTART, so that the call fails
// with EINTR. Installed once, and only where the program left the signal alone; where
// it did not, calls are not interrupted (a cancel still says -EALREADY, and teardown
// waits for the call).
int interrupt_signal() noexcept { return SIGRTMAX - 3; }

void ignore_interrupt(int) noexcept {}

bool interrupt_installed() noexcept {
  static const bool installed = [] {
    struct sigaction old {};
    if (::sigaction(interrupt_signal(), nullptr, &old) != 0) return false;
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) return false;
    struct sigaction action {};
    action.sa_handler = ignore_interrupt;
    sigfillset(&action.sa_mask);
    action.sa_flags = 0;
    return ::sigaction(interrupt_signal(), &action, nullptr) == 0;
  }();
  return installed;
}

std::uint32_t round_up_pow2(std::uint32_t v) noexcept {
  std::uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

enum class Where : std::uint8_t {
  none,     // being issued or completed
  chained,  // behind another request of its chain
  drain,    // in the drain queue
  waiting,  // on an fd's waiters
  timer,    // a timeout in the heap
  worker,   // with the workers: queued (in work_), running, or done (in done_)
};

struct Emulator::Request {
  Sqe sqe;
  Request* prev;
  Request* next;
  List* in;  // the List holding it, if any
  Request* all_prev;
  Request* all_next;
  Request* hash_next;
  Request* link_next;  // the rest of its chain, not started
  Request* timeout;    // its linked timeout, armed
  Request* target;     // a linked timeout's request
  std::uint64_t deadline;
  std::uint64_t interval;  // a multishot timeout's period
  std::uint64_t seq;       // a count timeout completes when posted_ reaches it
  std::uint32_t heap_index;
  std::uint32_t count;     // multishot timeout: repeats left (0: for ever); recv: bytes left
  std::uint32_t done;      // bytes already moved (MSG_WAITALL, a file read a worker ends)
  std::uint32_t expected;  // what a read or write asked for, for link failure
  std::int32_t res;        // a worker's result
  int fd;                  // the resolved fd
  int aux_fd;              // splice's and tee's input
  Where where;
  Dir dir;
  std::uint8_t stage;         // connect: 1 once in progress
  bool counted;               // in count_timeouts_
  bool holds;                 // its fd is a duplicate we keep for it (FdWaiters::holders)
  bool interrupted;           // its worker's call is to stop (under mutex_)
  std::uint32_t cancel_walk;  // the last cancel walk that tried it
};

namespace {
using Request = Emulator::Request;
}  // namespace

// --- Lists ------------------------------------------------------------------------------

void Emulator::List::push_back(Request* r) noexcept {
  r->in = this;
  r->next = nullptr;
  r->prev = tail;
  if (tail != nullptr) {
    tail->next = r;
  } else {
    head = r;
  }
  tail = r;
}

void Emulator::List::erase(Request* r) noexcept {
  if (r->prev != nullptr) {
    r->prev->next = r->next;
  } else {
    head = r->next;
  }
  if (r->next != nullptr) {
    r->next->prev = r->prev;
  } else {
    tail = r->prev;
  }
  r->prev = r->next = nullptr;
  r->in = nullptr;
}

// --- Setup and teardown -------------------------------------------------------------------

int Emulator::create(std::uint32_t entries, Params& params,
                     std::unique_ptr<Emulator>& out) noexcept {
  // What the emulation cannot be: a polled ring, a kernel thread, big SQEs or CQEs, a
  // ring to enable later, or one sharing another's workers.
  constexpr std::uint32_t refused = setup::iopoll | setup::sqpoll | setup::sq_aff |
                                    setup::attach_wq | setup::r_disabled | setup::sqe128 |
                                    setup::cqe32 | setup::hybrid_iopoll | setup::no_mmap |
                                    setup::registered_fd_only | setup::cqe_mixed;
  if ((params.flags & refused) != 0) return -EINVAL;
  std::uint32_t cq = 2 * entries;
  if ((params.flags & setup::cqsize) != 0) {
    if (params.cq_entries == 0) return -EINVAL;
    cq = round_up_pow2(params.cq_entries);
    if (cq > 2 * 65536) {
      if ((params.flags & setup::clamp) == 0) return -EINVAL;
      cq = 2 * 65536;
    }
    if (cq < entries) return -EINVAL;
  }
  std::unique_ptr<Emulator> emu;
  try {
    emu.reset(new Emulator());  // its deques allocate when they are made
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  emu->id_ = next_ring_id.fetch_add(1, std::memory_order_relaxed);
  emu->sq_entries_ = entries;
  emu->cq_entries_ = cq;
  emu->setup_flags_ = params.flags | setup::no_sqarray;
  const std::size_t words = (sizeof(EmulatedWords) + 63) & ~std::size_t{63};
  emu->memory_size_ = words + std::size_t{entries} * sizeof(Sqe) + std::size_t{cq} * sizeof(Cqe);
  void* memory = ::mmap(nullptr, emu->memory_size_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return -ENOMEM;
  emu->memory_ = memory;
  emu->words_ = new (memory) EmulatedWords{};
  emu->sqes_ = reinterpret_cast<Sqe*>(static_cast<std::byte*>(memory) + words);
  emu->cqes_ = reinterpret_cast<Cqe*>(emu->sqes_ + entries);

  emu->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (emu->epoll_fd_ < 0) return -errno;
  emu->event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (emu->event_fd_ < 0) return -errno;
  emu->timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (emu->timer_fd_ < 0) return -errno;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = event_tag;
  if (::epoll_ctl(emu->epoll_fd_, EPOLL_CTL_ADD, emu->event_fd_, &ev) != 0) return -errno;
  ev.data.u64 = timer_tag;
  if (::epoll_ctl(emu->epoll_fd_, EPOLL_CTL_ADD, emu->timer_fd_, &ev) != 0) return -errno;

  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  emu->max_workers_ =
      std::min<std::uint32_t>(entries, 4 * static_cast<std::uint32_t>(cpus > 0 ? cpus : 1));
  emu->max_workers_ = std::max<std::uint32_t>(emu->max_workers_, 1);
  try {
    emu->buckets_.assign(64, nullptr);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  // A first slab of requests now, so that a new ring's first requests cannot fail, and
  // the reserve taken from it.
  std::array<Request*, reserved_requests> reserve{};
  for (Request*& r : reserve) {
    r = emu->allocate();
    if (r == nullptr) return -ENOMEM;
  }
  for (Request* r : reserve) emu->release(r);
  try {
    std::lock_guard lock(registry_mutex);
    registry().emplace_back(emu->epoll_fd_, emu.get());
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }

  params.sq_entries = entries;
  params.cq_entries = cq;
  params.flags = emu->setup_flags_;
  params.features = feat::single_mmap | feat::nodrop | feat::submit_stable | feat::rw_cur_pos |
                    feat::fast_poll | feat::poll_32bits | feat::ext_arg | feat::native_workers |
                    feat::cqe_skip | feat::linked_file;
  out = std::move(emu);
  return 0;
}

Emulator::~Emulator() {
  {
    std::lock_guard lock(registry_mutex);
    auto& rings = registry();
    rings.erase(std::remove_if(rings.begin(), rings.end(),
                               [this](const auto& entry) { return entry.second == this; }),
                rings.end());
  }
  {
    // What is queued never runs; what runs is interrupted (repeatedly: a signal that
    // comes before the call begins does not stop it).
    std::unique_lock lock(mutex_);
    stopping_ = true;
    work_ready_.notify_all();
    while (live_workers_ > 0) {
      for (const auto& worker : workers_) {
        if (worker->current != nullptr) signal_worker(worker->current);
      }
      worker_exited_.wait_for(lock, std::chrono::milliseconds(2));
    }
  }
  for (const auto& worker : workers_) worker->thread.join();
  // What a worker opened for a request nobody will complete now.
  for (Request* r = done_.head; r != nullptr; r = r->next) {
    const auto op = static_cast<Op>(r->sqe.opcode);
    if ((op == Op::openat || op == Op::openat2) && r->res >= 0) ::close(r->res);
  }
  // Files sent to us that we never installed: the senders learn we are gone, as the
  // kernel's do from a ring that exits (EOWNERDEAD).
  for (const PassedFile& passed : passed_) {
    ::close(passed.fd);
    reply(passed.sender, passed.request, -EOWNERDEAD);
  }
  for (int fd : files_) {
    if (fd >= 0) ::close(fd);
  }
  for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
    if (fds_[fd].holders > 0) ::close(static_cast<int>(fd));
  }
  if (timer_fd_ >= 0) ::close(timer_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (memory_ != nullptr) ::munmap(memory_, memory_size_);
}

// --- Requests -----------------------------------------------------------------------------

Request* Emulator::allocate(bool frees) noexcept {
  if (free_ == nullptr) {
    std::unique_ptr<Request[]> slab(new (std::nothrow) Request[requests_per_slab]);
    bool added = false;
    if (slab) {
      try {
        slabs_.push_back(std::move(slab));
        added = true;
      } catch (const std::bad_alloc&) {
      }
    }
    if (added) {
      Request* block = slabs_.back().get();
      for (std::uint32_t i = 0; i < requests_per_slab; ++i) {
        block[i].next = free_;
        free_ = &block[i];
      }
    }
  }
  Request* r = nullptr;
  if (free_ != nullptr) {
    r = free_;
    free_ = r->next;
  } else if (frees && reserve_ != nullptr) {
    r = reserve_;
    reserve_ = r->next;
    --reserved_;
  } else {
    return nullptr;
  }
  std::memset(static_cast<void*>(r), 0, sizeof(Request));
  r->heap_index = npos;
  r->fd = -1;
  r->aux_fd = -1;
  r->all_next = all_;
  if (all_ != nullptr) all_->all_prev = r;
  all_ = r;
  ++live_;
  return r;
}

void Emulator::release(Request* r) noexcept {
  hash_erase(r);
  if (r->all_prev != nullptr) {
    r->all_prev->all_next = r->all_next;
  } else {
    all_ = r->all_next;
  }
  if (r->all_next != nullptr) r->all_next->all_prev = r->all_prev;
  --live_;
  if (reserved_ < reserved_requests) {
    r->next = reserve_;
    reserve_ = r;
    ++reserved_;
  } else {
    r->next = free_;
    free_ = r;
  }
}

std::size_t Emulator::bucket_of(std::uint64_t user_data) const noexcept {
  return static_cast<std::size_t>((user_data * 0x9E3779B97F4A7C15ULL) >> 40) &
         (buckets_.size() - 1);
}

void Emulator::hash_insert(Request* r) noexcept {
  if (live_ > buckets_.size() * 2) {
    // Grow to keep chains short; without memory, chains just get longer.
    std::vector<Request*> bigger;
    try {
      bigger.assign(buckets_.size() * 4, nullptr);
    } catch (const std::bad_alloc&) {
      bigger.clear();
    }
    if (!bigger.empty()) {
      std::vector<Request*> old = std::move(buckets_);
      buckets_ = std::move(bigger);
      for (Request* head : old) {
        while (head != nullptr) {
          Request* next = head->hash_next;
          const std::size_t b = bucket_of(head->sqe.user_data);
          head->hash_next = buckets_[b];
          buckets_[b] = head;
          head = next;
        }
      }
    }
  }
  const std::size_t b = bucket_of(r->sqe.user_data);
  r->hash_next = buckets_[b];
  buckets_[b] = r;
}

void Emulator::hash_erase(Request* r) noexcept {
  Request** link = &buckets_[bucket_of(r->sqe.user_data)];
  while (*link != nullptr && *link != r) link = &(*link)->hash_next;
  if (*link == r) *link = r->hash_next;
}

// --- Completions --------------------------------------------------------------------------

std::uint32_t Emulator::cq_ready() const noexcept {
  return words_->cq_tail -
         std::atomic_ref<std::uint32_t>(words_->cq_head).load(std::memory_order_acquire);
}

void Emulator::set_flag(std::uint32_t flag) noexcept {
  std::atomic_ref<std::uint32_t>(words_->sq_flags).fetch_or(flag, std::memory_order_release);
}

void Emulator::clear_flag(std::uint32_t flag) noexcept {
  std::atomic_ref<std::uint32_t>(words_->sq_flags).fetch_and(~flag, std::memory_order_release);
}

bool Emulator::post(std::uint64_t user_data, std::int32_t res, std::uint32_t flags) noexcept {
  ++posted_;
  if (overflow_.empty() && cq_ready() < cq_entries_) {
    Cqe& cqe = cqes_[words_->cq_tail & (cq_entries_ - 1)];
    cqe.user_data = user_data;
    cqe.res = res;
    cqe.flags = flags;
    // Release: the CQE must be visible before the tail that publishes it.
    std::atomic_ref<std::uint32_t>(words_->cq_tail)
        .store(words_->cq_tail + 1, std::memory_order_release);
    return true;
  }
  try {
    overflow_.push_back(Cqe{user_data, res, flags});
    set_flag(sq_flags::cq_overflow);
  } catch (const std::bad_alloc&) {
    // Dropped, as the kernel drops a CQE it has no memory for: counted, and the next
    // enter fails with EBADR.
    std::atomic_ref<std::uint32_t>(words_->cq_overflow).fetch_add(1, std::memory_order_relaxed);
    lost_cqes_ = true;
  }
  return false;
}

void Emulator::flush_overflow() noexcept {
  while (!overflow_.empty() && cq_ready() < cq_entries_) {
    const Cqe c = overflow_.front();
    overflow_.pop_front();
    Cqe& cqe = cqes_[words_->cq_tail & (cq_entries_ - 1)];
    cqe = c;
    std::atomic_ref<std::uint32_t>(words_->cq_tail)
        .store(words_->cq_tail + 1, std::memory_order_release);
  }
  if (overflow_.empty()) clear_flag(sq_flags::cq_overflow);
}

void Emulator::signal_eventfd() noexcept {
  if (registered_eventfd_ < 0 || posted_ == signalled_at_) return;
  signalled_at_ = posted_;
  const std::uint64_t one = 1;
  (void)!::write(registered_eventfd_, &one, sizeof(one));
}

// --- Submission ---------------------------------------------------------------------------

std::uint32_t Emulator::submit(std::uint32_t to_submit) noexcept {
  const std::uint32_t head = words_->sq_head;
  // Acquire: the SQEs written before the tail's release store are visible.
  const std::uint32_t tail =
      std::atomic_ref<std::uint32_t>(words_->sq_tail).load(std::memory_order_acquire);
  const std::uint32_t available = std::min(to_submit, tail - head);
  std::uint32_t consumed = 0;
  Request* chain = nullptr;
  Request* last = nullptr;
  bool failing_chain = false;  // an earlier SQE of this chain had no request
  for (; consumed < available; ++consumed) {
    const Sqe& sqe = sqes_[(head + consumed) & (sq_entries_ - 1)];
    const bool linked = (sqe.flags & (sqe_flags::io_link | sqe_flags::io_hardlink)) != 0;
    Request* r = failing_chain ? nullptr : allocate(gives_back(static_cast<Op>(sqe.opcode)));
    if (r == nullptr) {
      // No memory for the request. Left in the SQ, it could wait for ever: the loop would
      // sleep for completions that only the requests still in the SQ could bring (a
      // server's sends, under RLIMIT_AS). So it completes at once with -ENOMEM, as the
      // kernel completes a request it cannot allocate the state of; what its chain holds
      // before it and after it is cancelled, as the kernel fails a chain whose member
      // fails at submission. Posting needs no request.
      if (chain != nullptr) {
        // A linked timeout without a record fails its request with -ENOMEM too: a
        // -ECANCELED would read as a cancel nobody asked for.
        fail_chain(chain, static_cast<Op>(sqe.opcode) == Op::link_timeout ? -ENOMEM : -ECANCELED);
        chain = last = nullptr;
      }
      (void)post(sqe.user_data, failing_chain ? -ECANCELED : -ENOMEM, 0);
      failing_chain = linked;
      continue;
    }
    r->sqe = sqe;
    hash_insert(r);
    if (last != nullptr) {
      last->link_next = r;
      r->where = Where::chained;
    } else {
      chain = r;
    }
    last = r;
    if ((r->sqe.flags & (sqe_flags::io_link | sqe_flags::io_hardlink)) == 0) {
      start_chain(chain);
      chain = last = nullptr;
    }
  }
  // A chain the SQ ended in the middle of runs as it is.
  if (chain != nullptr) start_chain(chain);
  // Release: pairs with Ring::get_sqe()'s acquire of the head.
  std::atomic_ref<std::uint32_t>(words_->sq_head).store(head + consumed, std::memory_order_release);
  return consumed;
}

void Emulator::start_chain(Request* head) noexcept {
  const bool drain = (head->sqe.flags & sqe_flags::io_drain) != 0;
  if (!drain && drain_queue_.empty() && !drain_blocks_) {
    start(head);
    return;
  }
  std::uint32_t length = 0;
  for (Request* r = head; r != nullptr; r = r->link_next) ++length;
  head->count = length;
  head->where = Where::drain;
  drain_queue_.push_back(head);
  drain_queued_ += length;
  after_completion();
}

// Starts what the drain queue holds once what it waits for has completed: a drained
// request starts when nothing submitted before it is in flight, and what comes after
// it waits until it, too, has completed.
void Emulator::after_completion() noexcept {
  while (!drain_queue_.empty()) {
    const std::uint32_t outside = live_ - drain_queued_;
    if (outside == 0) drain_blocks_ = false;
    Request* head = drain_queue_.head;
    const bool drain = (head->sqe.flags & sqe_flags::io_drain) != 0;
    if (drain_blocks_ || (drain && outside > 0)) return;
    drain_queue_.erase(head);
    drain_queued_ -= head->count;
    head->count = 0;
    head->where = Where::none;
    if (drain) drain_blocks_ = true;
    start(head);
  }
}

void Emulator::start(Request* r) noexcept {
  r->where = Where::none;
  if (static_cast<Op>(r->sqe.opcode) == Op::link_timeout) {
    // A linked timeout must follow the request it bounds.
    Request* next = std::exchange(r->link_next, nullptr);
    complete(r, -EINVAL);
    if (next != nullptr) fail_chain(next);
    return;
  }
  if (Request* t = r->link_next;
      t != nullptr && static_cast<Op>(t->sqe.opcode) == Op::link_timeout) {
    r->link_next = std::exchange(t->link_next, nullptr);
    const auto* ts = ptr<const KernelTimespec>(t->sqe.addr);
    if (ts == nullptr || t->sqe.len != 1) {
      // An invalid timer fails the request it was to bound.
      t->where = Where::none;
      complete(t, -EINVAL);
      Request* next = std::exchange(r->link_next, nullptr);
      r->where = Where::none;
      complete(r, -ECANCELED);
      if (next != nullptr) fail_chain(next);
      return;
    }
    t->where = Where::timer;
    t->target = r;
    r->timeout = t;
    t->deadline = deadline_of(*ts, t->sqe.op_flags);
    timer_insert(t);
  }
  issue(r);
}

bool Emulator::fails_link(const Request& r, std::int32_t res) const noexcept {
  const auto op = static_cast<Op>(r.sqe.opcode);
  if (res < 0) {
    return !(op == Op::timeout && res == -ETIME &&
             (r.sqe.op_flags & timeout_flags::etime_success) != 0);
  }
  switch (op) {
    case Op::read:
    case Op::write:
    case Op::readv:
    case Op::writev:
    case Op::read_fixed:
    case Op::write_fixed:
      return static_cast<std::uint32_t>(res) < r.expected;
    case Op::send:
    case Op::recv:
      return (r.sqe.op_flags & MSG_WAITALL) != 0 && static_cast<std::uint32_t>(res) < r.sqe.len;
    default:
      return false;
  }
}

void Emulator::complete(Request* r, std::int32_t res, std::uint32_t cqe_flags) noexcept {
  if (r->in != nullptr) r->in->erase(r);
  if (r->holds) drop_hold(r);
  if (r->heap_index != npos) timer_erase(r);
  if (r->counted) {
    count_timeouts_.erase(std::find(count_timeouts_.begin(), count_timeouts_.end(), r));
    r->counted = false;
  }
  r->where = Where::none;
  if (Request* t = std::exchange(r->timeout, nullptr)) {
    // The request ended before its timer: the timer is cancelled.
    timer_erase(t);
    t->target = nullptr;
    post(t->sqe.user_data, -ECANCELED, 0);
    release(t);
  }
  if (!((r->sqe.flags & sqe_flags::cqe_skip_success) != 0 && res >= 0)) {
    post(r->sqe.user_data, res, cqe_flags);
  }
  Request* next = std::exchange(r->link_next, nullptr);
  const bool failed = fails_link(*r, res) && (r->sqe.flags & sqe_flags::io_hardlink) == 0;
  release(r);
  if (next != nullptr) {
    if (failed) {
      fail_chain(next);
    } else {
      start(next);
    }
  }
  if (!drain_queue_.empty()) after_completion();
}

void Emulator::fail_chain(Request* first, std::int32_t res) noexcept {
  while (first != nullptr) {
    Request* next = std::exchange(first->link_next, nullptr);
    first->where = Where::none;
    post(first->sqe.user_data, res, 0);
    release(first);
    first = next;
  }
}

// --- Issue --------------------------------------------------------------------------------

int Emulator::resolve_fd(Request* r) noexcept {
  if ((r->sqe.flags & sqe_flags::fixed_file) == 0) return r->sqe.fd;
  const auto index = static_cast<std::uint32_t>(r->sqe.fd);
  if (index >= files_.size() || files_[index] < 0) return -EBADF;
  return files_[index];
}

void Emulator::issue(Request* r) noexcept {
  const auto op = static_cast<Op>(r->sqe.opcode);
  if (!is_implemented(r->sqe.opcode)) return complete(r, -EOPNOTSUPP);
  if ((r->sqe.flags & sqe_flags::buffer_select) != 0 && op != Op::recv && op != Op::read &&
      !(op == Op::recvmsg && (r->sqe.ioprio & recvsend_flags::recv_multishot) != 0)) {
    return complete(r, -EINVAL);
  }
  // Operations without a file, and those that resolve their own.
  switch (op) {
    case Op::nop: {
      if ((r->sqe.op_flags & nop_flags::file) != 0 && resolve_fd(r) < 0) {
        return complete(r, -EBADF);
      }
      const std::int32_t res = (r->sqe.op_flags & nop_flags::inject_result) != 0
                                   ? static_cast<std::int32_t>(r->sqe.len)
                                   : 0;
      return complete(r, res);
    }
    case Op::timeout:
      return run_timeout(r);
    case Op::timeout_remove:
      return run_timeout_remove(r);
    case Op::async_cancel:
      return run_cancel(r);
    case Op::poll_remove:
      return run_poll_remove(r);
    case Op::msg_ring:
      return run_msg_ring(r);
    case Op::close:
      return run_close(r);
    case Op::link_timeout:
      return complete(r, -EINVAL);
    case Op::socket: {
      const int fd =
          ::socket(r->sqe.fd, static_cast<int>(r->sqe.off), static_cast<int>(r->sqe.len));
      if (fd < 0) return complete(r, -errno);
      return complete(r, r->sqe.file_index != 0 ? install_direct(r->sqe.file_index, fd) : fd);
    }
    case Op::files_update: {
      const auto* fds = ptr<const int>(r->sqe.addr);
      std::int32_t updated = 0;
      for (std::uint32_t i = 0; i < r->sqe.len; ++i) {
        const std::uint64_t slot = r->sqe.off + i;
        if (fds[i] == register_files_skip) {
          ++updated;
          continue;
        }
        if (slot >= files_.size()) return complete(r, updated > 0 ? updated : -EINVAL);
        int copy = -1;
        if (fds[i] >= 0) {
          copy = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
          if (copy < 0) return complete(r, updated > 0 ? updated : -errno);
        }
        set_file(static_cast<std::uint32_t>(slot), copy);
        ++updated;
      }
      return complete(r, updated);
    }
    case Op::pipe: {
      if (r->sqe.file_index != 0) return complete(r, -EOPNOTSUPP);
      auto* fds = ptr<int>(r->sqe.addr);
      int made[2];
      if (::pipe2(made, static_cast<int>(r->sqe.op_flags)) != 0) return complete(r, -errno);
      fds[0] = made[0];
      fds[1] = made[1];
      return complete(r, 0);
    }
    default:
      if (!has_file(op)) {
        // dirfds and paths, or a process: the call resolves them, in a worker.
        r->fd = r->sqe.fd;
        return to_worker(r);
      }
      break;
  }

  r->fd = resolve_fd(r);
  if (r->fd < 0) return complete(r, -EBADF);
  switch (op) {
    case Op::read:
    case Op::write:
    case Op::readv:
    case Op::writev:
    case Op::read_fixed:
    case Op::write_fixed:
      (void)run_rw(r);
      return;
    case Op::recv:
      // The kernel's checks (io_recvmsg_prep): no addr2; a multishot receive takes
      // provided buffers and no MSG_WAITALL; only it may carry a byte limit.
      if (r->sqe.off != 0) return complete(r, -EINVAL);
      if ((r->sqe.ioprio & recvsend_flags::recv_multishot) != 0) {
        if ((r->sqe.flags & sqe_flags::buffer_select) == 0 ||
            (r->sqe.op_flags & MSG_WAITALL) != 0) {
          return complete(r, -EINVAL);
        }
        r->count = r->sqe.file_index;  // the byte limit, 0 for none (6.17's optlen)
      } else if (r->sqe.file_index != 0) {
        return complete(r, -EINVAL);
      }
      if ((r->sqe.ioprio & recvsend_flags::poll_first) != 0 || !run_recv(r)) {
        wait_on(r, Dir::read);
      }
      return;
    case Op::recvmsg:
      if ((r->sqe.ioprio & recvsend_flags::recv_multishot) != 0) {
        // The kernel's checks (io_recvmsg_prep): provided buffers, no MSG_WAITALL.
        if ((r->sqe.flags & sqe_flags::buffer_select) == 0 ||
            (r->sqe.op_flags & MSG_WAITALL) != 0) {
          return complete(r, -EINVAL);
        }
      }
      if (!run_msg(r)) wait_on(r, Dir::read);
      return;
    case Op::send:
    case Op::send_zc:
      if ((r->sqe.ioprio & recvsend_flags::bundle) != 0) return complete(r, -EINVAL);
      if (!run_send(r)) wait_on(r, Dir::write);
      return;
    case Op::sendmsg:
    case Op::sendmsg_zc:
      if (!run_msg(r)) wait_on(r, Dir::write);
      return;
    case Op::accept: {
      // accept4() has no MSG_DONTWAIT: the listener itself must not block.
      const int fl = ::fcntl(r->fd, F_GETFL);
      if (fl >= 0 && (fl & O_NONBLOCK) == 0) (void)::fcntl(r->fd, F_SETFL, fl | O_NONBLOCK);
      if ((r->sqe.ioprio & accept_flags::poll_first) != 0 || !run_accept(r)) {
        if ((r->sqe.ioprio & accept_flags::dontwait) != 0) return complete(r, -EAGAIN);
        wait_on(r, Dir::read);
      }
      return;
    }
    case Op::connect:
      if (!run_connect(r)) wait_on(r, Dir::write);
      return;
    case Op::poll_add: {
      pollfd p{r->fd, static_cast<short>(r->sqe.op_flags & 0xffff), 0};
      if (::poll(&p, 1, 0) > 0 && p.revents != 0) {
        if (run_poll(r, static_cast<std::uint16_t>(p.revents))) return;
      }
      wait_on(r, Dir::poll);
      return;
    }
    case Op::shutdown:
      return complete(r, ::shutdown(r->fd, static_cast<int>(r->sqe.len)) == 0 ? 0 : -errno);
    case Op::bind:
      return complete(r, ::bind(r->fd, ptr<const sockaddr>(r->sqe.addr),
                                static_cast<socklen_t>(r->sqe.off)) == 0
                             ? 0
                             : -errno);
    case Op::listen:
      return complete(r, ::listen(r->fd, static_cast<int>(r->sqe.len)) == 0 ? 0 : -errno);
    case Op::epoll_ctl:
      return complete(r,
                      ::epoll_ctl(r->fd, static_cast<int>(r->sqe.len), static_cast<int>(r->sqe.off),
                                  ptr<epoll_event>(r->sqe.addr)) == 0
                          ? 0
                          : -errno);
    case Op::fixed_fd_install: {
      if ((r->sqe.flags & sqe_flags::fixed_file) == 0) return complete(r, -EBADF);
      const int cmd = (r->sqe.op_flags & fixed_fd_no_cloexec) != 0 ? F_DUPFD : F_DUPFD_CLOEXEC;
      const int fd = ::fcntl(r->fd, cmd, 0);
      return complete(r, fd >= 0 ? fd : -errno);
    }
    case Op::uring_cmd: {
      const auto cmd = static_cast<SocketOp>(static_cast<std::uint32_t>(r->sqe.off));
      const int level = static_cast<int>(static_cast<std::uint32_t>(r->sqe.addr));
      const int name = static_cast<int>(r->sqe.addr >> 32);
      void* value = ptr<void>(r->sqe.addr3);
      switch (cmd) {
        case SocketOp::siocinq:
        case SocketOp::siocoutq: {
          int bytes = 0;
          if (::ioctl(r->fd, cmd == SocketOp::siocinq ? SIOCINQ : SIOCOUTQ, &bytes) != 0) {
            return complete(r, -errno);
          }
          return complete(r, bytes);
        }
        case SocketOp::getsockopt: {
          // The kernel's command reads SOL_SOCKET options only (io_uring_cmd_getsockopt).
          if (level != SOL_SOCKET) return complete(r, -EOPNOTSUPP);
          auto len = static_cast<socklen_t>(r->sqe.file_index);
          if (::getsockopt(r->fd, level, name, value, &len) != 0) return complete(r, -errno);
          return complete(r, static_cast<std::int32_t>(len));
        }
        case SocketOp::setsockopt:
          return complete(r, ::setsockopt(r->fd, level, name, value,
                                          static_cast<socklen_t>(r->sqe.file_index)) == 0
                                 ? 0
                                 : -errno);
        default:
          return complete(r, -EOPNOTSUPP);
      }
    }
    case Op::splice:
    case Op::tee: {
      const auto in = static_cast<std::int32_t>(r->sqe.file_index);
      if ((r->sqe.op_flags & splice_f_fd_in_fixed) != 0) {
        const auto index = static_cast<std::uint32_t>(in);
        if (index >= files_.size() || files_[index] < 0) return complete(r, -EBADF);
        r->aux_fd = files_[index];
      } else {
        r->aux_fd = in;
      }
      if (static_cast<Op>(r->sqe.opcode) == Op::splice && splice_waits_for_output(r)) {
        if (!run_splice(r)) wait_on(r, Dir::write);
        return;
      }
      return to_worker(r);
    }
    default:
      // fsync, fallocate, fadvise, sync_file_range, ftruncate, the f*xattr calls.
      return to_worker(r);
  }
}

int Emulator::install_direct(std::uint32_t file_index, int fd) noexcept {
  std::uint32_t slot = 0;
  if (files_.empty()) {
    ::close(fd);
    return -ENXIO;  // no table registered
  }
  if (file_index == file_index_alloc) {
    // The kernel's order: the first free slot from the hint on, then from the start.
    const std::uint32_t end =
        static_cast<std::uint32_t>(std::min<std::size_t>(alloc_end_, files_.size()));
    auto free_in = [&](std::uint32_t from, std::uint32_t to) {
      for (std::uint32_t i = from; i < to; ++i) {
        if (files_[i] < 0) return i;
      }
      return npos;
    };
    slot = free_in(std::max(alloc_hint_, alloc_begin_), end);
    if (slot == npos) slot = free_in(alloc_begin_, end);
    if (slot == npos) {
      ::close(fd);
      return -ENFILE;
    }
  } else {
    slot = file_index - 1;
    if (slot >= files_.size()) {
      ::close(fd);
      return -EINVAL;
    }
  }
  set_file(slot, fd);
  // An allocated slot is the result; a chosen one returns 0.
  return file_index == file_index_alloc ? static_cast<int>(slot) : 0;
}

void Emulator::set_file(std::uint32_t slot, int fd) noexcept {
  const int old = std::exchange(files_[slot], fd);
  if (old >= 0) {
    (void)close_fd(old);
    alloc_hint_ = slot;
  }
  if (fd >= 0) alloc_hint_ = slot + 1;
}

void Emulator::run_close(Request* r) noexcept {
  if (r->sqe.file_index != 0) {
    const std::uint32_t slot = r->sqe.file_index - 1;
    if (slot >= files_.size() || files_[slot] < 0) return complete(r, -EBADF);
    const int fd = files_[slot];
    files_[slot] = -1;
    alloc_hint_ = slot;
    return complete(r, close_fd(fd));
  }
  if ((r->sqe.flags & sqe_flags::fixed_file) != 0) return complete(r, -EBADF);
  complete(r, close_fd(r->sqe.fd));
}

// Reads and writes: regular files and block devices go to a worker (after one attempt
// at a read the page cache can serve at once); anything else — a pipe, a socket, an
// eventfd — is tried without blocking and waits for readiness.
bool Emulator::run_rw(Request* r) noexcept {
  const auto op = static_cast<Op>(r->sqe.opcode);
  const bool reading = op == Op::read || op == Op::readv || op == Op::read_fixed;
  const bool vectored = op == Op::readv || op == Op::writev;
  if (op == Op::read_fixed || op == Op::write_fixed) {
    const std::uint64_t begin = r->sqe.addr;
    const std::uint64_t end = begin + r->sqe.len;
    if (r->sqe.buf_index >= buffers_.size()) return complete(r, -EFAULT), true;
    const iovec& reg = buffers_[r->sqe.buf_index];
    const auto reg_begin = reinterpret_cast<std::uint64_t>(reg.iov_base);
    if (begin < reg_begin || end > reg_begin + reg.iov_len) return complete(r, -EFAULT), true;
  }
  if (vectored) {
    const auto* iov = ptr<const iovec>(r->sqe.addr);
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < r->sqe.len; ++i) total += iov[i].iov_len;
    r->expected = static_cast<std::uint32_t>(std::min<std::uint64_t>(total, UINT32_MAX));
  } else {
    r->expected = r->sqe.len;
  }
  struct stat st {};
  if (::fstat(r->fd, &st) != 0) return complete(r, -errno), true;
  const bool file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode);
  if ((r->sqe.flags & sqe_flags::buffer_select) != 0) {
    if (file) return complete(r, -EOPNOTSUPP), true;
    iovec iov{};
    std::uint16_t bid = 0;
    if (!select_buffer(r, r->sqe.buf_index, r->sqe.len, iov, bid))
      return complete(r, -ENOBUFS), true;
    const ssize_t n = ::preadv2(r->fd, &iov, 1, -1, RWF_NOWAIT);
    if (n < 0 && errno == EAGAIN) {
      if (r->where != Where::waiting) {
        if (int e = park(r, reading ? Dir::read : Dir::write); e < 0) return complete(r, e), true;
      }
      return false;
    }
    if (n < 0) return complete(r, -errno), true;
    const std::uint32_t flags =
        n > 0 ? cqe_flags::buffer | (std::uint32_t{bid} << cqe_flags::buffer_shift) |
                    commit_buffer(r->sqe.buf_index, static_cast<std::uint32_t>(n))
              : 0;
    return complete(r, static_cast<std::int32_t>(n), flags), true;
  }
  const std::uint64_t offset = r->sqe.off;
  if (file) {
    if (op == Op::read || op == Op::read_fixed) {
      // What the page cache holds now: as io_uring's inline attempt (IOCB_NOWAIT).
      iovec iov{ptr<void>(r->sqe.addr), r->sqe.len};
      const auto at = offset == ~std::uint64_t{0} ? off_t{-1} : static_cast<off_t>(offset);
      const ssize_t n = ::preadv2(r->fd, &iov, 1, at, RWF_NOWAIT);
      if (n == static_cast<ssize_t>(r->sqe.len) || n == 0) {
        return complete(r, static_cast<std::int32_t>(n)), true;
      }
      if (n > 0) r->done = static_cast<std::uint32_t>(n);
    }
    to_worker(r);
    return true;
  }
  // A stream: the offset means nothing to it (as io_uring ignores it).
  ssize_t n = 0;
  if (vectored) {
    const auto* iov = ptr<const iovec>(r->sqe.addr);
    const auto count = static_cast<int>(r->sqe.len);
    const int flags = static_cast<int>(r->sqe.op_flags) | RWF_NOWAIT;
    n = reading ? ::preadv2(r->fd, iov, count, -1, flags)
                : ::pwritev2(r->fd, iov, count, -1, flags);
  } else {
    iovec iov{ptr<void>(r->sqe.addr), r->sqe.len};
    n = reading ? ::preadv2(r->fd, &iov, 1, -1, RWF_NOWAIT)
                : ::pwritev2(r->fd, &iov, 1, -1, RWF_NOWAIT);
  }
  if (n >= 0) return complete(r, static_cast<std::int32_t>(n)), true;
  const int e = errno;
  if (e == EAGAIN) {
    if (r->where != Where::waiting) {
      if (int p = park(r, reading ? Dir::read : Dir::write); p < 0) {
        if (p == -EPERM) return to_worker(r), true;
        return complete(r, p), true;
      }
    }
    return false;
  }
  if (e == EOPNOTSUPP) {
    // A file without non-blocking reads and writes: a worker blocks on it.
    if (r->in != nullptr) r->in->erase(r);
    return to_worker(r), true;
  }
  return complete(r, -e), true;
}

bool Emulator::select_buffer(Request* r, std::uint16_t group, std::uint32_t want, iovec& out,
                             std::uint16_t& bid) noexcept {
  (void)r;
  if (group >= groups_.size() || !groups_[group].registered) return false;
  BufferGroupState& g = groups_[group];
  // Acquire: the application fills an entry, then publishes the tail with a release.
  const std::uint16_t tail = std::atomic_ref<std::uint16_t>(
                                 *reinterpret_cast<std::uint16_t*>(
                                     reinterpret_cast<std::byte*>(g.ring) + buf_ring_tail_offset))
                                 .load(std::memory_order_acquire);
  if (g.head == tail) return false;
  const Buf& buf = g.ring[g.head & g.mask];
  std::uint32_t len = buf.len;
  if (want != 0) len = std::min(len, want);
  out.iov_base = ptr<void>(buf.addr);
  out.iov_len = len;
  bid = buf.bid;
  return true;
}

// Takes `used` bytes of the group's head buffer; returns the CQE flags that say whether
// the buffer stays with the ring (incremental consumption, bytes left).
std::uint32_t Emulator::commit_buffer(std::uint16_t group, std::uint32_t used) noexcept {
  BufferGroupState& g = groups_[group];
  Buf& buf = g.ring[g.head & g.mask];
  if (g.incremental && used < buf.len) {
    buf.addr += used;
    buf.len -= used;
    return cqe_flags::buf_more;
  }
  ++g.head;
  return 0;
}

bool Emulator::run_recv(Request* r) noexcept {
  const bool multishot = (r->sqe.ioprio & recvsend_flags::recv_multishot) != 0;
  const bool select = (r->sqe.flags & sqe_flags::buffer_select) != 0;
  // The caller's own MSG_DONTWAIT: io_uring completes such a receive with -EAGAIN rather
  // than wait for data (REQ_F_NOWAIT).
  const bool caller_nowait = (static_cast<int>(r->sqe.op_flags) & MSG_DONTWAIT) != 0;
  const int flags = static_cast<int>(r->sqe.op_flags) | MSG_DONTWAIT;
  for (int round = 0;; ++round) {
    iovec iov{};
    std::uint16_t bid = 0;
    if (select) {
      if (!select_buffer(r, r->sqe.buf_index, multishot ? 0 : r->sqe.len, iov, bid)) {
        complete(r, -ENOBUFS);
        return true;
      }
      if (multishot && r->count != 0) iov.iov_len = std::min<std::size_t>(iov.iov_len, r->count);
    } else {
      iov.iov_base = ptr<std::byte>(r->sqe.addr) + r->done;
      iov.iov_len = r->sqe.len - r->done;
    }
    const ssize_t n = ::recv(r->fd, iov.iov_base, iov.iov_len, flags);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN && !(caller_nowait && !multishot)) return false;
      complete(r, r->done > 0 ? static_cast<std::int32_t>(r->done) : -e);
      return true;
    }
    const auto got = static_cast<std::uint32_t>(n);
    std::uint32_t cflags = 0;
    if (select && got > 0) {
      cflags = cqe_flags::buffer | (std::uint32_t{bid} << cqe_flags::buffer_shift) |
               commit_buffer(r->sqe.buf_index, got);
    }
    if (!multishot) {
      if (!select && got > 0 && (r->sqe.op_flags & MSG_WAITALL) != 0 &&
          r->done + got < r->sqe.len) {
        r->done += got;
        continue;
      }
      complete(r, static_cast<std::int32_t>(r->done + got), cflags);
      return true;
    }
    if (got == 0) {  // the peer's FIN: the stream ends
      complete(r, 0);
      return true;
    }
    bool last = false;
    if (r->count != 0) {
      r->count -= std::min(r->count, got);
      last = r->count == 0;  // the byte limit is reached: the request ends here
    }
    if (last || !overflow_.empty() || cq_ready() >= cq_entries_) {
      complete(r, static_cast<std::int32_t>(got), cflags);
      return true;
    }
    post(r->sqe.user_data, static_cast<std::int32_t>(got), cflags | cqe_flags::more);
    // A short read emptied the socket: what arrives later raises a new edge. Not so for
    // the peer's FIN if it came before this read (the edge that said so is this one, or
    // one we did not see): then read on until EAGAIN or the end.
    if (got < iov.iov_len && r->where == Where::waiting && r->fd == edge_fd_ &&
        (edge_events_ & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) {
      return false;
    }
    if (round + 1 >= multishot_batch) {
      defer_retry(r);
      return false;
    }
  }
}

bool Emulator::run_send(Request* r) noexcept {
  const bool zc = static_cast<Op>(r->sqe.opcode) == Op::send_zc;
  const int flags = static_cast<int>(r->sqe.op_flags) | MSG_DONTWAIT;
  const auto* dest = ptr<const sockaddr>(r->sqe.off);
  const auto dest_len = static_cast<socklen_t>(r->sqe.file_index & 0xffff);
  for (;;) {
    const ssize_t n = ::sendto(r->fd, ptr<const std::byte>(r->sqe.addr) + r->done,
                               r->sqe.len - r->done, flags, dest, dest != nullptr ? dest_len : 0);
    std::int32_t res = 0;
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN) return false;
      res = r->done > 0 ? static_cast<std::int32_t>(r->done) : -e;
    } else {
      r->done += static_cast<std::uint32_t>(n);
      if ((r->sqe.op_flags & MSG_WAITALL) != 0 && n > 0 && r->done < r->sqe.len) continue;
      res = static_cast<std::int32_t>(r->done);
    }
    if (zc) {
      // The data was copied: the notification follows at once, saying so when asked.
      post(r->sqe.user_data, res, cqe_flags::more);
      const bool report = (r->sqe.ioprio & recvsend_flags::send_zc_report_usage) != 0;
      complete(r, report ? static_cast<std::int32_t>(notif_usage_zc_copied) : 0, cqe_flags::notif);
    } else {
      complete(r, res);
    }
    return true;
  }
}

// A splice from a pipe that holds bytes into a socket, without SPLICE_F_NONBLOCK:
// tried without blocking, and on EAGAIN it waits for the socket to be writable like a
// send. In a worker it would block there, and a few peers that stop reading (a file
// sent with send_file to each) would hold every worker and stall all other splices.
// Any other splice blocks in a worker, as in the kernel's io-wq.
bool Emulator::splice_waits_for_output(const Request* r) const noexcept {
  if ((r->sqe.op_flags & SPLICE_F_NONBLOCK) != 0) return false;  // EAGAIN is the caller's
  if (r->sqe.addr != ~std::uint64_t{0} || r->sqe.off != ~std::uint64_t{0}) return false;
  struct stat in {};
  struct stat out {};
  if (::fstat(r->aux_fd, &in) != 0 || !S_ISFIFO(in.st_mode)) return false;
  if (::fstat(r->fd, &out) != 0 || !S_ISSOCK(out.st_mode)) return false;
  int held = 0;
  return ::ioctl(r->aux_fd, FIONREAD, &held) == 0 && held > 0;
}

bool Emulator::run_splice(Request* r) noexcept {
  // SPLICE_F_NONBLOCK is for the pipe; a socket blocks unless it is O_NONBLOCK itself:
  // it is for this one call, then put back as it was.
  const int fl = ::fcntl(r->fd, F_GETFL);
  if (fl < 0) return complete(r, -errno), true;
  const bool blocking = (fl & O_NONBLOCK) == 0;
  if (blocking) (void)::fcntl(r->fd, F_SETFL, fl | O_NONBLOCK);
  // A socket the peer has closed raises SIGPIPE in the thread that splices into it (a
  // send has MSG_NOSIGNAL, a splice nothing like it), which would end the program: it
  // is blocked for the call, and one the call raised is taken before it is unblocked.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  sigset_t old_mask;
  ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
  sigset_t pending;
  const bool was_pending = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  const std::uint32_t flags = (r->sqe.op_flags & ~splice_f_fd_in_fixed) | SPLICE_F_NONBLOCK;
  ssize_t n = 0;
  do {
    n = ::splice(r->aux_fd, nullptr, r->fd, nullptr, r->sqe.len, flags);
  } while (n < 0 && errno == EINTR);
  const int e = errno;
  // Taken whatever the call returned: one call makes several sends, and a later one can
  // meet the peer's reset after earlier ones moved bytes (a count, and SIGPIPE raised).
  if (!was_pending && ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
    const timespec now{};
    while (::sigtimedwait(&pipe_signal, nullptr, &now) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (blocking) (void)::fcntl(r->fd, F_SETFL, fl);
  if (n >= 0) return complete(r, static_cast<std::int32_t>(n)), true;
  if (e == EAGAIN) return false;
  return complete(r, -e), true;
}

// A multishot recvmsg: each message into a provided buffer laid out as the kernel's
// (io_recvmsg_multishot): a RecvmsgOut header, the name's room, the control's room (the
// sizes the SQE's msghdr gives), then the payload. The result counts all of it.
bool Emulator::run_recvmsg_multishot(Request* r) noexcept {
  const auto* asked = ptr<const msghdr>(r->sqe.addr);
  const std::size_t name_room = asked->msg_namelen;
  const std::size_t control_room = asked->msg_controllen;
  const std::size_t header = sizeof(RecvmsgOut) + name_room + control_room;
  const int flags = static_cast<int>(r->sqe.op_flags) | MSG_DONTWAIT;
  for (int round = 0;; ++round) {
    iovec buffer{};
    std::uint16_t bid = 0;
    if (!select_buffer(r, r->sqe.buf_index, 0, buffer, bid)) {
      complete(r, -ENOBUFS);
      return true;
    }
    if (buffer.iov_len < header) {
      complete(r, -EFAULT);
      return true;
    }
    auto* base = static_cast<std::byte*>(buffer.iov_base);
    sockaddr_storage name{};
    iovec payload{base + header, buffer.iov_len - header};
    msghdr m{};
    m.msg_name = name_room != 0 ? &name : nullptr;
    m.msg_namelen = name_room != 0 ? sizeof(name) : 0;
    m.msg_iov = &payload;
    m.msg_iovlen = 1;
    m.msg_control = control_room != 0 ? base + sizeof(RecvmsgOut) + name_room : nullptr;
    m.msg_controllen = control_room;
    ssize_t n = 0;
    do {
      n = ::recvmsg(r->fd, &m, flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return false;
    if (n < 0) return complete(r, -errno), true;
    const RecvmsgOut out{static_cast<std::uint32_t>(m.msg_namelen),
                         static_cast<std::uint32_t>(m.msg_controllen),
                         static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(m.msg_flags)};
    std::memcpy(base, &out, sizeof(out));
    std::memcpy(base + sizeof(out), &name, std::min<std::size_t>(m.msg_namelen, name_room));
    const std::size_t used =
        header + std::min<std::size_t>(static_cast<std::size_t>(n), payload.iov_len);
    const auto res = static_cast<std::int32_t>(used);
    const std::uint32_t cflags = cqe_flags::buffer |
                                 (std::uint32_t{bid} << cqe_flags::buffer_shift) |
                                 commit_buffer(r->sqe.buf_index, static_cast<std::uint32_t>(used));
    // A message of no bytes ends the request, as the kernel's (a stream's end, but also
    // an empty datagram).
    if (n == 0 || !overflow_.empty() || cq_ready() >= cq_entries_) {
      complete(r, res, cflags);
      return true;
    }
    post(r->sqe.user_data, res, cflags | cqe_flags::more);
    if (round + 1 >= multishot_batch) {
      defer_retry(r);
      return false;
    }
  }
}

bool Emulator::run_msg(Request* r) noexcept {
  const auto op = static_cast<Op>(r->sqe.opcode);
  if (op == Op::recvmsg && (r->sqe.ioprio & recvsend_flags::recv_multishot) != 0) {
    return run_recvmsg_multishot(r);
  }
  const int flags = static_cast<int>(r->sqe.op_flags) | MSG_DONTWAIT;
  for (;;) {
    const ssize_t n = op == Op::recvmsg ? ::recvmsg(r->fd, ptr<msghdr>(r->sqe.addr), flags)
                                        : ::sendmsg(r->fd, ptr<const msghdr>(r->sqe.addr), flags);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN) return false;
      complete(r, -e);
      return true;
    }
    if (op == Op::sendmsg_zc) {
      post(r->sqe.user_data, static_cast<std::int32_t>(n), cqe_flags::more);
      complete(r, 0, cqe_flags::notif);
    } else {
      complete(r, static_cast<std::int32_t>(n));
    }
    return true;
  }
}

bool Emulator::run_accept(Request* r) noexcept {
  const bool multishot = (r->sqe.ioprio & accept_flags::multishot) != 0;
  for (int round = 0;; ++round) {
    const int fd = ::accept4(r->fd, ptr<sockaddr>(r->sqe.addr), ptr<socklen_t>(r->sqe.off),
                             static_cast<int>(r->sqe.op_flags));
    if (fd < 0) {
      const int e = errno;
      if (e == EINTR || e == ECONNABORTED) continue;
      if (e == EAGAIN) return false;
      complete(r, -e);
      return true;
    }
    const int res = r->sqe.file_index != 0 ? install_direct(r->sqe.file_index, fd) : fd;
    if (!multishot || res < 0 || !overflow_.empty() || cq_ready() >= cq_entries_) {
      complete(r, res);
      return true;
    }
    post(r->sqe.user_data, res, cqe_flags::more);
    if (round + 1 >= multishot_batch) {
      defer_retry(r);
      return false;
    }
  }
}

bool Emulator::run_connect(Request* r) noexcept {
  if (r->stage == 1) {
    int error = 0;
    socklen_t len = sizeof(error);
    if (::getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    if (error == 0) {
      // An edge before the handshake ended (EPOLLOUT of an unconnected socket is none,
      // but HUP is): ask the socket.
      sockaddr_storage peer{};
      socklen_t peer_len = sizeof(peer);
      if (::getpeername(r->fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 &&
          errno == ENOTCONN) {
        return false;
      }
    }
    complete(r, -error);
    return true;
  }
  // connect() blocks on a blocking socket: make this one call non-blocking, then put
  // the socket back as it was (the handshake goes on either way).
  const int fl = ::fcntl(r->fd, F_GETFL);
  const bool blocking = fl >= 0 && (fl & O_NONBLOCK) == 0;
  if (blocking) (void)::fcntl(r->fd, F_SETFL, fl | O_NONBLOCK);
  int rc = ::connect(r->fd, ptr<const sockaddr>(r->sqe.addr), static_cast<socklen_t>(r->sqe.off));
  while (rc != 0 && errno == EINTR) {
    rc = ::connect(r->fd, ptr<const sockaddr>(r->sqe.addr), static_cast<socklen_t>(r->sqe.off));
  }
  const int e = errno;
  if (blocking) (void)::fcntl(r->fd, F_SETFL, fl);
  if (rc == 0) {
    complete(r, 0);
    return true;
  }
  if (e == EINPROGRESS || e == EALREADY) {
    r->stage = 1;
    return false;
  }
  if (e == EAGAIN) return false;  // a Unix socket's full backlog: try again when writable
  complete(r, -e);
  return true;
}

bool Emulator::run_poll(Request* r, std::uint32_t events) noexcept {
  const std::uint32_t wanted = (r->sqe.op_flags & 0xffff) | POLLERR | POLLHUP | POLLNVAL;
  const std::uint32_t revents = events & wanted;
  if (revents == 0) return false;
  const bool multishot = (r->sqe.len & poll_flags::add_multi) != 0;
  if (!multishot || !overflow_.empty() || cq_ready() >= cq_entries_) {
    complete(r, static_cast<std::int32_t>(revents));
    return true;
  }
  post(r->sqe.user_data, static_cast<std::int32_t>(revents), cqe_flags::more);
  return false;
}

// --- Waiting on fds -------------------------------------------------------------------------

void Emulator::wait_on(Request* r, Dir dir) noexcept {
  if (const int e = park(r, dir); e < 0) complete(r, e);
}

bool Emulator::track(int fd) noexcept {
  const auto at = static_cast<std::size_t>(fd);
  if (at < fds_.size()) return true;
  try {
    fds_.resize(std::max<std::size_t>(at + 1, fds_.size() * 2));
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

int Emulator::park(Request* r, Dir dir) noexcept {
  if (!track(r->fd)) return -ENOMEM;
  FdWaiters& w = fds_[static_cast<std::size_t>(r->fd)];
  // Every direction, edge-triggered. epoll keys its entries by file and fd number and
  // drops a file's when the file is released, so EEXIST says the fd's current file is
  // in the set already. Success with waiters here says the number names a new file: the
  // program closed the old one under them (a close through the ring keeps it for them,
  // see close_fd()), and what they would read now is another file's. They fail, as a
  // request on a closed fd does, and the newcomer waits on its own file.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.u64 = static_cast<std::uint64_t>(r->fd);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, r->fd, &ev) == 0) {
    if (!w.empty()) fail_waiters(w, -EBADF);
  } else if (errno != EEXIST) {
    return -errno;
  }
  r->dir = dir;
  r->where = Where::waiting;
  (dir == Dir::read ? w.readers : dir == Dir::write ? w.writers : w.pollers).push_back(r);
  return 0;
}

void Emulator::fail_waiters(FdWaiters& w, std::int32_t res) noexcept {
  // Taken first: a completion may start a request that waits on this fd again.
  List taken;
  for (List* list : {&w.readers, &w.writers, &w.pollers}) {
    while (Request* r = list->head) {
      list->erase(r);
      taken.push_back(r);
    }
  }
  while (Request* r = taken.head) complete(r, res);
}

int Emulator::close_fd(int fd) noexcept {
  if (fd >= 0 && static_cast<std::size_t>(fd) < fds_.size() &&
      !fds_[static_cast<std::size_t>(fd)].empty()) {
    keep_file(fd);
  }
  return ::close(fd) == 0 ? 0 : -errno;
}

// The waiters of `fd`, about to be closed, move to a duplicate of it that stays open
// until the last of them ends: the file lives on for them as the kernel's reference
// keeps it, and the number is free for whatever the program opens next.
void Emulator::keep_file(int fd) noexcept {
  FdWaiters& from = fds_[static_cast<std::size_t>(fd)];
  // The entry is keyed by (file, fd): left in, it would report the file's edges as
  // this number's after the close.
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  const int held = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  std::int32_t error = held < 0 ? -errno : 0;
  if (error == 0 && !track(held)) error = -ENOMEM;
  if (error == 0) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(held);
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, held, &ev) != 0) error = -errno;
  }
  if (error != 0) {
    if (held >= 0) ::close(held);
    return fail_waiters(from, error);
  }
  FdWaiters& to = fds_[static_cast<std::size_t>(held)];
  for (auto [source, target] :
       {std::pair{&from.readers, &to.readers}, std::pair{&from.writers, &to.writers},
        std::pair{&from.pollers, &to.pollers}}) {
    while (Request* r = source->head) {
      source->erase(r);
      r->fd = held;
      r->holds = true;
      ++to.holders;
      target->push_back(r);
    }
  }
  // Readers that stopped with data left wait for a retry queued under the old number.
  if (!to.readers.empty()) defer_retry(to.readers.head);
}

void Emulator::drop_hold(Request* r) noexcept {
  r->holds = false;
  FdWaiters& w = fds_[static_cast<std::size_t>(r->fd)];
  if (--w.holders > 0) return;
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, r->fd, nullptr);
  ::close(r->fd);
}

void Emulator::defer_retry(Request* r) noexcept {
  // Still a waiter of its fd, and the fd is queued to run again before the next wait
  // (an edge already reported will not come again). At issue, before the request first
  // waited, the table may not reach its fd yet: park() fails it next if it cannot.
  const int fd = r->fd;
  if (!track(fd)) return;
  FdWaiters& w = fds_[static_cast<std::size_t>(fd)];
  if (w.retry_queued) return;
  w.retry_queued = true;
  w.retry_next = -1;
  if (retry_tail_ >= 0) {
    fds_[static_cast<std::size_t>(retry_tail_)].retry_next = fd;
  } else {
    retry_head_ = fd;
  }
  retry_tail_ = fd;
}

void Emulator::on_fd_event(int fd, std::uint32_t events) noexcept {
  if (static_cast<std::size_t>(fd) >= fds_.size()) return;
  struct Edge {
    Emulator& emu;
    ~Edge() { emu.edge_fd_ = -1; }
  } scope{*this};
  edge_fd_ = fd;
  edge_events_ = events;
  FdWaiters& w = fds_[static_cast<std::size_t>(fd)];
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) != 0) {
    run_waiters(w.readers);
  }
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) run_waiters(w.writers);
  if (!w.pollers.empty()) {
    Request* last = w.pollers.tail;
    for (Request* r = w.pollers.head; r != nullptr;) {
      Request* next = r->next;
      const bool end = r == last;
      (void)run_poll(r, events);
      if (end) break;
      r = next;
    }
  }
}

void Emulator::run_waiters(List& list) noexcept {
  // Those waiting now, in order; a request a completion parks here waits for the next
  // edge or its own attempt. `fds_` is a deque, so `list` stays where it is.
  Request* last = list.tail;
  for (Request* r = list.head; r != nullptr;) {
    Request* next = r->next;
    const bool end = r == last;
    (void)retry(r);
    if (end) break;
    r = next;
  }
}

bool Emulator::retry(Request* r) noexcept {
  switch (static_cast<Op>(r->sqe.opcode)) {
    case Op::recv:
      return run_recv(r);
    case Op::send:
    case Op::send_zc:
      return run_send(r);
    case Op::splice:
      return run_splice(r);
    case Op::recvmsg:
    case Op::sendmsg:
    case Op::sendmsg_zc:
      return run_msg(r);
    case Op::accept:
      return run_accept(r);
    case Op::connect:
      return run_connect(r);
    default:
      return run_rw(r);
  }
}

// --- Timers ---------------------------------------------------------------------------------

std::uint64_t Emulator::now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t Emulator::deadline_of(const KernelTimespec& ts, std::uint32_t flags) noexcept {
  const std::int64_t ns = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  const std::uint64_t now = now_ns();
  if ((flags & timeout_flags::abs) == 0)
    return now + static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
  clockid_t clock = CLOCK_MONOTONIC;
  if ((flags & timeout_flags::boottime) != 0) clock = CLOCK_BOOTTIME;
  if ((flags & timeout_flags::realtime) != 0) clock = CLOCK_REALTIME;
  if (clock == CLOCK_MONOTONIC) return static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
  timespec cur{};
  ::clock_gettime(clock, &cur);
  const std::int64_t left = ns - (cur.tv_sec * 1'000'000'000LL + cur.tv_nsec);
  return now + static_cast<std::uint64_t>(std::max<std::int64_t>(left, 0));
}

namespace {
bool earlier(const Request* a, const Request* b) noexcept { return a->deadline < b->deadline; }
}  // namespace

void Emulator::timer_insert(Request* r) noexcept {
  try {
    timers_.push_back(r);
  } catch (const std::bad_alloc&) {
    // No room in the heap: the timer fires at once rather than never.
    r->deadline = 0;
    return fire_timer(r);
  }
  std::size_t i = timers_.size() - 1;
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(r, timers_[parent])) break;
    timers_[i] = timers_[parent];
    timers_[i]->heap_index = static_cast<std::uint32_t>(i);
    i = parent;
  }
  timers_[i] = r;
  r->heap_index = static_cast<std::uint32_t>(i);
}

void Emulator::timer_erase(Request* r) noexcept {
  std::size_t i = r->heap_index;
  if (i == npos) return;
  r->heap_index = npos;
  Request* moved = timers_.back();
  timers_.pop_back();
  if (i == timers_.size()) return;
  // Put `moved` at i, then restore the heap up or down.
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(moved, timers_[parent])) break;
    timers_[i] = timers_[parent];
    timers_[i]->heap_index = static_cast<std::uint32_t>(i);
    i = parent;
  }
  for (;;) {
    const std::size_t left = 2 * i + 1;
    if (left >= timers_.size()) break;
    std::size_t child = left;
    if (left + 1 < timers_.size() && earlier(timers_[left + 1], timers_[left])) child = left + 1;
    if (!earlier(timers_[child], moved)) break;
    timers_[i] = timers_[child];
    timers_[i]->heap_index = static_cast<std::uint32_t>(i);
    i = child;
  }
  timers_[i] = moved;
  moved->heap_index = static_cast<std::uint32_t>(i);
}

void Emulator::run_timers() noexcept {
  if (timers_.empty()) return;
  const std::uint64_t now = now_ns();
  while (!timers_.empty() && timers_.front()->deadline <= now) {
    Request* r = timers_.front();
    timer_erase(r);
    fire_timer(r);
  }
}

void Emulator::fire_timer(Request* r) noexcept {
  if (Request* target = std::exchange(r->target, nullptr)) {
    // A linked timeout cancels its request and completes with -ETIME, or with
    // -EALREADY when a worker runs the request (whose call is interrupted).
    target->timeout = nullptr;
    r->where = Where::none;
    const int cancelled = cancel_request(target);
    complete(r, cancelled == -EALREADY ? -EALREADY : -ETIME);
    return;
  }
  const bool multishot = (r->sqe.op_flags & timeout_flags::multishot) != 0;
  if (multishot && (r->count == 0 || --r->count > 0)) {
    if (overflow_.empty() && cq_ready() < cq_entries_) {
      post(r->sqe.user_data, -ETIME, cqe_flags::more);
      r->deadline += r->interval;
      r->where = Where::timer;
      timer_insert(r);
      return;
    }
  }
  complete(r, -ETIME);
}

void Emulator::arm_timerfd() noexcept {
  if (timers_.empty()) return;
  const std::uint64_t next = timers_.front()->deadline;
  // An armed deadline earlier than the next only wakes us early: left as it is.
  if (timer_armed_ != 0 && timer_armed_ <= next) return;
  itimerspec spec{};
  const std::uint64_t at = std::max<std::uint64_t>(next, 1);
  spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000ULL);
  spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000ULL);
  if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) == 0) timer_armed_ = at;
}

void Emulator::run_timeout(Request* r) noexcept {
  const auto* ts = ptr<const KernelTimespec>(r->sqe.addr);
  const std::uint32_t flags = r->sqe.op_flags;
  if (ts == nullptr || r->sqe.len != 1 || (flags & timeout_flags::update_mask) != 0 ||
      ((flags & timeout_flags::boottime) != 0 && (flags & timeout_flags::realtime) != 0)) {
    return complete(r, -EINVAL);
  }
  r->deadline = deadline_of(*ts, flags);
  if ((flags & timeout_flags::multishot) != 0) {
    if ((flags & timeout_flags::abs) != 0) return complete(r, -EINVAL);
    r->count = static_cast<std::uint32_t>(r->sqe.off);
    r->interval = static_cast<std::uint64_t>(
        std::max<std::int64_t>(ts->tv_sec * 1'000'000'000LL + ts->tv_nsec, 1));
  } else if (r->sqe.off != 0) {
    r->seq = posted_ + r->sqe.off;
    try {
      count_timeouts_.push_back(r);
      r->counted = true;
    } catch (const std::bad_alloc&) {
      return complete(r, -ENOMEM);
    }
  }
  r->where = Where::timer;
  timer_insert(r);
}

void Emulator::count_timeouts_check() noexcept {
  for (std::size_t i = 0; i < count_timeouts_.size();) {
    Request* r = count_timeouts_[i];
    if (posted_ >= r->seq) {
      complete(r, 0);  // removes it from count_timeouts_
      i = 0;
    } else {
      ++i;
    }
  }
}

void Emulator::run_timeout_remove(Request* r) noexcept {
  const std::uint32_t flags = r->sqe.op_flags;
  const bool update = (flags & timeout_flags::update_mask) != 0;
  const bool link = (flags & timeout_flags::link_timeout_update) != 0;
  for (Request* t = buckets_[bucket_of(r->sqe.addr)]; t != nullptr; t = t->hash_next) {
    if (t->sqe.user_data != r->sqe.addr || t->where != Where::timer) continue;
    if (link != (t->target != nullptr)) continue;
    if (!update) {
      complete(t, -ECANCELED);
      return complete(r, 0);
    }
    const auto* ts = ptr<const KernelTimespec>(r->sqe.off);
    if (ts == nullptr) return complete(r, -EFAULT);
    timer_erase(t);
    t->deadline = deadline_of(*ts, flags);
    timer_insert(t);
    return complete(r, 0);
  }
  complete(r, -ENOENT);
}

// --- Cancellation -------------------------------------------------------------------------

bool Emulator::matches(const Request& m, const Sqe& cancel) const noexcept {
  if (m.where != Where::waiting && m.where != Where::timer && m.where != Where::worker) {
    return false;
  }
  if (m.target != nullptr) return false;  // a linked timeout goes with its request
  const std::uint32_t flags = cancel.op_flags;
  if ((flags & cancel_flags::any) != 0) return true;
  bool keyed = false;
  if ((flags & cancel_flags::fd) != 0) {
    keyed = true;
    // The kernel matches the request's file: an operation on a path (its fd a dirfd)
    // or on a process has none.
    if (!has_file(static_cast<Op>(m.sqe.opcode))) return false;
    int fd = cancel.fd;
    if ((flags & cancel_flags::fd_fixed) != 0) {
      const auto index = static_cast<std::uint32_t>(cancel.fd);
      fd = index < files_.size() ? files_[index] : -1;
    }
    if (fd < 0 || m.fd != fd) return false;
  }
  if ((flags & cancel_flags::op) != 0) {
    keyed = true;
    if (m.sqe.opcode != cancel.len) return false;
  }
  if (!keyed || (flags & cancel_flags::userdata) != 0) return m.sqe.user_data == cancel.addr;
  return true;
}

int Emulator::cancel_request(Request* m) noexcept {
  switch (m->where) {
    case Where::waiting:
    case Where::timer:
      complete(m, -ECANCELED);
      return 0;
    case Where::worker: {
      // Only the loop writes `where`; which list holds the request says how far the
      // workers got with it, under the mutex.
      bool taken = false;
      {
        std::lock_guard lock(mutex_);
        if (m->in == &work_) {
          work_.erase(m);
          taken = true;
        }
      }
      if (!taken) {
        // A file sent to another ring waits for that ring's loop, not for a call.
        if (static_cast<Op>(m->sqe.opcode) != Op::msg_ring) interrupt(m);
        return -EALREADY;
      }
      complete(m, -ECANCELED);
      return 0;
    }
    default:
      return -ENOENT;
  }
}

// Cancels what `cancel` matches, `self` excepted: the first match, or with `all` every
// one. Allocates nothing. A cancelled request completes at once and may take others
// with it (its linked timeout, its chain), so after each the walk starts again, passing
// over those already tried (stamped with this walk's number). Returns how many were
// found; `last` is the last one's cancel_request() result.
int Emulator::cancel_matching(const Sqe& cancel, const Request* self, bool all,
                              int& last) noexcept {
  const bool by_data =
      (cancel.op_flags & (cancel_flags::any | cancel_flags::fd | cancel_flags::op)) == 0;
  const std::uint32_t walk = ++cancel_walk_;
  int found = 0;
  last = -ENOENT;
  Request* m = by_data ? buckets_[bucket_of(cancel.addr)] : all_;
  while (m != nullptr) {
    if (m == self || m->cancel_walk == walk || !matches(*m, cancel)) {
      m = by_data ? m->hash_next : m->all_next;
      continue;
    }
    m->cancel_walk = walk;
    last = cancel_request(m);
    ++found;
    if (!all) break;
    m = by_data ? buckets_[bucket_of(cancel.addr)] : all_;
  }
  return found;
}

void Emulator::run_cancel(Request* r) noexcept {
  const bool all = (r->sqe.op_flags & (cancel_flags::all | cancel_flags::any)) != 0;
  int last = -ENOENT;
  const int found = cancel_matching(r->sqe, r, all, last);
  if (all) return complete(r, found > 0 ? found : -ENOENT);
  complete(r, last);
}

void Emulator::run_poll_remove(Request* r) noexcept {
  const std::uint32_t update = r->sqe.len;
  for (Request* p = buckets_[bucket_of(r->sqe.addr)]; p != nullptr; p = p->hash_next) {
    if (p->sqe.user_data != r->sqe.addr || static_cast<Op>(p->sqe.opcode) != Op::poll_add ||
        p->where != Where::waiting) {
      continue;
    }
    if ((update & (poll_flags::update_events | poll_flags::update_user_data)) == 0) {
      complete(p, -ECANCELED);
      return complete(r, 0);
    }
    if ((update & poll_flags::update_events) != 0) {
      p->sqe.op_flags = (p->sqe.op_flags & ~0xffffU) | (r->sqe.op_flags & 0xffff);
    }
    if ((update & poll_flags::update_user_data) != 0) {
      hash_erase(p);
      p->sqe.user_data = r->sqe.off;
      hash_insert(p);
    }
    if ((update & poll_flags::add_multi) != 0) p->sqe.len |= poll_flags::add_multi;
    return complete(r, 0);
  }
  complete(r, -ENOENT);
}

// --- MSG_RING -------------------------------------------------------------------------------

void Emulator::run_msg_ring(Request* r) noexcept {
  const int target_fd = resolve_fd(r);
  if (target_fd < 0) return complete(r, -EBADF);
  if (r->sqe.addr == msg_ring::send_fd) return run_msg_ring_fd(r, target_fd);
  if (r->sqe.addr != msg_ring::data) return complete(r, -EINVAL);
  const std::uint32_t flags = r->sqe.op_flags;
  const Cqe cqe{r->sqe.off, static_cast<std::int32_t>(r->sqe.len),
                (flags & msg_ring::flags_pass) != 0 ? r->sqe.file_index : 0};
  if (target_fd == epoll_fd_) {
    if ((flags & msg_ring::cqe_skip) == 0) post(cqe.user_data, cqe.res, cqe.flags);
    return complete(r, 0);
  }
  bool found = false;
  {
    std::lock_guard registry_lock(registry_mutex);
    for (const auto& [fd, ring] : registry()) {
      if (fd != target_fd) continue;
      found = true;
      if ((flags & msg_ring::cqe_skip) != 0) break;
      std::lock_guard lock(ring->mutex_);
      try {
        ring->inbox_.push_back(cqe);
      } catch (const std::bad_alloc&) {
        return complete(r, -ENOMEM);
      }
      ring->wake();
      break;
    }
  }
  complete(r, found ? 0 : -EBADFD);
}

// Sends our registered file sqe.addr3 to slot sqe.file_index of another emulated ring.
// The target installs it when its loop next runs (its table is its loop's alone), then
// this request completes with what the install gave, as the kernel's does when the
// target ring belongs to another task.
void Emulator::run_msg_ring_fd(Request* r, int target_fd) noexcept {
  const std::uint32_t flags = r->sqe.op_flags;
  if (r->sqe.len != 0 || (flags & ~(msg_ring::cqe_skip | msg_ring::flags_pass)) != 0) {
    return complete(r, -EINVAL);
  }
  if (target_fd == epoll_fd_) return complete(r, -EINVAL);  // to itself
  const auto index = static_cast<std::uint64_t>(r->sqe.addr3);
  if (index >= files_.size() || files_[index] < 0) return complete(r, -EBADF);
  const int copy = ::fcntl(files_[index], F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return complete(r, -errno);
  std::lock_guard registry_lock(registry_mutex);
  for (const auto& [fd, ring] : registry()) {
    if (fd != target_fd) continue;
    std::lock_guard lock(ring->mutex_);
    try {
      ring->passed_.push_back(PassedFile{copy, r->sqe.file_index, (flags & msg_ring::cqe_skip) != 0,
                                         r->sqe.off, id_, r});
    } catch (const std::bad_alloc&) {
      ::close(copy);
      return complete(r, -ENOMEM);
    }
    // Like a worker's request: only the reply (through done_) completes it.
    r->where = Where::worker;
    ring->wake();
    return;
  }
  ::close(copy);
  complete(r, -EBADFD);
}

void Emulator::wake() noexcept {
  const bool write = !std::exchange(wake_written_, true);
  set_flag(sq_flags::taskrun);
  if (write) {
    const std::uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof(one));
  }
}

void Emulator::reply(std::uint64_t sender, Request* request, std::int32_t res) noexcept {
  std::lock_guard registry_lock(registry_mutex);
  for (const auto& [fd, ring] : registry()) {
    if (ring->id_ != sender) continue;
    std::lock_guard lock(ring->mutex_);
    request->res = res;
    ring->done_.push_back(request);
    ring->wake();
    return;
  }
}

// --- Workers ------------------------------------------------------------------------------

void Emulator::to_worker(Request* r) noexcept {
  bool spawn = false;
  {
    std::lock_guard lock(mutex_);
    r->where = Where::worker;
    work_.push_back(r);
    spawn = idle_workers_ == 0 && workers_.size() < max_workers_;
  }
  if (spawn) {
    // Workers take no signals but their interruption: the rest belong to the
    // program's threads.
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    if (interrupt_installed()) sigdelset(&all, interrupt_signal());
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      std::lock_guard lock(mutex_);
      auto worker = std::make_unique<Worker>();
      Worker* self = worker.get();
      workers_.push_back(std::move(worker));
      try {
        self->thread = std::thread([this, self] { worker_main(self); });
        self->handle = self->thread.native_handle();
        ++live_workers_;
      } catch (...) {
        workers_.pop_back();
        throw;
      }
    } catch (...) {
      // No thread: the existing workers (if any) take the request.
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    bool none = false;
    {
      std::lock_guard lock(mutex_);
      none = workers_.empty() && r->in == &work_;
      if (none) work_.erase(r);
    }
    if (none) return complete(r, -EAGAIN);
  }
  work_ready_.notify_one();
}

void Emulator::worker_main(Worker* self) noexcept {
  std::unique_lock lock(mutex_);
  for (;;) {
    while (!stopping_ && work_.empty()) {
      ++idle_workers_;
      work_ready_.wait(lock);
      --idle_workers_;
    }
    if (stopping_) break;
    Request* r = work_.head;
    work_.erase(r);
    self->current = r;
    std::int32_t res = 0;
    for (;;) {
      lock.unlock();
      res = run_blocking(r);
      lock.lock();
      // EINTR without an interruption for r: a signal meant for the call before, which
      // came late. The call did nothing; it runs again.
      if (res != -EINTR) break;
      if (r->interrupted || stopping_) {
        res = -ECANCELED;  // interrupted before it did anything: cancelled
        break;
      }
    }
    self->current = nullptr;
    r->res = res;
    done_.push_back(r);
    wake();
  }
  --live_workers_;
  worker_exited_.notify_all();
}

void Emulator::interrupt(Request* r) noexcept {
  {
    std::lock_guard lock(mutex_);
    signal_worker(r);
  }
  try {
    interrupting_.push_back(r);
  } catch (const std::bad_alloc&) {
    // Signalled once: enough unless the signal came before the call began.
  }
}

void Emulator::signal_worker(Request* r) noexcept {
  r->interrupted = true;
  if (!interrupt_installed()) return;
  for (const auto& worker : workers_) {
    if (worker->current == r) {
      (void)::pthread_kill(worker->handle, interrupt_signal());
      return;
    }
  }
}

// The blocking call of a request, on a worker: nothing here touches the loop's state.
std::int32_t Emulator::run_blocking(Request* r) noexcept {
  const Sqe& s = r->sqe;
  const int fd = r->fd;
  auto result = [](long rc) -> std::int32_t {
    return rc < 0 ? -errno : static_cast<std::int32_t>(rc);
  };
  const auto at = [](std::uint64_t off) {
    return off == ~std::uint64_t{0} ? off_t{-1} : static_cast<off_t>(off);
  };
  switch (static_cast<Op>(s.opcode)) {
    case Op::read:
    case Op::read_fixed:
    case Op::write:
    case Op::write_fixed: {
      const bool reading =
          static_cast<Op>(s.opcode) == Op::read || static_cast<Op>(s.opcode) == Op::read_fixed;
      iovec iov{ptr<std::byte>(s.addr) + r->done, s.len - r->done};
      const off_t off = at(s.off) < 0 ? -1 : at(s.off) + static_cast<off_t>(r->done);
      const ssize_t n = reading ? ::preadv2(fd, &iov, 1, off, 0) : ::pwritev2(fd, &iov, 1, off, 0);
      if (n < 0) return r->done > 0 ? static_cast<std::int32_t>(r->done) : -errno;
      return static_cast<std::int32_t>(r->done + static_cast<std::uint32_t>(n));
    }
    case Op::readv:
      return result(::preadv2(fd, ptr<const iovec>(s.addr), static_cast<int>(s.len), at(s.off),
                              static_cast<int>(s.op_flags)));
    case Op::writev:
      return result(::pwritev2(fd, ptr<const iovec>(s.addr), static_cast<int>(s.len), at(s.off),
                               static_cast<int>(s.op_flags)));
    case Op::fsync:
      return result((s.op_flags & fsync_datasync) != 0 ? ::fdatasync(fd) : ::fsync(fd));
    case Op::sync_file_range:
      return result(::sync_file_range(fd, static_cast<off64_t>(s.off), s.len, s.op_flags));
    case Op::fallocate:
      return result(::fallocate(fd, static_cast<int>(s.len), static_cast<off_t>(s.off),
                                static_cast<off_t>(s.addr)));
    case Op::fadvise: {
      const int rc =
          ::posix_fadvise(fd, static_cast<off_t>(s.off), s.len, static_cast<int>(s.op_flags));
      return -rc;
    }
    case Op::madvise:
      return result(::madvise(ptr<void>(s.addr), s.len, static_cast<int>(s.op_flags)));
    case Op::ftruncate:
      return result(::ftruncate(fd, static_cast<off_t>(s.off)));
    case Op::openat:
      return result(::openat(fd, ptr<const char>(s.addr), static_cast<int>(s.op_flags),
                             static_cast<mode_t>(s.len)));
    case Op::openat2:
      return result(::syscall(SYS_openat2, fd, ptr<const char>(s.addr), ptr<void>(s.off),
                              static_cast<std::size_t>(s.len)));
    case Op::statx:
      return result(::statx(fd, ptr<const char>(s.addr), static_cast<int>(s.op_flags), s.len,
                            ptr<struct statx>(s.off)));
    case Op::renameat:
      return result(::renameat2(fd, ptr<const char>(s.addr), static_cast<int>(s.len),
                                ptr<const char>(s.off), s.op_flags));
    case Op::unlinkat:
      return result(::unlinkat(fd, ptr<const char>(s.addr), static_cast<int>(s.op_flags)));
    case Op::mkdirat:
      return result(::mkdirat(fd, ptr<const char>(s.addr), static_cast<mode_t>(s.len)));
    case Op::symlinkat:
      return result(::symlinkat(ptr<const char>(s.addr), fd, ptr<const char>(s.off)));
    case Op::linkat:
      return result(::linkat(fd, ptr<const char>(s.addr), static_cast<int>(s.len),
                             ptr<const char>(s.off), static_cast<int>(s.op_flags)));
    case Op::splice: {
      auto off_in = static_cast<loff_t>(s.addr);
      auto off_out = static_cast<loff_t>(s.off);
      const bool in_at = s.addr != ~std::uint64_t{0};
      const bool out_at = s.off != ~std::uint64_t{0};
      return result(::splice(r->aux_fd, in_at ? &off_in : nullptr, fd, out_at ? &off_out : nullptr,
                             s.len, s.op_flags & ~splice_f_fd_in_fixed));
    }
    case Op::tee:
      return result(::tee(r->aux_fd, fd, s.len, s.op_flags & ~splice_f_fd_in_fixed));
    case Op::fgetxattr:
      return result(::fgetxattr(fd, ptr<const char>(s.addr), ptr<void>(s.off), s.len));
    case Op::fsetxattr:
      return result(::fsetxattr(fd, ptr<const char>(s.addr), ptr<const void>(s.off), s.len,
                                static_cast<int>(s.op_flags)));
    case Op::getxattr:
      return result(
          ::getxattr(ptr<const char>(s.addr3), ptr<const char>(s.addr), ptr<void>(s.off), s.len));
    case Op::setxattr:
      return result(::setxattr(ptr<const char>(s.addr3), ptr<const char>(s.addr),
                               ptr<const void>(s.off), s.len, static_cast<int>(s.op_flags)));
    case Op::waitid:
      return result(::waitid(static_cast<idtype_t>(s.len), static_cast<id_t>(s.fd),
                             ptr<siginfo_t>(s.off), static_cast<int>(s.file_index)));
    default:
      return -EOPNOTSUPP;
  }
}

void Emulator::drain_workers() noexcept {
  List done;
  {
    std::lock_guard lock(mutex_);
    done = std::exchange(done_, List{});
    for (Request* r = done.head; r != nullptr; r = r->next) r->in = &done;
  }
  while (Request* r = done.head) {
    done.erase(r);
    if (r->interrupted) {
      interrupting_.erase(std::remove(interrupting_.begin(), interrupting_.end(), r),
                          interrupting_.end());
    }
    r->where = Where::none;
    std::int32_t res = r->res;
    const auto op = static_cast<Op>(r->sqe.opcode);
    if ((op == Op::openat || op == Op::openat2) && res >= 0 && r->sqe.file_index != 0) {
      res = install_direct(r->sqe.file_index, res);
    }
    complete(r, res);
  }
}

void Emulator::drain_inbox() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (inbox_.empty() && passed_.empty()) return;
    inbox_taken_.swap(inbox_);
    passed_taken_.swap(passed_);
  }
  for (const Cqe& cqe : inbox_taken_) post(cqe.user_data, cqe.res, cqe.flags);
  inbox_taken_.clear();
  for (const PassedFile& passed : passed_taken_) {
    const int res = install_direct(passed.file_index, passed.fd);
    if (!passed.skip_cqe && res >= 0) post(passed.user_data, res, 0);
    reply(passed.sender, passed.request, res);
  }
  passed_taken_.clear();
}

// --- enter ------------------------------------------------------------------------------------

void Emulator::process_pending() noexcept {
  flush_overflow();
  if ((std::atomic_ref<std::uint32_t>(words_->sq_flags).load(std::memory_order_acquire) &
       sq_flags::taskrun) != 0) {
    clear_flag(sq_flags::taskrun);
    drain_workers();
    drain_inbox();
  }
  // The fds whose readers stopped with data left: their edge will not come again.
  int fd = std::exchange(retry_head_, -1);
  retry_tail_ = -1;
  while (fd >= 0) {
    FdWaiters& w = fds_[static_cast<std::size_t>(fd)];
    const int next = w.retry_next;
    w.retry_queued = false;
    w.retry_next = -1;
    // The edge that queued them may have carried the peer's FIN: they read to the end.
    on_fd_event(fd, EPOLLIN | EPOLLRDHUP);
    fd = next;
  }
  run_timers();
  if (!count_timeouts_.empty()) count_timeouts_check();
}

int Emulator::poll_events(std::int64_t timeout_ns, const GeteventsArg* arg) noexcept {
  enters_since_poll_ = 0;
  epoll_event events[128];
  int n = 0;
  const sigset_t* mask = arg != nullptr ? ptr<const sigset_t>(arg->sigmask) : nullptr;
  if (timeout_ns == 0 || timeout_ns < 0) {
    n = ::epoll_pwait(epoll_fd_, events, 128, timeout_ns == 0 ? 0 : -1, mask);
  } else {
    timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                static_cast<long>(timeout_ns % 1'000'000'000)};
    n = static_cast<int>(::syscall(SYS_epoll_pwait2, epoll_fd_, events, 128, &ts, mask,
                                   mask != nullptr ? _NSIG / 8 : 0));
    if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
      // Before 5.11, or a filter that denies it: milliseconds, rounded up.
      const std::int64_t ms = std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, INT_MAX);
      n = ::epoll_pwait(epoll_fd_, events, 128, static_cast<int>(ms), mask);
    }
  }
  if (n < 0) return errno == EINTR ? -EINTR : -errno;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t data = events[i].data.u64;
    if (data == event_tag) {
      std::uint64_t count = 0;
      (void)!::read(event_fd_, &count, sizeof(count));
      {
        std::lock_guard lock(mutex_);
        wake_written_ = false;
      }
      drain_workers();
      drain_inbox();
    } else if (data == timer_tag) {
      std::uint64_t count = 0;
      (void)!::read(timer_fd_, &count, sizeof(count));
      timer_armed_ = 0;
      run_timers();
    } else {
      on_fd_event(static_cast<int>(data), events[i].events);
    }
  }
  return n;
}

int Emulator::enter(std::uint32_t to_submit, std::uint32_t min_complete, std::uint32_t flags,
                    const GeteventsArg* arg) noexcept {
  if ((flags & ~(enter_flags::getevents | enter_flags::ext_arg | enter_flags::sq_wakeup |
                 enter_flags::sq_wait | enter_flags::no_iowait | enter_flags::abs_timer)) != 0) {
    return -EINVAL;
  }
  // Every SQE asked for is taken: one without memory for its request completes with
  // -ENOMEM (see submit()).
  const std::uint32_t submitted = submit(to_submit);
  int error = 0;
  if ((flags & enter_flags::getevents) != 0) {
    process_pending();
    if (cq_ready() >= min_complete) {
      // Satisfied without epoll: look anyway now and then, and when asked only to flush.
      if (min_complete == 0 || ++enters_since_poll_ >= poll_every) {
        (void)poll_events(0, nullptr);
        process_pending();
      }
    }
    std::uint64_t deadline = 0;
    if (arg != nullptr && arg->ts != 0) {
      const auto* ts = ptr<const KernelTimespec>(arg->ts);
      const std::int64_t ns = ts->tv_sec * 1'000'000'000LL + ts->tv_nsec;
      deadline = (flags & enter_flags::abs_timer) != 0
                     ? static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0))
                     : now_ns() + static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
    }
    while (cq_ready() < min_complete && error == 0) {
      std::int64_t wait = -1;
      if (retry_head_ >= 0) {
        wait = 0;
      } else if (deadline != 0) {
        const std::uint64_t now = now_ns();
        if (now >= deadline) {
          error = -ETIME;
          break;
        }
        wait = static_cast<std::int64_t>(deadline - now);
      }
      if (!interrupting_.empty()) {
        // Interrupted calls not back yet: signal them again every millisecond.
        {
          std::lock_guard lock(mutex_);
          for (Request* r : interrupting_) signal_worker(r);
        }
        if (wait < 0 || wait > 1'000'000) wait = 1'000'000;
      }
      arm_timerfd();
      const int rc = poll_events(wait, arg);
      if (rc < 0) error = rc;
      process_pending();
    }
  }
  arm_timerfd();
  signal_eventfd();
  if (lost_cqes_ && error == 0) {
    lost_cqes_ = false;
    error = -EBADR;
  }
  if (submitted > 0) return static_cast<int>(submitted);
  return error < 0 ? error : 0;
}

// --- register ---------------------------------------------------------------------------------

int Emulator::register_op(RegisterOp op, const void* arg, std::uint32_t nr_args) noexcept {
  switch (op) {
    case RegisterOp::register_probe: {
      auto* header = static_cast<ProbeHeader*>(const_cast<void*>(arg));
      auto* ops = reinterpret_cast<ProbeOp*>(header + 1);
      std::memset(header, 0, sizeof(ProbeHeader) + nr_args * sizeof(ProbeOp));
      const auto last = static_cast<std::uint8_t>(static_cast<std::uint8_t>(Op::last) - 1);
      header->last_op = last;
      header->ops_len = static_cast<std::uint8_t>(std::min<std::uint32_t>(nr_args, last + 1U));
      for (std::uint32_t i = 0; i < header->ops_len; ++i) {
        ops[i].op = static_cast<std::uint8_t>(i);
        if (is_implemented(static_cast<std::uint8_t>(i))) ops[i].flags = probe_op_supported;
      }
      return 0;
    }
    case RegisterOp::register_files:
    case RegisterOp::register_files2: {
      if (!files_.empty()) return -EBUSY;
      std::uint32_t count = nr_args;
      const int* fds = static_cast<const int*>(arg);
      if (op == RegisterOp::register_files2) {
        const auto* reg = static_cast<const RsrcRegister*>(arg);
        if (nr_args != sizeof(RsrcRegister)) return -EINVAL;
        count = reg->nr;
        fds = (reg->flags & rsrc_register_sparse) != 0 ? nullptr : ptr<const int>(reg->data);
      }
      if (count == 0 || count > (1U << 20)) return -EINVAL;
      try {
        files_.assign(count, -1);
      } catch (const std::bad_alloc&) {
        return -ENOMEM;
      }
      for (std::uint32_t i = 0; fds != nullptr && i < count; ++i) {
        if (fds[i] < 0) continue;
        files_[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (files_[i] < 0) {
          const int e = errno;
          for (int fd : files_) {
            if (fd >= 0) ::close(fd);
          }
          files_.clear();
          return -e;
        }
      }
      alloc_begin_ = alloc_hint_ = 0;
      alloc_end_ = count;
      return 0;
    }
    case RegisterOp::register_files_update:
    case RegisterOp::register_files_update2: {
      std::uint32_t offset = 0;
      const int* fds = nullptr;
      std::uint32_t count = nr_args;
      if (op == RegisterOp::register_files_update) {
        const auto* update = static_cast<const FilesUpdate*>(arg);
        offset = update->offset;
        fds = ptr<const int>(update->fds);
      } else {
        const auto* update = static_cast<const RsrcUpdate2*>(arg);
        offset = update->offset;
        fds = ptr<const int>(update->data);
        count = update->nr;
      }
      if (files_.empty()) return -ENXIO;
      if (std::uint64_t{offset} + count > files_.size()) return -EINVAL;
      int updated = 0;
      for (std::uint32_t i = 0; i < count; ++i) {
        if (fds[i] == register_files_skip) {
          ++updated;
          continue;
        }
        int copy = -1;
        if (fds[i] >= 0) {
          copy = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
          if (copy < 0) return updated > 0 ? updated : -errno;
        }
        set_file(offset + i, copy);
        ++updated;
      }
      return updated;
    }
    case RegisterOp::unregister_files:
      if (files_.empty()) return -ENXIO;
      for (int fd : files_) {
        if (fd >= 0) (void)close_fd(fd);
      }
      files_.clear();
      return 0;
    case RegisterOp::register_file_alloc_range: {
      const auto* range = static_cast<const FileIndexRange*>(arg);
      if (std::uint64_t{range->off} + range->len > files_.size()) return -EINVAL;
      alloc_begin_ = alloc_hint_ = range->off;
      alloc_end_ = range->off + range->len;
      return 0;
    }
    case RegisterOp::register_buffers:
    case RegisterOp::register_buffers2: {
      if (!buffers_.empty()) return -EBUSY;
      const iovec* iovs = static_cast<const iovec*>(arg);
      std::uint32_t count = nr_args;
      if (op == RegisterOp::register_buffers2) {
        const auto* reg = static_cast<const RsrcRegister*>(arg);
        count = reg->nr;
        iovs = (reg->flags & rsrc_register_sparse) != 0 ? nullptr : ptr<const iovec>(reg->data);
      }
      if (count == 0 || count > 16384) return -EINVAL;
      try {
        buffers_.assign(count, iovec{nullptr, 0});
      } catch (const std::bad_alloc&) {
        return -ENOMEM;
      }
      for (std::uint32_t i = 0; iovs != nullptr && i < count; ++i) {
        if (iovs[i].iov_base == nullptr && iovs[i].iov_len != 0) {
          buffers_.clear();
          return -EFAULT;
        }
        buffers_[i] = iovs[i];
      }
      return 0;
    }
    case RegisterOp::unregister_buffers:
      if (buffers_.empty()) return -ENXIO;
      buffers_.clear();
      return 0;
    case RegisterOp::register_eventfd:
    case RegisterOp::register_eventfd_async:
      if (registered_eventfd_ >= 0) return -EBUSY;
      registered_eventfd_ = *static_cast<const int*>(arg);
      eventfd_async_only_ = op == RegisterOp::register_eventfd_async;
      signalled_at_ = posted_;
      return 0;
    case RegisterOp::unregister_eventfd:
      if (registered_eventfd_ < 0) return -ENXIO;
      registered_eventfd_ = -1;
      return 0;
    case RegisterOp::register_pbuf_ring: {
      const auto* reg = static_cast<const BufReg*>(arg);
      if ((reg->flags & pbuf_flags::mmap) != 0 || reg->ring_addr == 0) return -EINVAL;
      if (reg->ring_entries == 0 || reg->ring_entries > 32768 ||
          (reg->ring_entries & (reg->ring_entries - 1)) != 0) {
        return -EINVAL;
      }
      if (reg->bgid >= groups_.size()) {
        try {
          groups_.resize(std::size_t{reg->bgid} + 1);
        } catch (const std::bad_alloc&) {
          return -ENOMEM;
        }
      }
      BufferGroupState& g = groups_[reg->bgid];
      if (g.registered) return -EEXIST;
      g.ring = ptr<Buf>(reg->ring_addr);
      g.mask = reg->ring_entries - 1;
      g.head = 0;
      g.incremental = (reg->flags & pbuf_flags::inc) != 0;
      g.registered = true;
      return 0;
    }
    case RegisterOp::unregister_pbuf_ring: {
      const auto* reg = static_cast<const BufReg*>(arg);
      if (reg->bgid >= groups_.size() || !groups_[reg->bgid].registered) return -EINVAL;
      groups_[reg->bgid] = BufferGroupState{};
      return 0;
    }
    case RegisterOp::register_pbuf_status: {
      auto* status = static_cast<BufStatus*>(const_cast<void*>(arg));
      if (status->buf_group >= groups_.size() || !groups_[status->buf_group].registered) {
        return -ENOENT;
      }
      status->head = groups_[status->buf_group].head;
      return 0;
    }
    case RegisterOp::register_iowq_max_workers: {
      auto* limits = static_cast<std::uint32_t*>(const_cast<void*>(arg));
      if (nr_args != 2) return -EINVAL;
      const std::uint32_t old = max_workers_;
      const std::uint32_t wanted = limits[0] != 0 ? limits[0] : limits[1];
      if (wanted != 0) max_workers_ = wanted;
      limits[0] = old;
      limits[1] = old;
      return 0;
    }
    case RegisterOp::register_iowq_aff:
    case RegisterOp::unregister_iowq_aff:
      return 0;  // the workers run where the scheduler puts them
    case RegisterOp::register_sync_cancel: {
      const auto* reg = static_cast<const SyncCancelReg*>(arg);
      Sqe cancel{};
      cancel.opcode = static_cast<std::uint8_t>(Op::async_cancel);
      cancel.addr = reg->addr;
      cancel.fd = reg->fd;
      cancel.op_flags = reg->flags;
      cancel.len = reg->opcode;
      const bool all = (reg->flags & (cancel_flags::all | cancel_flags::any)) != 0;
      // Cancel what can be, then wait for what a worker runs until none is left.
      int last = -ENOENT;
      int found = cancel_matching(cancel, nullptr, all, last);
      if (found > 0 && last == -EALREADY) {
        for (;;) {
          bool running = false;
          for (Request* m = all_; m != nullptr; m = m->all_next) {
            if (matches(*m, cancel)) running = true;
          }
          if (!running) break;
          {
            std::lock_guard lock(mutex_);
            for (Request* r : interrupting_) signal_worker(r);
          }
          (void)poll_events(1'000'000, nullptr);
          process_pending();
        }
      }
      return found > 0 ? 0 : -ENOENT;
    }
    default:
      // Ring fds, personalities, restrictions, NAPI, ...: not part of the emulation.
      return -EINVAL;
  }
}

}  // namespace coring::ring::detail
