// Every test binary's main: GoogleTest plus a listener that fails any test which
// leaves the process with a different number of open fds than it started with.
#include <gtest/gtest.h>

#include "support.hpp"

namespace {

class FdLeakCheck : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo&) override {
    before_ = coring::ring::test::count_open_fds();
  }
  void OnTestEnd(const testing::TestInfo& info) override {
    const int after = coring::ring::test::count_open_fds();
    if (after != before_) {
      ADD_FAILURE() << info.test_suite_name() << "." << info.name() << " leaked "
                    << (after - before_) << " fd(s): " << before_ << " open before, " << after
                    << " after";
    }
  }

 private:
  int before_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new FdLeakCheck);
  return RUN_ALL_TESTS();
}
