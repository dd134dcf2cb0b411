// docs/runtime.md, "The life of an operation": io() with any prepared SQE, and an
// operation of your own in a few lines.
//
// The awaitable io() returns is the operation record: it lives in the coroutine's frame,
// its address is the SQE's user_data, and the coroutine resumes after the loop has
// reaped its CQE. Errors are values: IoResult carries res and error().
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <span>
#include <system_error>

#include <coring/ring/prep.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>

namespace ring = coring::ring;
using coring::IoResult;
using coring::Task;

// A new operation is a function returning io(prep): the lambda fills the SQE when the
// loop has room for it. The buffer must outlive the co_await, which a buffer owned by
// the awaiting coroutine does.
auto read_some(int fd, std::span<std::byte> buffer) {
  return coring::io([fd, buffer](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buffer, 0); });
}

auto write_some(int fd, std::span<const std::byte> data) {
  return coring::io([fd, data](ring::Sqe& sqe) { ring::prep_write(sqe, fd, data, 0); });
}

Task<int> echo_through_pipe(int read_fd, int write_fd) {
  const char text[] = "through the ring";
  const IoResult written = co_await write_some(write_fd, std::as_bytes(std::span(text)));
  if (!written) co_return -1;

  std::array<std::byte, 64> buffer{};
  const IoResult got = co_await read_some(read_fd, buffer);
  if (!got) {
    std::fprintf(stderr, "read: %s\n", got.error().message().c_str());
    co_return -1;
  }
  std::printf("read %u bytes: %s\n", got.value(), reinterpret_cast<const char*>(buffer.data()));
  co_return std::memcmp(buffer.data(), text, sizeof(text)) == 0 ? 0 : -1;
}

Task<int> read_bad_fd() {
  std::array<std::byte, 8> buffer{};
  const IoResult r = co_await read_some(-1, buffer);
  // No exception: the kernel's -EBADF arrives as a value.
  std::printf("read(-1): res %d, %s\n", r.res, r.error().message().c_str());
  co_return r.error() == std::errc::bad_file_descriptor ? 0 : -1;
}

int main() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 1;
  coring::EventLoop loop;
  int status = loop.run(echo_through_pipe(fds[0], fds[1]));
  if (status == 0) status = loop.run(read_bad_fd());
  ::close(fds[0]);
  ::close(fds[1]);
  return status == 0 ? 0 : 1;
}
