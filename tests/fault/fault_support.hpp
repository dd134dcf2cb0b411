// Shared by the fault tests: the plan every seed runs under, which seeds to run, a loop
// run bounded by a deadline (a hang is a failure, not a stuck CI job), the errors a
// workload may retry, and the totals the binary prints at exit for docs/reliability.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/testing/fault.hpp"

namespace coring::fault_test {

using testing::FaultCounts;
using testing::FaultInjector;
using testing::FaultPlan;

// Every kind of fault at once, at rates that make each happen several times per seed
// without making progress hopeless: most connections and files finish, some end with a
// reported error.
FaultPlan plan_for(std::uint64_t seed);

// The seeds a test runs: [first, first + count), or only $CORING_FAULT_SEED when set
// (and it lies in that range, so that a replay runs the one test that owns the seed).
std::vector<std::uint64_t> seeds_to_run(std::uint64_t first, std::uint64_t count);

// How to replay `seed` of the test that is running, for failure messages; `digest` is
// the run's FaultInjector::digest(), which the replay prints (see note_run()).
std::string replay_hint(std::uint64_t seed, std::uint64_t digest);
// After each seed's run: when CORING_FAULT_SEED replays one seed, prints its digest, so
// that the replay can be seen to be the run that failed; fails the test if a settling
// wait gave up (a request the injector took for one that finishes on its own did not).
void note_run(std::uint64_t seed, const FaultInjector& faults);
// Runs every seed of `seeds` twice (all of them, then all again) through `run`, which
// returns the digest of a seed's run, and fails the test for each seed whose two runs
// differ.
void expect_same_runs(const std::vector<std::uint64_t>& seeds,
                      const std::function<std::uint64_t(std::uint64_t)>& run);
// Fails the test unless every kind of fault a workload can meet happened since `before`
// (the totals' counts then): with `multishot`, multishot ends too. Not checked when
// CORING_FAULT_SEED replays a single seed.
void expect_every_fault_since(const FaultCounts& before, bool multishot);

// Runs `task` on `loop` until it finishes or `limit` passes. Returns false on the
// latter (the loop's destruction then cancels and drains what is left). An exception
// escaping the task is rethrown.
bool run_bounded(EventLoop& loop, Task<void> task, std::chrono::milliseconds limit);

// Errors an injected fault may carry that say "the request did not run, try again";
// the other injected ones (ECONNRESET, ECANCELED) end what they hit.
bool retryable(std::error_code error) noexcept;

// A byte at position `i` of stream `stream`: a lost, repeated or reordered byte, or one
// of another stream, shows in a comparison.
inline std::byte pattern_byte(std::uint64_t stream, std::uint64_t i) noexcept {
  return static_cast<std::byte>((i * 131 + i / 251 + stream * 29) & 0xff);
}

// A small deterministic PRNG (splitmix64) for a workload's own choices (sizes, modes),
// separate from the injector's streams.
class Choices {
 public:
  explicit Choices(std::uint64_t seed) noexcept : state_(seed * 0x2545f4914f6cdd1dULL + 1) {}
  std::uint64_t next() noexcept;
  // Uniform in [low, high].
  std::uint64_t between(std::uint64_t low, std::uint64_t high) noexcept {
    return low + next() % (high - low + 1);
  }

 private:
  std::uint64_t state_;
};

// What the fault tests did, over the whole binary.
struct Totals {
  std::uint64_t seeds = 0;  // seed runs (the replay tests run each of theirs twice)
  FaultCounts faults;
  std::map<int, std::uint64_t> errors_seen;  // errno -> times a workload got it back
  std::uint64_t bytes_verified = 0;          // arrived, in order, compared with what was sent
  std::uint64_t bytes_reported = 0;          // did not arrive, and an error said so
  std::uint64_t errors_retried = 0;          // retryable errors a workload saw and retried
  std::uint64_t errors_reported = 0;         // errors that ended a connection or a transfer
  std::uint64_t connections = 0;
  std::uint64_t connections_complete = 0;
  std::uint64_t files = 0;
};
Totals& totals();
void add_faults(const FaultCounts& counts);
// Counts `error` in errors_seen, and as retried if retryable(error) or `retry_any`,
// reported otherwise; returns whether it is to be retried.
bool note_error(std::error_code error, bool retry_any = false);

}  // namespace coring::fault_test
