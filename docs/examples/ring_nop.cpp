// docs/ring.md, "A complete example": set up a ring, submit one NOP, check its CQE.
//
// The smallest round trip through the ring layer: get_sqe() hands out a slot,
// prep_nop() fills it, user_data tags it, submit() publishes it to the kernel,
// and copy_cqe() waits for the completion and copies it out.
#include <cstdio>

#include <coring/ring/prep.hpp>
#include <coring/ring/ring.hpp>

namespace ring = coring::ring;

int main() {
  auto created = ring::Ring::create(8);
  if (!created) {
    // The message says which call failed and what to do (for EPERM: the
    // kernel.io_uring_disabled sysctl or a seccomp filter).
    std::fprintf(stderr, "ring setup failed: %s\n", created.error().message().c_str());
    return 1;
  }
  ring::Ring& r = *created;

  ring::Sqe* sqe = r.get_sqe();  // never null here: the queue is empty
  ring::prep_nop(*sqe);
  sqe->user_data = 42;

  if (auto submitted = r.submit(); !submitted) {
    std::fprintf(stderr, "submit failed: %s\n", submitted.error().message().c_str());
    return 1;
  }
  auto cqe = r.copy_cqe();
  if (!cqe) {
    std::fprintf(stderr, "waiting for the CQE failed: %s\n", cqe.error().message().c_str());
    return 1;
  }
  if (cqe->user_data != 42 || cqe->res != 0) {
    std::fprintf(stderr, "unexpected CQE: user_data %llu, res %d\n",
                 static_cast<unsigned long long>(cqe->user_data), cqe->res);
    return 1;
  }
  std::printf("NOP completed: user_data %llu, res %d\n",
              static_cast<unsigned long long>(cqe->user_data), cqe->res);
  return 0;
}
