// The smallest end-to-end check: a ring comes up, a NOP goes through it and
// comes back with its user_data, and the ring goes down again.
#include "support.hpp"

namespace coring::ring::test {
namespace {

TEST(RingSmoke, NopRoundTrip) {
  Ring ring(4);
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_nop(sqe);
  sqe.user_data = 0x1234;
  const Cqe cqe = submit_and_get_cqe(ring);
  EXPECT_EQ(cqe.user_data, 0x1234U);
  EXPECT_EQ(cqe.res, 0);
  EXPECT_EQ(ring.cq_ready(), 0U);
}

}  // namespace
}  // namespace coring::ring::test
