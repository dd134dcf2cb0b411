// runtime-nop on coring's EventLoop, and the runtime-nop subcommands.
//
// K worker coroutines are spawned on one loop and share one budget of NOPs: each takes
// one, awaits coring::nop(), counts the result and takes the next. So at every turn the
// K workers are resumed together, each prepares one SQE, the loop submits all K and
// waits in one io_uring_enter(2), and one batched reap queues the K workers for the next
// turn — the runtime's equivalent of `ring-nop --batch K`, which is why
// runtime-nop-compare sets the two side by side.
//
// The clock and the allocation count start when the warm-up's last NOP completes and
// stop when the last worker finishes; both are taken by the workers themselves, so the
// task that waits for them adds nothing to the timed turns. Spawning allocates (the
// task frames, and the loop's ready queue grows to K on the first turn): all of that
// happens during the warm-up, so what is counted is the steady state, which DESIGN
// invariant 7 says must not allocate.
//
// The loop and ring-nop's Ring both run on the backend the environment says, or
// --backend's (backend.hpp), so that the comparison stays one of the same ring.
#include "runtime_nop.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backend.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/task.hpp"
#include "peers/liburing_nop.hpp"
#include "ring_nop.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

constexpr std::uint64_t default_reps = 5;

// What the workers share: the NOPs still to start, and the measurement.
struct NopBudget {
  std::uint64_t to_start = 0;
  std::uint64_t warmup = 0;     // completions after which the measurement starts
  std::uint64_t completed = 0;  // NOP completions so far
  std::uint64_t errors = 0;     // completions with res != 0
  std::uint32_t running = 0;    // workers not finished
  std::coroutine_handle<> waiter;

  std::optional<Stopwatch> stopwatch;
  std::uint64_t completed_at_start = 0;
  std::uint64_t allocations_at_start = 0;
  NopRun run;

  void start_measuring() noexcept {
    completed_at_start = completed;
    allocations_at_start = allocation_count();
    stopwatch.emplace();
  }
  void stop_measuring() noexcept {
    run.elapsed = stopwatch->elapsed();
    run.allocations = allocation_count() - allocations_at_start;
    run.ops = completed - completed_at_start;
    run.errors = errors;
  }
};

Task<void> nop_worker(NopBudget& budget) {
  while (budget.to_start > 0) {
    --budget.to_start;
    const IoResult r = co_await nop();
    if (r.res != 0) ++budget.errors;
    if (++budget.completed == budget.warmup) budget.start_measuring();
  }
  if (--budget.running == 0) {
    budget.stop_measuring();
    detail::LoopOps(*EventLoop::current()).schedule(budget.waiter);
  }
}

// Suspends the task that spawned the workers until the last of them finishes.
struct AllWorkersDone {
  NopBudget& budget;
  bool await_ready() const noexcept { return budget.running == 0; }
  void await_suspend(std::coroutine_handle<> waiter) const noexcept { budget.waiter = waiter; }
  void await_resume() const noexcept {}
};

Task<void> spawn_and_join(EventLoop& loop, NopBudget& budget, std::uint32_t workers) {
  budget.running = workers;
  for (std::uint32_t i = 0; i < workers; ++i) loop.spawn(nop_worker(budget));
  co_await AllWorkersDone{budget};
}

// --inflight for runtime-nop: one value.
std::uint32_t take_inflight(Args& args) {
  auto inflight = args.take_u64("--inflight", 1, ring::Ring::max_entries);
  if (!inflight) throw UsageError("--inflight is required");
  return static_cast<std::uint32_t>(*inflight);
}

std::uint64_t take_ops(Args& args) {
  return args.take_u64("--ops", 1, UINT64_MAX / 2).value_or(NopOptions{}.ops);
}

// A tenth of the run, untimed, as for ring-nop (see ring_nop.cpp).
RuntimeNopOptions runtime_options(std::uint32_t inflight, std::uint64_t ops) {
  return RuntimeNopOptions{inflight, ops, std::max<std::uint64_t>(ops / 10, inflight)};
}

