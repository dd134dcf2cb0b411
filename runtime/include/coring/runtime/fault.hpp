// FaultInjector: a seeded source of the faults a loop must survive, for tests.
//
//   FaultInjector faults(FaultPlan{.seed = 42, .error_ppm = 20'000, .reorder_ppm = 500'000});
//   LoopOptions options;
//   options.faults = &faults;
//   EventLoop loop(options);   // everything this loop submits and reaps goes through it
//
// A loop given an injector keeps using its real ring; the injector sits between the two
// and, drawing from one PRNG seeded by the plan, changes what each side sees — always in
// a way the kernel itself could have produced, so that a correct program stays correct:
//
//   short counts     an SQE's byte count is shrunk before the kernel sees it (read, write,
//                    recv, send and their fixed-buffer and zero-copy forms), so the kernel
//                    really transfers less and reports it;
//   errors           an SQE is replaced by a NOP whose CQE then carries one of the plan's
//                    errors (-EINTR, -EAGAIN, -ECANCELED, -ENOBUFS, -ECONNRESET): the
//                    request never ran, as if the kernel had refused it (but never
//                    -ENOBUFS to one that selects a provided buffer: the kernel says that
//                    only when the group's ring is empty, which the injector cannot know);
//   multishot ends   a multishot request (accept, recv, recvmsg, read_multishot, poll) is
//                    ended after one of its CQEs: the injector cancels it and hands that
//                    CQE and any that were already on their way over without
//                    IORING_CQE_F_MORE on the last — what the kernel does when it stops a
//                    multishot request of its own accord — and swallows the cancel's
//                    -ECANCELED;
//   busy enters      an io_uring_enter(2) is not made and the turn sees EBUSY;
//   reordering       a reaped batch is shuffled; CQEs of one request keep their order,
//                    and so do all CQEs of requests that got a provided buffer in it (with
//                    incremental consumption that order says where each piece starts);
//   overflow flag    the reap sees IORING_SQ_CQ_OVERFLOW raised and enters to flush;
//   late CQEs        a request's final CQE is held back and handed over in a later reap,
//                    after the loop has resumed coroutines and submitted again — as when
//                    the kernel posts a completion late (a NOP of the injector's own,
//                    swallowed, makes sure that later reap comes).
//
// Each kind of decision draws from a stream of its own (per SQE, per enter, per reap,
// per multishot CQE, per final CQE), numbered from the seed, so the same plan and seed on the same
// program replay the same faults as long as the program's own order of submissions
// and completions repeats: print the seed of a run that fails. Not for production: it costs a
// branch per turn, nothing per operation when absent. Loop thread only.
//
// Incremental provided-buffer rings: multishot ends and late CQEs hold some CQEs back,
// which can move a buffer CQE behind a later one of another request — an order the
// kernel never produces, which breaks where incremental pieces start. Run those faults
// over whole-buffer pools (BufferPoolOptions::incremental = false), as the fault tests do.
//
// Script mode, for fuzzing: a plan with a `script` takes every decision from those bytes
// instead of the PRNG — a fuzzer's input then says which request fails with which error,
// which batch is shuffled how, and so on. The decisions read the script in the order the
// injector makes them (all kinds from one cursor): a yes/no for a kind with a non-zero
// probability reads one byte b and means yes when b / 256 < ppm / 1,000,000 (so 1,000,000
// ppm is always yes, and b = 0 is yes for any non-zero ppm); a choice among n reads one
// byte (n <= 256), two or four, little-endian, modulo n. Once the script is used up every
// decision is "no fault" (and every choice the first), so a run ends as a plain run.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coring/ring/abi.hpp"
#include "coring/ring/ring.hpp"

