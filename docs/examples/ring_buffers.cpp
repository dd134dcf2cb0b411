// docs/ring.md, "Provided buffers".
//
// A BufferGroup hands the kernel a ring of equal-sized buffers; a recv that asks
// for a buffer from the group gets one picked by the kernel, named in its CQE.
// The application reads the bytes with get() and gives the buffer back with put().
// Kernels before 5.19 lack provided-buffer rings: the example then exits with 77,
// the code ctest reports as "skipped".
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include <coring/ring/buffer_ring.hpp>
#include <coring/ring/ring.hpp>

namespace ring = coring::ring;

namespace {
constexpr int exit_skipped = 77;
constexpr std::uint16_t group_id = 1;

// Receives once through the group and checks that the bytes are `expected`.
bool receive(ring::Ring& r, ring::BufferGroup& group, int fd, std::string_view expected) {
  if (group.recv(/*user_data=*/7, fd, 0) == nullptr) return false;
  if (!r.submit()) return false;
  auto cqe = r.copy_cqe();
  if (!cqe || cqe->res < 0) return false;
  auto bytes = group.get(*cqe);
  if (!bytes) return false;
  const std::string_view got(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  std::printf("buffer %u: \"%.*s\"\n", cqe->buffer_id(), static_cast<int>(got.size()), got.data());
  // Done with the bytes: the buffer goes back to the kernel (or, under incremental
  // consumption, stays with it until its last piece).
  return got == expected && group.put(*cqe).ok();
}
}  // namespace

int main() {
  ring::Ring r(8);

  // 8 buffers of 4 KiB, group 1. Tries incremental consumption (6.12), then whole buffers.
  auto group = ring::BufferGroup::create(r, group_id, 4096, 8);
  if (!group) {
    std::printf("no provided-buffer ring: %s\n", group.error().message().c_str());
    return exit_skipped;
  }
  std::printf("buffer group %u: %u x %u bytes, incremental: %s\n", group->group_id(),
              group->count(), group->buffer_size(), group->incremental() ? "yes" : "no");

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 1;
  bool ok = true;
  for (std::string_view message : {"hello", "provided buffers"}) {
    ok = ok &&
         ::write(fds[0], message.data(), message.size()) == static_cast<ssize_t>(message.size());
    ok = ok && receive(r, *group, fds[1], message);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return ok ? 0 : 1;
}
