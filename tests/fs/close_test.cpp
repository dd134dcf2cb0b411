// Every form of File::close() leaks nothing: awaited (the result is close's),
// discarded (`file.close();` without co_await, which the compiler only warns about),
// awaited later, or with the File moved or destroyed while the close task exists.
// close() hands the fd to its task at once; awaited, the task closes it on the ring,
// and destroyed unawaited it closes it with close(2).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "coring/fs/file.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::count_open_fds;
using ring::test::TempDir;

File open_plain(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << path;
  return File(fd, path);
}

TEST(FsClose, DiscardedClosesLeakNoFd) {
  TempDir dir;
  EventLoop loop;
  const int before = count_open_fds();
  for (int i = 0; i < 100; ++i) {
    File file = open_plain(dir.file("f"));
    (void)file.close();
    EXPECT_FALSE(file.is_open());
  }
  EXPECT_EQ(count_open_fds(), before) << "fds leaked by 100 discarded File closes";
}

TEST(FsClose, CloseAwaitedAfterTheFileMovedClosesItsFd) {
  TempDir dir;
  EventLoop loop;
  const int before = count_open_fds();
  File file = open_plain(dir.file("f"));
  const int fd = file.fd();
  Task<Result<void>> closing = file.close();
  File moved = std::move(file);
  EXPECT_FALSE(moved.is_open());
  EXPECT_NE(::fcntl(fd, F_GETFD), -1) << "closed before the task ran";
  Result<void> closed = loop.run(std::move(closing));
  EXPECT_TRUE(closed) << closed.message();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(count_open_fds(), before);
}

TEST(FsClose, CloseAwaitedAfterTheFileWasDestroyedClosesItsFd) {
  TempDir dir;
  EventLoop loop;
  const int before = count_open_fds();
  auto file = std::make_unique<File>(open_plain(dir.file("f")));
  const int fd = file->fd();
  Task<Result<void>> closing = file->close();
  file.reset();
  Result<void> closed = loop.run(std::move(closing));
  EXPECT_TRUE(closed) << closed.message();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(count_open_fds(), before);
}

TEST(FsClose, ErrorsOfAnAwaitedCloseNameThePath) {
  TempDir dir;
  EventLoop loop;
  File file = open_plain(dir.file("named"));
  Result<void> closed = loop.run(file.close());
  EXPECT_TRUE(closed) << closed.message();
  Result<void> again = loop.run(file.close());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::bad_file_descriptor);
  EXPECT_NE(again.message().find(dir.file("named")), std::string::npos) << again.message();
}

}  // namespace
}  // namespace coring::fs