NopOptions ring_options(std::uint32_t batch, std::uint64_t ops) {
  NopOptions options;
  options.batch = batch;
  options.ops = ops;
  options.warmup_ops = ops / 10;
  return options;
}

double allocations_per_op(const NopRun& run) noexcept {
  return run.ops == 0 ? 0.0 : static_cast<double>(run.allocations) / static_cast<double>(run.ops);
}

// Throws if a run's completions failed; allocations are reported, not thrown, so that
// the figure is printed even when it is wrong.
void check_errors(const char* side, const NopRun& run) {
  if (run.errors != 0) {
    throw std::runtime_error(std::string(side) + ": " + std::to_string(run.errors) + " of " +
                             std::to_string(run.ops) + " NOP completions had res != 0");
  }
}

// Exit status 1 when the timed loop allocated (DESIGN invariant 7).
int allocation_status(const char* side, std::uint64_t allocations) {
  if (allocations == 0) return 0;
  std::fprintf(stderr,
               "coring-bench %s: the timed loop allocated %llu times "
               "(DESIGN invariant 7: the hot path does not allocate)\n",
               side, static_cast<unsigned long long>(allocations));
  return 1;
}

struct InflightRuns {
  std::uint32_t inflight = 0;
  std::vector<NopRun> ring;
  std::vector<NopRun> runtime;
};

double median_of(const std::vector<NopRun>& runs, double (*metric)(const NopRun&)) {
  std::vector<double> values;
  for (const NopRun& run : runs) values.push_back(metric(run));
  return median(values);
}

double ops_per_s_of(const NopRun& run) { return run.ops_per_s(); }

// The fastest run: on a shared machine, the one least disturbed by other work.
double best_of(const std::vector<NopRun>& runs) {
  double best = 0.0;
  for (const NopRun& run : runs) best = std::max(best, run.ops_per_s());
  return best;
}
double cpu_ns_per_op_of(const NopRun& run) { return run.cpu_ns_per_op(); }

void print_compare_table(const std::vector<InflightRuns>& all, std::uint64_t ops,
                         std::uint64_t reps, const CoringBackend& backend) {
  std::printf(
      "runtime-nop vs ring-nop: %llu NOPs per run, %llu runs per side interleaved, medians; "
      "ratio = runtime/ring (best_ratio: of the fastest run of each side); backend %s\n",
      static_cast<unsigned long long>(ops), static_cast<unsigned long long>(reps),
      backend.describe().c_str());
  std::printf("%8s %14s %17s %7s %15s %10s %19s %22s %14s\n", "inflight", "ring_ops_per_s",
              "runtime_ops_per_s", "ratio", "ratio_min..max", "best_ratio", "ring_cpu_ns_per_op",
              "runtime_cpu_ns_per_op", "allocs_per_op");
  for (const InflightRuns& runs : all) {
    const double ring_ops = median_of(runs.ring, ops_per_s_of);
    const double runtime_ops = median_of(runs.runtime, ops_per_s_of);
    // Each runtime run against the ring run just before it: the spread of these says
    // how much of the median ratio is noise.
    std::vector<double> paired;
    std::uint64_t allocations = 0;
    std::uint64_t runtime_total = 0;
    for (std::size_t i = 0; i < runs.runtime.size(); ++i) {
      paired.push_back(runs.runtime[i].ops_per_s() / runs.ring[i].ops_per_s());
      allocations += runs.runtime[i].allocations;
      runtime_total += runs.runtime[i].ops;
    }
    const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
    char range[32];
    std::snprintf(range, sizeof(range), "%.3f..%.3f", *low, *high);
    std::printf("%8u %14.0f %17.0f %7.3f %15s %10.3f %19.1f %22.1f %14.6g\n", runs.inflight,
                ring_ops, runtime_ops, runtime_ops / ring_ops, range,
                best_of(runs.runtime) / best_of(runs.ring), median_of(runs.ring, cpu_ns_per_op_of),
                median_of(runs.runtime, cpu_ns_per_op_of),
                static_cast<double>(allocations) / static_cast<double>(runtime_total));
  }
}

