// docs/ring.md, "Batches, waiting and the registered ring fd".
//
// Queues a batch of NOPs (as many as fit), submits them with one system call,
// and reaps their CQEs in batches with copy_cqes(). Then waits on an empty ring
// with a timeout and gets ETIME back as a value, not an exception. The ring fd
// is registered with this thread first, so each io_uring_enter(2) skips the
// fd table lookup.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <system_error>

#include <coring/ring/prep.hpp>
#include <coring/ring/ring.hpp>

namespace ring = coring::ring;

int main() {
  auto created = ring::Ring::create(64);
  if (!created) {
    std::fprintf(stderr, "ring setup failed: %s\n", created.error().message().c_str());
    return 1;
  }
  ring::Ring& r = *created;

  // Optional (5.18): an unregistered ring works the same, one fd lookup slower.
  if (auto registered = r.register_ring_fd(); !registered) {
    std::printf("ring fd not registered (%s); going on without\n",
                registered.error().message().c_str());
  }

  // Fill the submission queue: get_sqe() returns nullptr once it is full.
  std::uint32_t queued = 0;
  while (ring::Sqe* sqe = r.get_sqe()) {
    ring::prep_nop(*sqe);
    sqe->user_data = queued++;
  }

  // One system call for the whole batch; wait for all of it to complete.
  auto submitted = r.submit_and_wait(queued);
  if (!submitted) {
    std::fprintf(stderr, "submit failed: %s\n", submitted.error().message().c_str());
    return 1;
  }

  // Reap in batches of up to 16: each copy_cqes() releases its batch with one store.
  std::array<ring::Cqe, 16> cqes{};
  std::uint64_t user_data_sum = 0;
  std::uint32_t reaped = 0;
  while (reaped < queued) {
    auto copied = r.copy_cqes(cqes, 1);
    if (!copied) {
      std::fprintf(stderr, "copy_cqes failed: %s\n", copied.error().message().c_str());
      return 1;
    }
    for (std::uint32_t i = 0; i < *copied; ++i) {
      if (cqes[i].res != 0) return 1;
      user_data_sum += cqes[i].user_data;
    }
    reaped += *copied;
  }
  if (user_data_sum != std::uint64_t{queued} * (queued - 1) / 2) return 1;
  std::printf("%u NOPs submitted in one call and reaped in batches\n", queued);

  // Nothing is in flight, so a bounded wait times out: ETIME, as a value (5.11+).
  auto waited = r.wait_cqes(1, std::chrono::milliseconds(10));
  if (waited.error() == std::errc::stream_timeout) {
    std::printf("wait_cqes timed out after 10 ms, as expected\n");
  } else if (waited.error() == std::errc::not_supported) {
    std::printf("this kernel has no IORING_FEAT_EXT_ARG (5.11): no timed waits\n");
  } else {
    std::fprintf(stderr, "unexpected wait result: %s\n", waited.error().message().c_str());
    return 1;
  }
  return 0;
}
