// FaultInjector: a seeded source of the faults a loop must survive, for tests. Part of
// coring::testing (link that target), not of the runtime.
//
//   coring::testing::FaultInjector faults({.seed = 42, .error_ppm = 20'000});
//   coring::EventLoop loop(coring::LoopOptions{.hooks = &faults});
//
// or attach it to a loop that already runs: loop.set_hooks(&faults). It is the loop's
// LoopHooks (runtime/loop_hooks.hpp): the loop keeps using its real ring, and the
// injector sits between the two
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
// per multishot CQE, per final CQE), numbered from the seed, so the same plan and seed on
// the same program replay the same faults as long as the program's own order of
// submissions and completions repeats. Left to itself the kernel does not repeat it: a
// request it hands to an io-wq worker (a buffered write, a shutdown) completes whenever
// that thread gets to it, so which reap sees its CQE, and in which order among others,
// changes from run to run. A deterministic plan (the default) takes timing out of it:
//
//   settling         before a reap hands its batch over, the injector waits until every
//                    request in flight that finishes on its own has its CQE in it — by
//                    opcode (nop, close, shutdown, fsync, openat, statx, the path
//                    operations...) and, for read and write requests, when the fd is a
//                    regular file or a block device; not a request linked behind one that
//                    waits for something else, nor one that posts no CQE on success;
//   submission order a batch is handed over in the order its requests were submitted
//                    (each request's CQEs in the kernel's order, and all CQEs that carry
//                    a provided buffer in the kernel's order among themselves);
//   shutdown         io_uring always runs IORING_OP_SHUTDOWN on a worker, where it races
//                    whatever the loop does meanwhile on the connection's other end; the
//                    injector makes it at its place in the submission instead, with
//                    shutdown(2) between the SQEs before it and the rest, and hands its
//                    result over in the CQE of the NOP that took its place (a registered
//                    file's shutdown stays the kernel's).
//
// A single-threaded program whose other completions come from its own actions (loopback
// sockets with TCP_NODELAY, pipes, files) then sees the same CQEs in the same batches on
// every run of a seed, and digest() — a hash of every decision and of every CQE handed
// over (named by its request's submission number, not its address) — is the same: a
// failing seed replays exactly. A loop without hooks pays a branch per enter and per
// reap for them, nothing per operation. Loop thread only.
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
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coring/ring/abi.hpp"
#include "coring/ring/ring.hpp"
#include "coring/runtime/detail/user_data.hpp"
#include "coring/runtime/loop_hooks.hpp"

namespace coring::testing {

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
  std::span<const std::uint8_t> script{};
  // Settling, submission order and shutdowns (see above). A settling wait gives up after
  // `settle_limit` (a request that only looked as if it finished on its own, say an
  // openat of a FIFO, which waits for the other end) and counts it in settle_timeouts().
  bool deterministic = true;
  std::chrono::milliseconds settle_limit{2000};
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

class FaultInjector final : public LoopHooks {
 public:
  // Throws std::invalid_argument for a probability above 1,000,000 ppm or an error list
  // that is empty (with error_ppm set) or holds a value that is not a positive errno.
  explicit FaultInjector(FaultPlan plan);
  // Destroyed while attached, it detaches itself (see LoopHooks) — unless it holds
  // completions its loop still waits for: then the process aborts with a message.
  ~FaultInjector() override;
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  [[nodiscard]] const FaultPlan& plan() const noexcept { return plan_; }
  [[nodiscard]] const FaultCounts& counts() const noexcept { return counts_; }
  // Final CQEs held back for a later reap so far (delay_ppm).
  [[nodiscard]] std::uint64_t delays() const noexcept { return delays_; }
  // Script mode: how many of the script's bytes the decisions have read so far.
  [[nodiscard]] std::size_t script_consumed() const noexcept { return script_at_; }
  // A hash of every decision made and every CQE handed to the loop so far: two runs of
  // a seed that are the same run have the same digest.
  [[nodiscard]] std::uint64_t digest() const noexcept { return digest_; }
  // Deterministic plans: reaps that waited for a request to settle, and waits that gave
  // up after settle_limit (each one a place where a replay may part from the run).
  [[nodiscard]] std::uint64_t settle_waits() const noexcept { return settle_waits_; }
  [[nodiscard]] std::uint64_t settle_timeouts() const noexcept { return settle_timeouts_; }

  // Whether the injector holds completions back (late CQEs, a multishot it is ending, the
  // NOP of a request it failed or a shutdown it made) or has requests of its own in
  // flight: while it does, a loop refuses to let it go (EventLoop::set_hooks), since only
  // the injector can hand those completions over or swallow them.
  [[nodiscard]] bool holds_completions() const noexcept override;
  // Makes no more faults from now on: what it holds is handed over in the loop's next
  // turns, after which holds_completions() is false and the injector can be detached.
  void quiesce() noexcept { quiesced_ = true; }

