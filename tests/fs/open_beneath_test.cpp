// File::open_beneath: paths inside the directory open (nested, through a symlink that
// stays inside, created with O_CREAT), and every way out is refused with EXDEV and a
// message naming the path: `..` above the directory, an absolute path, a symlink that
// leads out, an absolute symlink; no_symlinks refuses every symlink with ELOOP; a
// /proc magic link is refused. No fd is left behind (the test main counts them).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <vector>

#include "coring/fs/file.hpp"
#include "coring/fs/probe.hpp"
#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::TempDir;
using namespace test;

// root/ holds a/b/deep.txt, top.txt, in -> a/b (inside), out -> ../secret (outside),
// abs -> /etc/hostname (absolute), loop -> loop; secret sits beside root/.
class OpenBeneath : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.file("root");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/a/b").c_str(), 0755), 0);
    write_plain(root_ + "/a/b/deep.txt", pattern(100, 1));
    write_plain(root_ + "/top.txt", pattern(10, 2));
    write_plain(tmp_.file("secret"), pattern(10, 3));
    ASSERT_EQ(::symlink("a/b", (root_ + "/in").c_str()), 0);
    ASSERT_EQ(::symlink("../secret", (root_ + "/out").c_str()), 0);
    ASSERT_EQ(::symlink("/etc/hostname", (root_ + "/abs").c_str()), 0);
  }

  // Runs `body` with the directory open, when the backend has openat2.
  template <typename Body>
  void with_root(Body body) {
    run_in_loop([&]() -> Task<void> {
      if (!supports(ring::Op::openat2)) CO_SKIP("IORING_OP_OPENAT2 needs Linux 5.6");
      Result<File> dir = co_await File::open(root_, O_RDONLY | O_DIRECTORY);
      CO_ASSERT_OK(dir);
      co_await body(*dir);
    });
  }

  TempDir tmp_;
  std::string root_;
};

TEST_F(OpenBeneath, PathsInsideOpen) {
  with_root([&](const File& dir) -> Task<void> {
    for (const char* path : {"top.txt", "a/b/deep.txt", "./a/../a/b/deep.txt", "in/deep.txt"}) {
      Result<File> file = co_await File::open_beneath(dir, path);
      CO_ASSERT_OK(file);
      EXPECT_NE(::fcntl(file->fd(), F_GETFD) & FD_CLOEXEC, 0);
      EXPECT_EQ(file->path(), root_ + "/" + path);
      struct stat st {};
      EXPECT_EQ(::fstat(file->fd(), &st), 0);
      EXPECT_EQ(st.st_size, std::string(path).find("deep") != std::string::npos ? 100 : 10) << path;
    }
    // A nested directory as the base, and a file created beneath it with its mode.
    Result<File> nested = co_await File::open_beneath(dir, "a", O_RDONLY | O_DIRECTORY);
    CO_ASSERT_OK(nested);
    Result<File> created =
        co_await File::open_beneath(*nested, "b/new.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
    CO_ASSERT_OK(created);
    EXPECT_EQ(stat_plain(root_ + "/a/b/new.txt").st_mode & 0777, 0600U);
  });
}

TEST_F(OpenBeneath, EveryWayOutIsExdev) {
  with_root([&](const File& dir) -> Task<void> {
    for (const std::string& path : {std::string("../secret"), std::string("a/../../secret"),
                                    tmp_.file("secret"), std::string("out"), std::string("abs")}) {
      Result<File> file = co_await File::open_beneath(dir, path);
      CO_ASSERT(!file);
      EXPECT_EQ(file.error(), std::errc::cross_device_link) << path << ": " << file.message();
      EXPECT_NE(file.message().find("leads out of the directory"), std::string::npos);
      EXPECT_NE(file.message().find(path), std::string::npos) << file.message();
    }
    // `..` that stays beneath is fine; at the top of `dir` it is refused.
    Result<File> nested = co_await File::open_beneath(dir, "a", O_RDONLY | O_DIRECTORY);
    CO_ASSERT_OK(nested);
    Result<File> up_inside = co_await File::open_beneath(*nested, "../top.txt");
    EXPECT_EQ(up_inside.error(), std::errc::cross_device_link) << up_inside.message();
  });
}

TEST_F(OpenBeneath, NoSymlinksRefusesEverySymlink) {
  with_root([&](const File& dir) -> Task<void> {
    Result<File> file =
        co_await File::open_beneath(dir, "in/deep.txt", O_RDONLY, 0, {.no_symlinks = true});
    CO_ASSERT(!file);
    EXPECT_EQ(file.error(), std::errc::too_many_symbolic_link_levels) << file.message();
    Result<File> plain =
        co_await File::open_beneath(dir, "a/b/deep.txt", O_RDONLY, 0, {.no_symlinks = true});
    EXPECT_TRUE(plain) << plain.message();
  });
}

TEST_F(OpenBeneath, MagicLinksAreRefused) {
  run_in_loop([&]() -> Task<void> {
    if (!supports(ring::Op::openat2)) CO_SKIP("IORING_OP_OPENAT2 needs Linux 5.6");
    Result<File> proc = co_await File::open("/proc/self", O_RDONLY | O_DIRECTORY);
    CO_ASSERT_OK(proc);
    // /proc/self/fd/N is a magic link to the fd's file, wherever that is.
    Result<File> file = co_await File::open_beneath(*proc, "fd/" + std::to_string(proc->fd()));
    CO_ASSERT(!file);
    EXPECT_TRUE(file.error() == std::errc::too_many_symbolic_link_levels ||
                file.error() == std::errc::cross_device_link)
        << file.message();
  });
}

TEST_F(OpenBeneath, MissingFileNamesThePath) {
  with_root([&](const File& dir) -> Task<void> {
    Result<File> file = co_await File::open_beneath(dir, "a/none.txt");
    CO_ASSERT(!file);
    EXPECT_EQ(file.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(file.message(), "open_beneath '" + root_ + "/a/none.txt': No such file or directory");
  });
}

}  // namespace
}  // namespace coring::fs