NopRun checked(std::string_view side, NopRun run) {
  check_nop_run(side, run);
  return run;
}

}  // namespace

std::vector<BenchResult> nop_suite(const SuiteOptions& options) {
  const NopOptions ring = ring_options(options.nop_batch, options.nop_ops);
  const RuntimeNopOptions runtime = runtime_options(options.nop_batch, options.nop_ops);
  std::vector<std::function<NopRun()>> sides{
      [&runtime] { return checked("runtime-nop", run_runtime_nop(runtime)); },
      [&ring] { return checked("ring-nop", run_coring_nop(ring)); }};
  const bool with_liburing = liburing_peer_available();
  if (with_liburing) {
    sides.emplace_back([&ring] { return checked("ring-nop-liburing", run_liburing_nop(ring)); });
  }
  const auto runs = interleave(options.reps, sides);
  const auto side = [&runs](std::string name, std::size_t index) {
    return measured_side(std::move(name), runs[index], cpu_ns_per_op_of, ops_per_s_of);
  };
  const Side liburing =
      with_liburing
          ? side("liburing", 2)
          : skipped_side("liburing", "liburing-dev was missing when coring-bench was built",
                         "apt-get install -y liburing-dev");
  const std::string batch = std::to_string(options.nop_batch);
  return {BenchResult{"ring-nop", "batch " + batch, nop_metrics, {side("coring", 1), liburing}, {}},
          BenchResult{"runtime-nop",
                      batch + " in flight",
                      nop_metrics,
                      {side("coring", 0), side("coring-ring", 1), liburing},
                      {}}};
}

NopRun run_runtime_nop(const RuntimeNopOptions& options) {
  // The SQ holds all K NOPs of a turn, so that preparing them never forces an early
  // submit: one enter per turn, as ring-nop has one per batch.
  LoopOptions loop_options;
  loop_options.entries = std::max<std::uint32_t>(2, std::bit_ceil(options.inflight));
  EventLoop loop(loop_options);

  NopBudget budget;
  budget.to_start = options.warmup_ops + options.ops;
  budget.warmup = options.warmup_ops;
  loop.run(spawn_and_join(loop, budget, options.inflight));
  return budget.run;
}

int runtime_nop_main(Args& args) {
  const std::uint32_t inflight = take_inflight(args);
  const std::uint64_t ops = take_ops(args);
  const CoringBackend backend = take_backend(args);
  args.finish();
  const NopRun run = run_runtime_nop(runtime_options(inflight, ops));
  check_errors("runtime-nop", run);
  std::printf("ops_per_s=%.0f allocs_per_op=%.6g backend=%s\n", run.ops_per_s(),
              allocations_per_op(run), backend.name().c_str());
  return allocation_status("runtime-nop", run.allocations);
}

int runtime_nop_compare_main(Args& args) {
  auto inflights = args.take_u64_list("--inflight", 1, ring::Ring::max_entries);
  if (!inflights) throw UsageError("--inflight is required");
  const std::uint64_t ops = take_ops(args);
  const std::uint64_t reps = args.take_u64("--reps", 1, 1000).value_or(default_reps);
  const CoringBackend backend = take_backend(args);
  args.finish();

  std::vector<InflightRuns> all;
  std::uint64_t allocations = 0;
  for (const std::uint64_t k : *inflights) {
    const auto inflight = static_cast<std::uint32_t>(k);
    InflightRuns& runs = all.emplace_back();
    runs.inflight = inflight;
    for (std::uint64_t rep = 0; rep < reps; ++rep) {
      check_errors("ring-nop", runs.ring.emplace_back(run_coring_nop(ring_options(inflight, ops))));
      const NopRun& run =
          runs.runtime.emplace_back(run_runtime_nop(runtime_options(inflight, ops)));
      check_errors("runtime-nop", run);
      allocations += run.allocations;
    }
  }
  print_compare_table(all, ops, reps, backend);
  return allocation_status("runtime-nop-compare", allocations);
}

}  // namespace coring::bench
