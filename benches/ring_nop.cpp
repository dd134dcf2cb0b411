// ring-nop on coring's Ring, and the three ring-nop subcommands.
//
// The loop mirrors the liburing peer step for step (peers/liburing_nop.cpp): get_sqe()
// and prep_nop() for each SQE of a batch, one submit_and_wait(batch), then copy_cqes()
// into an array on the stack, which takes the whole batch in one copy and one release
// of the CQ head. ring-nop-compare runs the two sides alternately, so that drift in the
// machine's state (frequency, other load) falls on both, and reports medians.
//
// coring's Ring is set up on the backend the environment says, or --backend's
// (backend.hpp), as the runtime's loops are: on the epoll backend the comparison is
// coring's user-space ring against liburing on the kernel's.
#include "ring_nop.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backend.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/ring.hpp"
#include "peers/liburing_nop.hpp"

namespace coring::bench {
namespace {

constexpr std::uint64_t default_reps = 5;
// CQEs copied per copy_cqes() call: a batch of up to this size is reaped in one call.
constexpr std::size_t cqe_chunk = 256;

// The failed CQEs among the next `count`, which have all been submitted.
std::uint64_t reap(ring::Ring& ring, std::span<ring::Cqe, cqe_chunk> cqes, std::uint32_t count) {
  std::uint64_t failed = 0;
  while (count > 0) {
    const std::uint32_t want = std::min<std::uint32_t>(count, cqe_chunk);
    // With DEFER_TASKRUN the submit has already posted every CQE, so this does not wait.
    const std::uint32_t copied = ring.copy_cqes(cqes.first(want), want).value();
    for (std::uint32_t i = 0; i < copied; ++i) failed += cqes[i].res != 0 ? 1 : 0;
    count -= copied;
  }
  return failed;
}

// --ops, and the warm-up that goes with it; the batch is the caller's.
NopOptions take_nop_options(Args& args) {
  NopOptions options;
  options.ops = args.take_u64("--ops", 1, UINT64_MAX / 2).value_or(options.ops);
  // A tenth of the run, untimed, so that the first timed batch finds caches, the ring's
  // pages and the task's io_uring context warm.
  options.warmup_ops = options.ops / 10;
  return options;
}

std::uint32_t take_batch(Args& args) {
  auto batch = args.take_u64("--batch", 1, ring::Ring::max_entries);
  if (!batch) throw UsageError("--batch is required");
  return static_cast<std::uint32_t>(*batch);
}

void print_liburing_skipped() {
  std::printf("%.*s\n", static_cast<int>(liburing_skipped.size()), liburing_skipped.data());
}

// `backend` is coring's, "" for the liburing side.
int print_single(std::string_view side, const NopRun& run, const std::string& backend) {
  check_nop_run(side, run);
  std::printf("ops_per_s=%.0f", run.ops_per_s());
  if (!backend.empty()) std::printf(" backend=%s", backend.c_str());
  std::printf("\n");
  return 0;
}

// The runs of one batch size, in the order they were made.
struct BatchRuns {
  std::uint32_t batch = 0;
  std::vector<NopRun> coring;
  std::vector<NopRun> liburing;  // empty without the peer
};

double median_of(const std::vector<NopRun>& runs, double (NopRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const NopRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

void print_table(const std::vector<BatchRuns>& all, std::uint64_t ops, std::uint64_t reps,
                 const CoringBackend& backend) {
  std::printf(
      "ring-nop: %llu NOPs per run, %llu runs per side interleaved, medians; "
      "ratio > 1: coring is faster; coring's ring on the backend %s, liburing on io_uring\n",
      static_cast<unsigned long long>(ops), static_cast<unsigned long long>(reps),
      backend.describe().c_str());
  std::printf("%6s %16s %18s %7s %15s %21s %23s\n", "batch", "coring_ops_per_s",
              "liburing_ops_per_s", "ratio", "ratio_min..max", "coring_cpu_ns_per_op",
              "liburing_cpu_ns_per_op");
  for (const BatchRuns& runs : all) {
    const double coring = median_of(runs.coring, &NopRun::ops_per_s);
    const double coring_cpu = median_of(runs.coring, &NopRun::cpu_ns_per_op);
    if (runs.liburing.empty()) {
      std::printf("%6u %16.0f %18s %7s %15s %21.1f %23s\n", runs.batch, coring, "-", "-", "-",
                  coring_cpu, "-");
      continue;
    }
    const double liburing = median_of(runs.liburing, &NopRun::ops_per_s);
    // The ratio of each coring run to the liburing run right after it: their spread
    // says how much of the median ratio is noise.
    std::vector<double> paired;
    for (std::size_t i = 0; i < runs.coring.size(); ++i) {
      paired.push_back(runs.coring[i].ops_per_s() / runs.liburing[i].ops_per_s());
    }
    const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
    char range[32];
    std::snprintf(range, sizeof(range), "%.3f..%.3f", *low, *high);
    std::printf("%6u %16.0f %18.0f %7.3f %15s %21.1f %23.1f\n", runs.batch, coring, liburing,
                coring / liburing, range, coring_cpu,
                median_of(runs.liburing, &NopRun::cpu_ns_per_op));
  }
}

}  // namespace

void check_nop_run(std::string_view side, const NopRun& run) {
  if (run.errors != 0) {
    throw std::runtime_error(std::string(side) + ": " + std::to_string(run.errors) + " of " +
                             std::to_string(run.ops) + " NOP completions had res != 0");
  }
  if (run.allocations != 0) {
    throw std::runtime_error(std::string(side) + ": the timed loop allocated " +
                             std::to_string(run.allocations) +
                             " times (DESIGN invariant 7: the hot path does not allocate)");
  }
}

NopRun run_coring_nop(const NopOptions& options) {
  ring::Params params{};
  params.flags = ring::setup::single_issuer | ring::setup::defer_taskrun;
  // Backend::automatic: CORING_BACKEND's choice, as a loop's (see backend.hpp).
  ring::Ring ring =
      ring::Ring::create(nop_ring_entries(options.batch), params, ring::Backend::automatic).value();
  // The emulation enters without a system call: it has no ring fd to register.
  if (ring.backend() == ring::Backend::io_uring) ring.register_ring_fd().value();
  std::array<ring::Cqe, cqe_chunk> cqes;

  return run_nop_loop(options, [&ring, &cqes](std::uint32_t batch) {
    for (std::uint32_t i = 0; i < batch; ++i) {
      ring::Sqe* sqe = ring.get_sqe();
      // The SQ holds a whole batch, and the previous batch was consumed by its submit.
      assert(sqe != nullptr);
      ring::prep_nop(*sqe);
      sqe->user_data = i;
    }
    ring.submit_and_wait(batch).value();
    return reap(ring, cqes, batch);
  });
}

int ring_nop_main(Args& args) {
  NopOptions options = take_nop_options(args);
  options.batch = take_batch(args);
  const CoringBackend backend = take_backend(args);
  args.finish();
  return print_single("ring-nop", run_coring_nop(options), backend.name());
}

int ring_nop_liburing_main(Args& args) {
  NopOptions options = take_nop_options(args);
  options.batch = take_batch(args);
  args.finish();
  if (!liburing_peer_available()) {
    print_liburing_skipped();
    return 0;
  }
  return print_single("ring-nop-liburing", run_liburing_nop(options), "");
}

int ring_nop_compare_main(Args& args) {
  auto batches = args.take_u64_list("--batches", 1, ring::Ring::max_entries);
  if (!batches) throw UsageError("--batches is required");
  const NopOptions base = take_nop_options(args);
  const std::uint64_t reps = args.take_u64("--reps", 1, 1000).value_or(default_reps);
  const CoringBackend backend = take_backend(args);
  args.finish();
  const bool with_peer = liburing_peer_available();
  if (!with_peer) print_liburing_skipped();

  std::vector<BatchRuns> all;
  for (const std::uint64_t batch : *batches) {
    NopOptions options = base;
    options.batch = static_cast<std::uint32_t>(batch);
    BatchRuns& runs = all.emplace_back();
    runs.batch = options.batch;
    for (std::uint64_t rep = 0; rep < reps; ++rep) {
      check_nop_run("coring", runs.coring.emplace_back(run_coring_nop(options)));
      if (with_peer)
        check_nop_run("liburing", runs.liburing.emplace_back(run_liburing_nop(options)));
    }
  }
  print_table(all, base.ops, reps, backend);
  return 0;
}

}  // namespace coring::bench
