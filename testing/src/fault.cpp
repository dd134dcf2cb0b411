// FaultInjector: see fault.hpp for what each fault is and why it stays within what the
// kernel itself could do. Every decision goes through roll() (whether) and below() (which),
// which read the seeded PRNG streams or, in script mode, the script.
#include "coring/testing/fault.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "coring/ring/prep.hpp"

namespace coring::testing {
namespace {

// The user_data of the injector's own requests, from the range the loop leaves to its
// hooks: cancels of the multishots it ends, and the NOP behind late CQEs.
constexpr std::uint64_t cancel_data = detail::user_data::hooks_data_first;
constexpr std::uint64_t late_data = detail::user_data::hooks_data_first + 8;
static_assert(late_data <= detail::user_data::hooks_data_last);

constexpr std::uint32_t million = 1'000'000;

// An operation's own SQE (not a linked timeout, a cancel, a MSG_RING wake or the loop's
// wake read `own`).
bool is_operation(std::uint64_t user_data, std::uint64_t own) noexcept {
  return detail::user_data::decode(user_data) == detail::user_data::Kind::operation &&
         user_data != own;
}

// What the injector needs to know of each opcode.
enum Trait : std::uint8_t {
  counts_bytes = 1U << 0,      // len is a byte count the kernel may fall short of
  can_fail = 1U << 1,          // can fail on its own in ways a program must handle
  may_be_multishot = 1U << 2,  // (whether it is shows in its CQEs' F_MORE)
  finishes = 1U << 3,          // finishes without anything else happening first (settling)
  file_io = 1U << 4,           // finishes on its own when its fd is a file or a block device
};

constexpr std::array<std::uint8_t, 256> op_traits = [] {
  std::array<std::uint8_t, 256> t{};
  auto set = [&t](std::initializer_list<ring::Op> ops, std::uint8_t trait) {
    for (ring::Op op : ops) t[static_cast<std::uint8_t>(op)] |= trait;
  };
  using enum ring::Op;
  set({read, write, read_fixed, write_fixed, recv, send, send_zc}, counts_bytes);
  set({read, write, readv, writev, read_fixed, write_fixed, recv, send, recvmsg, sendmsg, send_zc,
       sendmsg_zc, accept, connect, read_multishot, poll_add},
      can_fail);
  set({accept, recv, recvmsg, read_multishot, poll_add}, may_be_multishot);
  set({nop,         fsync,           sync_file_range, fallocate,    openat,
       openat2,     close,           files_update,    statx,        fadvise,
       madvise,     shutdown,        renameat,        unlinkat,     mkdirat,
       symlinkat,   linkat,          fsetxattr,       setxattr,     fgetxattr,
       getxattr,    socket,          ftruncate,       async_cancel, timeout_remove,
       poll_remove, provide_buffers, remove_buffers,  epoll_ctl,    fixed_fd_install,
       futex_wake},
      finishes);
  set({read, write, readv, writev, read_fixed, write_fixed, readv_fixed, writev_fixed}, file_io);
  return t;
}();

bool has(ring::Op op, Trait trait) noexcept {
  return (op_traits[static_cast<std::uint8_t>(op)] & trait) != 0;
}

// splitmix64's finaliser.
std::uint64_t scramble(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

FaultInjector::FaultInjector(FaultPlan plan) : plan_(std::move(plan)) {
  for (std::uint32_t ppm :
       {plan_.short_count_ppm, plan_.error_ppm, plan_.multishot_end_ppm, plan_.enter_busy_ppm,
        plan_.reorder_ppm, plan_.overflow_flag_ppm, plan_.delay_ppm}) {
    if (ppm > million) {
      throw std::invalid_argument("FaultPlan: a probability of " + std::to_string(ppm) +
                                  " ppm is above 1000000");
    }
  }
  if (plan_.error_ppm > 0 && plan_.errors.empty()) {
    throw std::invalid_argument("FaultPlan: error_ppm is set but the error list is empty");
  }
  for (int error : plan_.errors) {
    if (error <= 0 || error >= 4096) {
      throw std::invalid_argument("FaultPlan: " + std::to_string(error) +
                                  " is not an errno value (give them positive: EINTR, not -EINTR)");
    }
  }
}

// The n-th draw of a stream: splitmix64's finaliser over the seed, the stream and n, so
// that each stream's draws depend on nothing but how many it has made. In script mode,
// the script's next byte.
std::uint64_t FaultInjector::draw(Stream stream) noexcept {
  if (scripted()) return script_bytes(1);
  return scramble(plan_.seed + 0x9e3779b97f4a7c15ULL * (++drawn_[stream]) +
                  (static_cast<std::uint64_t>(stream) << 56));
}

void FaultInjector::mix(std::uint64_t value) noexcept {
  digest_ = scramble(digest_ ^ (value + 0x9e3779b97f4a7c15ULL));
}

bool FaultInjector::roll(Stream stream, std::uint32_t ppm) noexcept {
  if (ppm == 0 || quiesced_) return false;
  bool yes = false;
  if (scripted()) {
    // An exhausted script says no, rather than letting a zero byte say yes.
    yes = script_at_ < plan_.script.size() &&
          std::uint64_t{script_bytes(1)} * million < std::uint64_t{ppm} * 256;
  } else {
    yes = below(stream, million) < ppm;
  }
  mix(yes ? 1 : 2);
  return yes;
}

std::uint32_t FaultInjector::below(Stream stream, std::uint32_t bound) noexcept {
  std::uint32_t value = 0;
  if (scripted()) {
    const std::size_t width = bound <= 0x100 ? 1 : bound <= 0x10000 ? 2 : 4;
    value = script_bytes(width) % bound;
  } else {
    value = static_cast<std::uint32_t>(draw(stream) % bound);
  }
  mix(value);
  return value;
}

std::uint32_t FaultInjector::script_bytes(std::size_t width) noexcept {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < width && script_at_ < plan_.script.size(); ++i) {
    value |= std::uint32_t{plan_.script[script_at_++]} << (8 * i);
  }
  return value;
}

void FaultInjector::before_submit(ring::Ring& ring, std::uint64_t own) noexcept {
  ring.for_each_unpublished_sqe([&](ring::Sqe& sqe) noexcept {
    if (is_operation(sqe.user_data, own)) rewrite(sqe);
    if (!plan_.deterministic) return;
    ++unsubmitted_;
    constexpr std::uint8_t link_flags = ring::sqe_flags::io_link | ring::sqe_flags::io_hardlink;
    const bool linked_to = previous_links_;
    previous_links_ = (sqe.flags & link_flags) != 0;
    // Not in a chain (its place there is not its place in the submission), not a
    // registered file's, not with SQPOLL (whose thread takes SQEs whenever it likes).
    if (sqe.opcode == static_cast<std::uint8_t>(ring::Op::shutdown) && !linked_to &&
        (sqe.flags & (link_flags | ring::sqe_flags::fixed_file)) == 0 &&
        is_operation(sqe.user_data, own) && (ring.flags() & ring::setup::sqpoll) == 0 &&
        !quiesced_) {
      shutdowns_.push_back({unsubmitted_ - 1, sqe.user_data, sqe.fd, static_cast<int>(sqe.len)});
      const std::uint64_t user_data = sqe.user_data;
      const std::uint8_t flags = sqe.flags;
      ring::prep_nop(sqe);
      sqe.flags = flags;
      sqe.user_data = user_data;
    }
    // Every SQE, the injector's own and linked timeouts too: the order of a batch.
    submitted_[sqe.user_data] = ++submissions_;
    const bool alone = !chain_waits_ && finishes_alone(sqe);
    if (alone && sqe.user_data != own) settling_.insert(sqe.user_data);
    chain_waits_ = previous_links_ && !alone;
  });
}

void FaultInjector::rewrite(ring::Sqe& sqe) noexcept {
  const auto op = static_cast<ring::Op>(sqe.opcode);
  const bool selects_buffer = (sqe.flags & ring::sqe_flags::buffer_select) != 0;
  if (has(op, can_fail) && roll(sqes, plan_.error_ppm)) {
    const int error = plan_.errors[below(sqes, static_cast<std::uint32_t>(plan_.errors.size()))];
    // The kernel fails a request that selects a provided buffer with -ENOBUFS only when
    // the group's ring is empty, which the injector cannot know: that one stays the
    // kernel's to say (a program may rightly wait for a buffer to come back first).
    if (error != ENOBUFS || !selects_buffer) {
      replace_with_error(sqe, error);
      return;
    }
  }
  if (has(op, counts_bytes) && !selects_buffer && sqe.len > 1 &&
      roll(sqes, plan_.short_count_ppm)) {
    sqe.len = 1 + below(sqes, sqe.len - 1);
    ++counts_.short_counts;
  }
  if (has(op, may_be_multishot)) multishots_.insert(sqe.user_data);
}

bool FaultInjector::finishes_alone(const ring::Sqe& sqe) noexcept {
  // Without a CQE on success there is nothing to wait for; a drain waits for everything.
  if ((sqe.flags & (ring::sqe_flags::cqe_skip_success | ring::sqe_flags::io_drain)) != 0) {
    return false;
  }
  const auto op = static_cast<ring::Op>(sqe.opcode);
  if (has(op, finishes)) return true;
  if (!has(op, file_io)) return false;
  // On a file or a block device, yes; on a socket, pipe or terminal it waits for a peer.
  // A registered file's index says nothing about what it is: not waited for.
  if ((sqe.flags & ring::sqe_flags::fixed_file) != 0) return false;
  struct stat st {};
  if (::fstat(sqe.fd, &st) != 0) return false;
  return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
}

void FaultInjector::submit_first(ring::Ring& ring) noexcept {
  if (!plan_.deterministic) return;
  std::uint32_t submitted = 0;
  bool in_order = true;
  for (const Shutdown& shutdown : shutdowns_) {
    if (in_order && shutdown.before > submitted) {
      (void)ring.flush_sq();
      const std::uint32_t count = shutdown.before - submitted;
      auto entered = ring.enter(count, 0, 0);
      // Short of that (the kernel is busy, say), the SQEs before a shutdown may not be in
      // when it is made: the rest are made when their NOPs complete (after_reap), which
      // is after those SQEs went in — where a worker could have made them too.
      in_order = entered && *entered == count;
      if (in_order) submitted += count;
    }
    if (in_order) {
      make_shutdown(shutdown);
    } else {
      late_shutdowns_.push_back(shutdown);
    }
  }
  shutdowns_.clear();
  unsubmitted_ = 0;
  previous_links_ = false;  // a chain ends with its submission
  chain_waits_ = false;
}

void FaultInjector::make_shutdown(const Shutdown& shutdown) noexcept {
  injected_errors_[shutdown.user_data] = ::shutdown(shutdown.fd, shutdown.how) == 0 ? 0 : -errno;
}

void FaultInjector::note_settled(const ring::Cqe& cqe) noexcept {
  if ((cqe.flags & ring::cqe_flags::more) == 0) settling_.erase(cqe.user_data);
}

void FaultInjector::settle(ring::Ring& ring, std::uint64_t own, std::vector<ring::Cqe>& batch) {
  if (!plan_.deterministic) return;
  for (const ring::Cqe& cqe : batch) note_settled(cqe);
  if (settling_.empty()) return;
  ++settle_waits_;
  using clock = std::chrono::steady_clock;
  const clock::time_point deadline = clock::now() + plan_.settle_limit;
  while (!settling_.empty()) {
    const clock::duration left = deadline - clock::now();
    if (left <= clock::duration::zero()) {
      ++settle_timeouts_;
      settling_.clear();  // (their CQEs come in later reaps, as the kernel posts them)
      break;
    }
    before_submit(ring, own);  // what the loop has queued meanwhile: cancels of ours
    submit_first(ring);
    auto entered = ring.submit_and_wait_timeout(1, left);
    if (!entered && (entered.error().category() != ring::enter_category() ||
                     (entered.error().value() != ETIME && entered.error().value() != EINTR &&
                      entered.error().value() != EAGAIN && entered.error().value() != EBUSY))) {
      throw std::system_error(entered.error(), "FaultInjector: io_uring_enter while settling");
    }
    ring.for_each_cqe([&](const ring::Cqe& cqe) {
      batch.push_back(cqe);
      note_settled(cqe);
    });
  }
}

// The request never runs: a NOP takes its place (keeping its links, so a linked timeout
// behind it is cancelled as the kernel cancels one behind a failed request) and its CQE
// gets the error in after_reap().
void FaultInjector::replace_with_error(ring::Sqe& sqe, int error) noexcept {
  injected_errors_[sqe.user_data] = -error;
  const std::uint8_t links = sqe.flags & (ring::sqe_flags::io_link | ring::sqe_flags::io_hardlink);
  const std::uint64_t user_data = sqe.user_data;
  ring::prep_nop(sqe);
  sqe.flags = links;
  sqe.user_data = user_data;
  ++counts_.errors;
}

FaultInjector::~FaultInjector() {
  if (loop() != nullptr && holds_completions()) {
    // The loop would wait for ever for completions only this injector can hand over.
    std::fputs(
        "coring: a FaultInjector destroyed while attached to a loop and holding completions: "
        "destroy the loop first, or quiesce() the injector, turn the loop and detach it\n",
        stderr);
    std::abort();
  }
}

bool FaultInjector::holds_completions() const noexcept {
  return !late_.empty() || late_nop_pending_ || !ending_.empty() || cancels_in_flight_ > 0 ||
         !injected_errors_.empty() || !shutdowns_.empty() || !late_shutdowns_.empty();
}

bool FaultInjector::skip_enter() noexcept {
  if (!roll(enters, plan_.enter_busy_ppm)) return false;
  ++counts_.enter_busy;
  return true;
}

bool FaultInjector::flush_cq() noexcept {
  if (!roll(reaps, plan_.overflow_flag_ppm)) return false;
  ++counts_.overflow_flags;
  return true;
}

bool FaultInjector::reap(ring::Ring& ring, std::uint64_t own, std::uint32_t limit,
                         std::span<const ring::Cqe>& batch) {
  batch_.clear();
  (void)ring.for_each_cqe([&](const ring::Cqe& cqe) { batch_.push_back(cqe); }, limit);
  // A deterministic plan waits here for requests that finish on their own.
  settle(ring, own, batch_);
  if (batch_.empty()) return false;
  after_reap(ring, batch_);
  batch = batch_;
  return true;
}

void FaultInjector::after_reap(ring::Ring& ring, std::vector<ring::Cqe>& batch) {
  if (plan_.deterministic) order_by_submission(batch);
  scratch_.clear();
  for (ring::Cqe cqe : batch) {
    const std::uint64_t user_data = cqe.user_data;
    const bool more = (cqe.flags & ring::cqe_flags::more) != 0;
    if (user_data == cancel_data) {
      --cancels_in_flight_;  // our own cancel's completion
      continue;
    }
    if (user_data == late_data) {
      // The NOP behind the late CQEs: they come now, after what was reaped before it.
      scratch_.insert(scratch_.end(), late_.begin(), late_.end());
      late_.clear();
      late_nop_pending_ = false;
      continue;
    }
    if (!late_shutdowns_.empty()) {
      const auto late = std::find_if(late_shutdowns_.begin(), late_shutdowns_.end(),
                                     [&](const Shutdown& s) { return s.user_data == user_data; });
      if (late != late_shutdowns_.end()) {
        make_shutdown(*late);
        late_shutdowns_.erase(late);
      }
    }
    if (auto error = injected_errors_.find(user_data); error != injected_errors_.end()) {
      cqe.res = error->second;  // the NOP that replaced the request
      injected_errors_.erase(error);
      scratch_.push_back(cqe);
      continue;
    }
    if (auto ending = ending_.find(user_data); ending != ending_.end()) {
      std::vector<ring::Cqe>& held = ending->second;
      if (more) {
        held.push_back(cqe);  // was on its way before the cancel: keep it, in order
        continue;
      }
      if (cqe.res == -ECANCELED) {
        // Our cancel ended it: the last CQE we hold becomes the request's final one.
        held.back().flags &= ~ring::cqe_flags::more;
        scratch_.insert(scratch_.end(), held.begin(), held.end());
      } else {
        // It ended on its own first (an error, end of file): that stays its end.
        scratch_.insert(scratch_.end(), held.begin(), held.end());
        scratch_.push_back(cqe);
      }
      ending_.erase(ending);
      multishots_.erase(user_data);
      continue;
    }
    if (more && multishots_.contains(user_data) && roll(multishot_cqes, plan_.multishot_end_ppm)) {
      if (ring::Sqe* sqe = ring.get_sqe()) {
        ring::prep_cancel(*sqe, user_data, 0);
        sqe->user_data = cancel_data;
        ++cancels_in_flight_;
        ending_[user_data].push_back(cqe);
        ++counts_.multishot_ends;
        continue;
      }
    }
    if (!more) multishots_.erase(user_data);
    if (!more && hold(ring, cqe)) continue;
    scratch_.push_back(cqe);
  }
  batch.swap(scratch_);
  if (batch.size() >= 2 && roll(reaps, plan_.reorder_ppm)) {
    reorder(batch);
    ++counts_.reorders;
  }
  // What the loop sees, named by submission number (an address differs between runs).
  for (const ring::Cqe& cqe : batch) {
    const auto number = submitted_.find(cqe.user_data);
    mix(number != submitted_.end() ? number->second : 0);
    mix(static_cast<std::uint32_t>(cqe.res));
    mix(cqe.flags);
    if ((cqe.flags & ring::cqe_flags::more) == 0 && number != submitted_.end()) {
      submitted_.erase(number);
    }
  }
}

// Holds a final CQE back for a later reap, if the plan says so. A final CQE is the last
// of its request, so no CQE of the same request can overtake it; the NOP makes sure that
// a later reap comes even when nothing else is in flight (the loop's drain waits for it).
bool FaultInjector::hold(ring::Ring& ring, const ring::Cqe& cqe) {
  if (!roll(final_cqes, plan_.delay_ppm)) return false;
  if (!late_nop_pending_) {
    ring::Sqe* sqe = ring.get_sqe();
    if (sqe == nullptr) return false;
    ring::prep_nop(*sqe);
    sqe->user_data = late_data;
    late_nop_pending_ = true;
  }
  late_.push_back(cqe);
  ++delays_;
  return true;
}

// A random order in which the CQEs of each request (one user_data) keep theirs.
void FaultInjector::reorder(std::vector<ring::Cqe>& batch) {
  keys_.resize(batch.size());
  for (auto& key : keys_) key = draw(reaps);
  sort_by(batch, keys_);
}

// The order in which the requests were submitted (a request submitted again, by its
// latest submission; the injector's own CQEs among them by theirs).
void FaultInjector::order_by_submission(std::vector<ring::Cqe>& batch) {
  if (batch.size() < 2) return;
  keys_.resize(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto number = submitted_.find(batch[i].user_data);
    keys_[i] = number != submitted_.end() ? number->second : 0;
  }
  sort_by(batch, keys_);
}

// Each request's keys are sorted and handed back to its CQEs in their original order,
// and the batch is sorted by key. Groups whose CQEs keep their order: each request's own,
// and one for every request with a CQE that carries a provided buffer — with incremental
// consumption the kernel's order of those CQEs is what tells where each piece of a buffer
// starts. (Vectors kept between batches, not maps: this runs on every reap of a
// deterministic plan.)
void FaultInjector::sort_by(std::vector<ring::Cqe>& batch, std::vector<std::uint64_t>& keys) {
  // Keys in order already (most batches, by submission): every group's too, nothing moves.
  if (std::is_sorted(keys.begin(), keys.end())) return;
  const std::size_t n = batch.size();
  buffered_.clear();
  for (const ring::Cqe& cqe : batch) {
    if ((cqe.flags & ring::cqe_flags::buffer) != 0) buffered_.push_back(cqe.user_data);
  }
  std::sort(buffered_.begin(), buffered_.end());
  constexpr std::uint64_t buffer_group = ~std::uint64_t{0};  // no request's user_data
  groups_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t data = batch[i].user_data;
    groups_[i] = std::binary_search(buffered_.begin(), buffered_.end(), data) ? buffer_group : data;
  }
  order_.resize(n);
  for (std::size_t i = 0; i < n; ++i) order_[i] = i;
  std::stable_sort(order_.begin(), order_.end(),
                   [&](std::size_t a, std::size_t b) { return groups_[a] < groups_[b]; });
  for (std::size_t first = 0; first < n;) {
    std::size_t last = first + 1;
    while (last < n && groups_[order_[last]] == groups_[order_[first]]) ++last;
    if (last - first >= 2) {
      own_keys_.clear();
      for (std::size_t j = first; j < last; ++j) own_keys_.push_back(keys[order_[j]]);
      std::sort(own_keys_.begin(), own_keys_.end());
      for (std::size_t j = first; j < last; ++j) keys[order_[j]] = own_keys_[j - first];
    }
    first = last;
  }
  for (std::size_t i = 0; i < n; ++i) order_[i] = i;
  std::stable_sort(order_.begin(), order_.end(),
                   [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
  scratch_.clear();
  for (std::size_t i : order_) scratch_.push_back(batch[i]);
  batch.swap(scratch_);
}

}  // namespace coring::testing
