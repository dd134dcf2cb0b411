// Every test binary's main: GoogleTest plus a listener that fails any test which
// leaves the process with a different number of open fds than it started with.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "support.hpp"

namespace {

class FdLeakCheck : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo&) override { before_ = coring::ring::test::open_fds(); }
  void OnTestEnd(const testing::TestInfo& info) override {
    // An fd of another thread's may be open for an instant: the sanitizer runtimes
    // probe memory by writing it into a pipe they open and close at once (clang's
    // UBSan on a virtual call, in a blocking-pool worker that is just starting, say).
    // A leaked fd is still open a second later; such a pipe is not. One caught as the
    // test started is left out of `before` (settled()).
    std::map<int, std::string> after = coring::ring::test::open_fds();
    std::map<int, std::string> before = settled(before_, after);
    for (int retry = 0; retry < 50 && after.size() != before.size(); ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      after = coring::ring::test::open_fds();
      before = settled(before_, after);
    }
    if (after.size() == before.size()) return;
    // Which ones: each fd open now and not before (+) or the other way (-), with what
    // it refers to.
    std::string changed;
    for (const auto& [fd, target] : after) {
      if (!before.contains(fd)) changed += " +" + std::to_string(fd) + "=" + target;
    }
    for (const auto& [fd, target] : before) {
      if (!after.contains(fd)) changed += " -" + std::to_string(fd) + "=" + target;
    }
    ADD_FAILURE() << info.test_suite_name() << "." << info.name() << " leaked "
                  << (static_cast<int>(after.size()) - static_cast<int>(before.size()))
                  << " fd(s): " << before.size() << " open before, " << after.size()
                  << " after:" << changed;
  }

 private:
  // `start` without such a pipe caught open as the test started: both of its ends are
  // gone by now (a test's own pipe that it closed again was not in `start`).
  static std::map<int, std::string> settled(const std::map<int, std::string>& start,
                                            const std::map<int, std::string>& now) {
    std::map<std::string, int> gone_ends;  // per pipe, its ends in `start` gone from `now`
    for (const auto& [fd, target] : start) {
      const auto there = now.find(fd);
      if (target.starts_with("pipe:") && (there == now.end() || there->second != target)) {
        ++gone_ends[target];
      }
    }
    std::map<int, std::string> kept;
    for (const auto& [fd, target] : start) {
      const auto gone = gone_ends.find(target);
      if (gone == gone_ends.end() || gone->second < 2) kept.emplace(fd, target);
    }
    return kept;
  }

  std::map<int, std::string> before_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new FdLeakCheck);
  return RUN_ALL_TESTS();
}