namespace coring {

// Which faults, how often (each a probability in parts per million, drawn per event:
// per SQE, per CQE, per enter or per batch) and from which seed.
struct FaultPlan {
  std::uint64_t seed = 1;
  std::uint32_t short_count_ppm = 0;    // per SQE of a byte-counted operation
  std::uint32_t error_ppm = 0;          // per SQE of an operation (not the loop's own)
  std::uint32_t multishot_end_ppm = 0;  // per CQE with IORING_CQE_F_MORE of a multishot
  std::uint32_t enter_busy_ppm = 0;     // per io_uring_enter(2) the loop would make
  std::uint32_t reorder_ppm = 0;        // per reaped batch of two or more CQEs
  std::uint32_t overflow_flag_ppm = 0;  // per reap
  // The errors `errors` draws from (positive errno values), uniformly.
  std::vector<int> errors = {EINTR, EAGAIN, ECANCELED, ENOBUFS, ECONNRESET};
  std::uint32_t delay_ppm = 0;  // per final CQE of a request (not a multishot's ended one)
  // Not empty: script mode (see above), the seed is unused. The bytes are not copied:
  // they must outlive the injector.
  std::span<const std::uint8_t> script;
};

// What an injector has done so far.
struct FaultCounts {
  std::uint64_t short_counts = 0;
  std::uint64_t errors = 0;
  std::uint64_t multishot_ends = 0;
  std::uint64_t enter_busy = 0;
  std::uint64_t reorders = 0;
  std::uint64_t overflow_flags = 0;
  [[nodiscard]] std::uint64_t total() const noexcept {
    return short_counts + errors + multishot_ends + enter_busy + reorders + overflow_flags;
  }
};

class FaultInjector {
 public:
  // Throws std::invalid_argument for a probability above 1,000,000 ppm or an error list
  // that is empty (with error_ppm set) or holds a value that is not a positive errno.
  explicit FaultInjector(FaultPlan plan);
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  [[nodiscard]] const FaultPlan& plan() const noexcept { return plan_; }
  [[nodiscard]] const FaultCounts& counts() const noexcept { return counts_; }
  // Final CQEs held back for a later reap so far (delay_ppm).
  [[nodiscard]] std::uint64_t delays() const noexcept { return delays_; }
  // Script mode: how many of the script's bytes the decisions have read so far.
  [[nodiscard]] std::size_t script_consumed() const noexcept { return script_at_; }

  // --- For the EventLoop ---------------------------------------------------------------
  // Rewrites the SQEs `ring` has handed out but not yet published. `own` is the
  // user_data of the loop's own wake read, which is left alone.
  void before_submit(ring::Ring& ring, std::uint64_t own) noexcept;
  // Whether to skip this io_uring_enter(2) and report EBUSY.
  bool enter_busy() noexcept;
  // Whether this reap sees the CQ-overflow flag raised.
  bool overflow_flag() noexcept;
  // Takes a batch of CQEs copied out of the CQ and rewrites it in place into what the
  // loop is to see (some may be held back for later batches, some swallowed). May
  // prepare cancel SQEs on `ring` (unpublished, swallowed when they complete).
  void after_reap(ring::Ring& ring, std::vector<ring::Cqe>& batch);

 private:
  // The decision streams.
  enum Stream : std::uint8_t { sqes, enters, reaps, multishot_cqes, final_cqes, streams };
  std::uint64_t draw(Stream stream) noexcept;
  bool roll(Stream stream, std::uint32_t ppm) noexcept;
  std::uint32_t below(Stream stream, std::uint32_t bound) noexcept;
  [[nodiscard]] bool scripted() const noexcept { return !plan_.script.empty(); }
  // Script mode: the next `width` bytes, little-endian; missing ones read as 0.
  std::uint32_t script_bytes(std::size_t width) noexcept;
  void reorder(std::vector<ring::Cqe>& batch);
  bool hold(ring::Ring& ring, const ring::Cqe& cqe);
  void replace_with_error(ring::Sqe& sqe, int error) noexcept;

  FaultPlan plan_;
  FaultCounts counts_;
  std::uint64_t drawn_[streams] = {};  // draws so far, per stream
  std::size_t script_at_ = 0;          // script mode: the next byte to read
  // Requests turned into NOPs: the error their CQE is to carry.
  std::unordered_map<std::uint64_t, std::int32_t> injected_errors_;
  // Multishot requests in flight (by user_data), which may be ended.
  std::unordered_set<std::uint64_t> multishots_;
  // Requests being ended: the CQEs held back until the kernel's final one.
  std::unordered_map<std::uint64_t, std::vector<ring::Cqe>> ending_;
  std::vector<ring::Cqe> scratch_;
  // Late CQEs, in the order they were reaped, until the NOP's CQE comes back.
  std::vector<ring::Cqe> late_;
  bool late_nop_pending_ = false;
  std::uint64_t delays_ = 0;
};

// user_data of the injector's cancel requests: no operation's (bits 0 and 2 set).
inline constexpr std::uint64_t fault_cancel_data = 5;
// user_data of the NOP behind late CQEs: no operation's (bits 0, 2 and 3 set).
inline constexpr std::uint64_t fault_late_data = 13;

}  // namespace coring
