// docs/tuning.md: the loop's knobs, LoopOptions, and what the kernel made of them.
//
// Each configuration sets up a loop, runs 64 coroutines that each await 100 NOPs and a
// short sleep, and prints the ring it got: SQ and CQ sizes and setup flags. The default
// asks for SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | TASKRUN_FLAG and falls back
// to what the kernel accepts; explicit setup_flags are taken as they are, with no
// fallback, so a kernel (or a sandbox) that refuses them makes the constructor throw —
// SQPOLL is then reported as unavailable rather than failing the example.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <vector>

#include <coring/ring/abi.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>
#include <coring/runtime/when_all.hpp>

using namespace std::chrono_literals;
namespace setup = coring::ring::setup;

namespace {

coring::Task<int> worker() {
  int completed = 0;
  for (int i = 0; i < 100; ++i) {
    if (co_await coring::nop()) ++completed;
  }
  if (co_await coring::sleep_for(1ms)) ++completed;
  co_return completed;
}

// Runs the workload on a loop built from `options`; false if it did not complete.
bool exercise(const char* name, const coring::LoopOptions& options, bool may_be_refused) {
  std::optional<coring::EventLoop> loop;
  try {
    loop.emplace(options);
  } catch (const std::exception& e) {
    std::printf("%-22s unavailable here: %s\n", name, e.what());
    return may_be_refused;
  }
  std::vector<coring::Task<int>> tasks;
  for (int i = 0; i < 64; ++i) tasks.push_back(worker());
  const std::vector<int> done = loop->run(coring::when_all(std::move(tasks)));
  int total = 0;
  for (int n : done) total += n;
  const auto& ring = loop->ring();
  const std::uint32_t flags = ring.flags();
  std::printf("%-22s sq=%-5u cq=%-6u defer_taskrun=%d coop_taskrun=%d sqpoll=%d: %d ops\n", name,
              ring.sq_entries(), ring.cq_entries(), (flags & setup::defer_taskrun) != 0,
              (flags & setup::coop_taskrun) != 0, (flags & setup::sqpoll) != 0, total);
  return total == 64 * 101;
}

}  // namespace

int main() {
  bool ok = true;

  ok &= exercise("default", {}, false);  // 256 SQ entries, CQ twice that

  coring::LoopOptions server;  // a server's loop: a turn's burst goes out in one enter
  server.entries = 4096;
  ok &= exercise("server (4096/8192)", server, false);

  coring::LoopOptions tiny;  // a 4-entry CQ: completions beyond it wait in the overflow list
  tiny.entries = 2;
  tiny.cq_entries = 4;
  ok &= exercise("tiny CQ (2/4)", tiny, false);

  coring::LoopOptions coop;  // what the default falls back to before 6.1
  coop.setup_flags = setup::coop_taskrun | setup::taskrun_flag;
  ok &= exercise("coop_taskrun only", coop, false);

  coring::LoopOptions sqpoll;  // a kernel thread polls the SQ; no DEFER_TASKRUN with it
  sqpoll.setup_flags = setup::sqpoll | setup::single_issuer;
  ok &= exercise("sqpoll", sqpoll, true);

  return ok ? 0 : 1;
}
