// FrameGuard: counts the coroutine frames it lives in, for runtime tests that check a
// frame was destroyed (a destroyed frame destroys its guard).
#pragma once

#include <atomic>

namespace coring::test {

class FrameGuard {
 public:
  explicit FrameGuard(std::atomic<int>& alive) : alive_(&alive) { alive_->fetch_add(1); }
  ~FrameGuard() { alive_->fetch_sub(1); }
  FrameGuard(const FrameGuard&) = delete;
  FrameGuard& operator=(const FrameGuard&) = delete;

 private:
  std::atomic<int>* alive_;
};

}  // namespace coring::test
