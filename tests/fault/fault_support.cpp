#include "fault_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <utility>

namespace coring::fault_test {

FaultPlan plan_for(std::uint64_t seed) {
  FaultPlan plan;
  plan.seed = seed;
  plan.short_count_ppm = 250'000;
  plan.error_ppm = 20'000;
  plan.multishot_end_ppm = 100'000;
  plan.enter_busy_ppm = 50'000;
  plan.reorder_ppm = 300'000;
  plan.overflow_flag_ppm = 50'000;
  return plan;
}

namespace {

std::optional<std::uint64_t> seed_from_environment() {
  const char* text = std::getenv("CORING_FAULT_SEED");
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const unsigned long long seed = std::strtoull(text, &end, 10);
  if (*end != '\0') {
    ADD_FAILURE() << "CORING_FAULT_SEED='" << text << "' is not a number";
    return std::nullopt;
  }
  return seed;
}

}  // namespace

std::vector<std::uint64_t> seeds_to_run(std::uint64_t first, std::uint64_t count) {
  std::vector<std::uint64_t> seeds;
  if (const auto only = seed_from_environment()) {
    if (*only >= first && *only < first + count) seeds.push_back(*only);
    return seeds;
  }
  for (std::uint64_t seed = first; seed < first + count; ++seed) seeds.push_back(seed);
  return seeds;
}

void expect_every_fault_since(const FaultCounts& before, bool multishot) {
  if (std::getenv("CORING_FAULT_SEED") != nullptr) return;
  const FaultCounts& after = totals().faults;
  EXPECT_GT(after.short_counts, before.short_counts);
  EXPECT_GT(after.errors, before.errors);
  if (multishot) {
    EXPECT_GT(after.multishot_ends, before.multishot_ends);
  }
  EXPECT_GT(after.enter_busy, before.enter_busy);
  EXPECT_GT(after.reorders, before.reorders);
  EXPECT_GT(after.overflow_flags, before.overflow_flags);
}

std::string replay_hint(std::uint64_t seed, std::uint64_t digest) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name()
                                       : std::string("*");
  return "seed " + std::to_string(seed) + ", run digest " + std::to_string(digest) +
         " (replay: CORING_FAULT_SEED=" + std::to_string(seed) +
         " coring-fault-tests --gtest_filter='" + filter + "', which prints the digest of its run)";
}

void note_run(std::uint64_t seed, const FaultInjector& faults) {
  if (std::getenv("CORING_FAULT_SEED") != nullptr) {
    std::printf("seed %llu: run digest %llu\n", static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(faults.digest()));
  }
  EXPECT_EQ(faults.settle_timeouts(), 0U)
      << "seed " << seed << ": a settling wait gave up, so this run may not replay";
}

void expect_same_runs(const std::vector<std::uint64_t>& seeds,
                      const std::function<std::uint64_t(std::uint64_t)>& run) {
  std::vector<std::uint64_t> first;
  first.reserve(seeds.size());
  for (std::uint64_t seed : seeds) {
    first.push_back(run(seed));
    ++totals().seeds;
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    const std::uint64_t again = run(seeds[i]);
    ++totals().seeds;
    EXPECT_EQ(again, first[i]) << "seed " << seeds[i] << " ran differently the second time";
  }
  // A digest that says nothing (the same for every run) would pass the check above:
  // different seeds are different runs, so their digests differ.
  std::vector<std::uint64_t> distinct = first;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  EXPECT_EQ(distinct.size(), seeds.size()) << "different seeds gave the same digest";
}

bool run_bounded(EventLoop& loop, Task<void> task, std::chrono::milliseconds limit) {
  bool done = false;
  std::exception_ptr failure;
  auto wrapper = [](Task<void> inner, bool& finished, std::exception_ptr& error) -> Task<void> {
    try {
      co_await std::move(inner);
    } catch (...) {
      error = std::current_exception();
    }
    finished = true;
  };
  loop.spawn(wrapper(std::move(task), done, failure));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    loop.run_once(std::chrono::milliseconds(20));
  }
  if (failure) std::rethrow_exception(failure);
  return done;
}

bool retryable(std::error_code error) noexcept {
  return error == std::errc::interrupted || error == std::errc::resource_unavailable_try_again ||
         error == std::errc::no_buffer_space;
}

std::uint64_t Choices::next() noexcept {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Totals& totals() {
  static Totals all;
  return all;
}

void add_faults(const FaultCounts& counts) {
  FaultCounts& sum = totals().faults;
  sum.short_counts += counts.short_counts;
  sum.errors += counts.errors;
  sum.multishot_ends += counts.multishot_ends;
  sum.enter_busy += counts.enter_busy;
  sum.reorders += counts.reorders;
  sum.overflow_flags += counts.overflow_flags;
}

bool note_error(std::error_code error, bool retry_any) {
  Totals& all = totals();
  if (error.category() == std::system_category() || error.category() == std::generic_category()) {
    ++all.errors_seen[error.value()];
  } else {
    ++all.errors_seen[-1];  // a code of coring's own (end of stream)
  }
  const bool again = retry_any || retryable(error);
  ++(again ? all.errors_retried : all.errors_reported);
  return again;
}

namespace {

// Prints what the whole run did, once every test has run: the figures of
// docs/reliability.md come from here.
class PrintTotals : public ::testing::Environment {
 public:
  void TearDown() override {
    const Totals& all = totals();
    if (all.seeds == 0) return;
    const FaultCounts& f = all.faults;
    std::printf(
        "[fault totals] seed runs %llu; faults injected %llu: short counts %llu, errors %llu, "
        "multishot ends %llu, busy enters %llu, reordered batches %llu, overflow flags %llu\n",
        static_cast<unsigned long long>(all.seeds), static_cast<unsigned long long>(f.total()),
        static_cast<unsigned long long>(f.short_counts), static_cast<unsigned long long>(f.errors),
        static_cast<unsigned long long>(f.multishot_ends),
        static_cast<unsigned long long>(f.enter_busy), static_cast<unsigned long long>(f.reorders),
        static_cast<unsigned long long>(f.overflow_flags));
    std::printf(
        "[fault totals] bytes verified %llu, bytes reported lost %llu; errors retried %llu, "
        "reported %llu; connections %llu (%llu complete); files %llu\n",
        static_cast<unsigned long long>(all.bytes_verified),
        static_cast<unsigned long long>(all.bytes_reported),
        static_cast<unsigned long long>(all.errors_retried),
        static_cast<unsigned long long>(all.errors_reported),
        static_cast<unsigned long long>(all.connections),
        static_cast<unsigned long long>(all.connections_complete),
        static_cast<unsigned long long>(all.files));
    std::printf("[fault totals] errors seen by the workloads:");
    for (const auto& [error, times] : all.errors_seen) {
      std::printf(" %s %llu;", error < 0 ? "end-of-stream" : ::strerrorname_np(error),
                  static_cast<unsigned long long>(times));
    }
    std::printf("\n");
  }
};

[[maybe_unused]] ::testing::Environment* const print_totals =
    ::testing::AddGlobalTestEnvironment(new PrintTotals);

}  // namespace
}  // namespace coring::fault_test
