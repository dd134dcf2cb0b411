// docs/ring.md, "Errors" and "Probing the kernel".
//
// Errors on the I/O path are values: Result<T> holds a T or a std::error_code.
// Arguments coring rejects itself carry coring::ring::Errc; a failed system call
// carries its errno in the category of that call (setup, enter, register), whose
// message says what to do. All of them compare equal to std::errc conditions.
// Only the throwing constructor turns a setup failure into std::system_error.
#include <cerrno>
#include <cstdio>
#include <system_error>

#include <coring/ring/prep.hpp>
#include <coring/ring/probe.hpp>
#include <coring/ring/ring.hpp>

namespace ring = coring::ring;

int main() {
  // A value: 3 entries is not a power of two; no system call is made.
  auto bad = ring::Ring::create(3);
  if (bad || bad.error() != ring::Errc::entries_not_power_of_two) return 1;
  std::printf("create(3): [%s] %s\n", bad.error().category().name(), bad.error().message().c_str());

  // An exception: the throwing constructor, for callers that treat a ring that
  // cannot be set up as a configuration failure.
  try {
    ring::Ring too_large(ring::Ring::max_entries * 2);
    return 1;
  } catch (const std::system_error& e) {
    if (e.code() != ring::Errc::entries_too_large) return 1;
    if (e.code() != std::errc::invalid_argument) return 1;  // the portable condition
    std::printf("Ring(65536) threw: %s\n", e.what());
  }

  ring::Ring r(8);

  // Probe before relying on an opcode newer than the kernel you know you run on.
  auto probe = r.get_probe();
  if (!probe) {
    std::fprintf(stderr, "probe failed: %s\n", probe.error().message().c_str());
    return 1;
  }
  const bool has_socket = probe->is_supported(ring::Op::socket);  // 5.19
  const bool has_bind = probe->is_supported(ring::Op::bind);      // 6.11
  std::printf("last opcode %u; socket %s, bind %s\n", static_cast<unsigned>(probe->last_op()),
              has_socket ? "yes" : "no", has_bind ? "yes" : "no");

  // A failed operation is a CQE with res = -errno: here, close(2) of an fd that
  // is not open. Cqe::error() gives the positive errno.
  ring::Sqe* sqe = r.get_sqe();
  ring::prep_close(*sqe, 1 << 20);
  sqe->user_data = 1;
  if (!r.submit()) return 1;
  auto cqe = r.copy_cqe();
  if (!cqe || cqe->error() != EBADF) return 1;
  const std::error_code closed(cqe->error(), std::system_category());
  std::printf("close(bad fd): res %d, %s\n", cqe->res, closed.message().c_str());

  // A failed registration: unregistering files when none are registered gives
  // ENXIO in the io_uring_register category, with advice in its message.
  auto unregistered = r.unregister_files();
  if (unregistered || unregistered.error() != std::errc::no_such_device_or_address) return 1;
  std::printf("unregister_files(): [%s] %s\n", unregistered.error().category().name(),
              unregistered.error().message().c_str());
  return 0;
}