  // --- LoopHooks: what the loop calls (see loop_hooks.hpp) --------------------------------
  // Rewrites the SQEs `ring` has handed out but not yet published, which the caller
  // then publishes (flush_sq(), or a submit) before calling it again. `own` is the
  // user_data of the loop's own wake read, which is left alone.
  void before_submit(ring::Ring& ring, std::uint64_t own) noexcept override;
  // Whether to skip this io_uring_enter(2) and report EBUSY (enter_busy_ppm).
  bool skip_enter() noexcept override;
  // Deterministic plans: submits the SQEs before each shutdown that before_submit() took
  // over, then makes that shutdown; the caller's own submit hands over the rest. Nothing
  // for other plans, or when nothing was taken over.
  void submit_first(ring::Ring& ring) noexcept override;
  // Whether this reap sees the CQ-overflow flag raised (overflow_flag_ppm).
  bool flush_cq() noexcept override;
  // Copies up to `limit` CQEs out of the CQ, settles them (deterministic plans) and
  // rewrites them (after_reap); false once neither the ring nor settling has any.
  bool reap(ring::Ring& ring, std::uint64_t own, std::uint32_t limit,
            std::span<const ring::Cqe>& batch) override;

 private:
  // Deterministic plans: adds to `batch` (CQEs copied out of the CQ) until every
  // request in flight that finishes on its own has its CQE there, submitting what is
  // queued (through before_submit) and waiting in the kernel as needed. Nothing for
  // other plans. Throws std::system_error if io_uring_enter(2) fails for good.
  void settle(ring::Ring& ring, std::uint64_t own, std::vector<ring::Cqe>& batch);
  // Takes a batch of CQEs copied out of the CQ and rewrites it in place into what the
  // loop is to see (some may be held back for later batches, some swallowed). May
  // prepare cancel SQEs on `ring` (unpublished, swallowed when they complete).
  void after_reap(ring::Ring& ring, std::vector<ring::Cqe>& batch);
  // The decision streams.
  enum Stream : std::uint8_t { sqes, enters, reaps, multishot_cqes, final_cqes, streams };
  std::uint64_t draw(Stream stream) noexcept;
  bool roll(Stream stream, std::uint32_t ppm) noexcept;
  std::uint32_t below(Stream stream, std::uint32_t bound) noexcept;
  [[nodiscard]] bool scripted() const noexcept { return !plan_.script.empty(); }
  // Script mode: the next `width` bytes, little-endian; missing ones read as 0.
  std::uint32_t script_bytes(std::size_t width) noexcept;
  // Sorts `batch` by `keys` (one per CQE), keeping the order among each request's CQEs
  // and among all CQEs that carry a provided buffer.
  void sort_by(std::vector<ring::Cqe>& batch, std::vector<std::uint64_t>& keys);
  void reorder(std::vector<ring::Cqe>& batch);
  void order_by_submission(std::vector<ring::Cqe>& batch);
  // Whether a request finishes without anything else happening first (see settling).
  [[nodiscard]] static bool finishes_alone(const ring::Sqe& sqe) noexcept;
  // Takes note of a CQE seen by settle(): a settling request's final one settles it.
  void note_settled(const ring::Cqe& cqe) noexcept;
  void mix(std::uint64_t value) noexcept;
  bool hold(ring::Ring& ring, const ring::Cqe& cqe);
  void replace_with_error(ring::Sqe& sqe, int error) noexcept;
  // The faults an operation's SQE may get (errors, short counts).
  void rewrite(ring::Sqe& sqe) noexcept;

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
  std::vector<ring::Cqe> batch_;  // what reap() hands the loop
  // reorder()'s and order_by_submission()'s keys, sort_by()'s working space.
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint64_t> buffered_;
  std::vector<std::uint64_t> groups_;
  std::vector<std::size_t> order_;
  std::vector<std::uint64_t> own_keys_;
  // Late CQEs, in the order they were reaped, until the NOP's CQE comes back.
  std::vector<ring::Cqe> late_;
  bool late_nop_pending_ = false;
  std::uint64_t delays_ = 0;
  // Deterministic plans: each request's submission number (by user_data, the latest
  // submission's), and the requests in flight that settle() waits for.
  std::unordered_map<std::uint64_t, std::uint64_t> submitted_;
  std::uint64_t submissions_ = 0;
  std::unordered_set<std::uint64_t> settling_;
  bool chain_waits_ = false;  // the SQE before this one links to it and waits on others
  // Shutdowns taken over: made by submit_first() when the SQEs before them are in.
  struct Shutdown {
    std::uint32_t before = 0;  // SQEs before it since the last submission
    std::uint64_t user_data = 0;
    int fd = -1;
    int how = 0;
  };
  std::vector<Shutdown> shutdowns_;
  std::vector<Shutdown> late_shutdowns_;  // made when their NOP's CQE comes (see there)
  std::uint32_t unsubmitted_ = 0;         // SQEs seen by before_submit() since the last submission
  bool previous_links_ = false;           // the SQE before links to the next one
  void make_shutdown(const Shutdown& shutdown) noexcept;
  std::uint64_t settle_waits_ = 0;
  std::uint64_t settle_timeouts_ = 0;
  std::uint64_t digest_ = 0;
  std::uint32_t cancels_in_flight_ = 0;  // our cancels of multishots, CQE still to come
  bool quiesced_ = false;
};

}  // namespace coring::testing
