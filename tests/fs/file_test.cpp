// File: open and its errors, positioned and vectored reads and writes, short reads at
// end of file, sync, fallocate, truncate (ring op and blocking-pool fallback), statx,
// close, offsets beyond 4 GiB, and many coroutines reading one file at once.
#include "coring/fs/file.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "coring/fs/probe.hpp"
#include "coring/runtime/when_all.hpp"
#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::TempDir;
using namespace test;
using namespace std::chrono_literals;

constexpr std::uint64_t gib = std::uint64_t{1} << 30;

TEST(FsOpen, CreatesWithCloexecAndTheGivenMode) {
  TempDir dir;
  const auto old_umask = ::umask(022);
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("new"), O_RDWR | O_CREAT | O_EXCL, 0640);
    CO_ASSERT_OK(file);
    EXPECT_TRUE(file->is_open());
    EXPECT_EQ(file->path(), dir.file("new"));
    EXPECT_NE(::fcntl(file->fd(), F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_EQ(stat_plain(dir.file("new")).st_mode & 07777, 0640U);
  });
  ::umask(old_umask);
}

TEST(FsOpen, MissingFileIsEnoentAndTheMessageNamesThePath) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("missing"));
    CO_ASSERT(!file);
    EXPECT_EQ(file.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(file.failure().path(), dir.file("missing"));
    EXPECT_EQ(file.message(), "open '" + dir.file("missing") + "': No such file or directory");
    try {
      (void)file.value();
      ADD_FAILURE() << "value() of an error did not throw";
    } catch (const FilesystemError& e) {
      EXPECT_EQ(std::string(e.what()), file.message());
      EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    }
  });
}

TEST(FsOpen, ExclusiveCreateOfAnExistingFileIsEexist) {
  TempDir dir;
  write_plain(dir.file("there"), pattern(10));
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("there"), O_WRONLY | O_CREAT | O_EXCL);
    EXPECT_EQ(file.error(), std::errc::file_exists);
  });
}

TEST(FsOpen, DirectoryForWritingIsEisdir) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.path(), O_WRONLY);
    EXPECT_EQ(file.error(), std::errc::is_a_directory);
  });
}

TEST(FsOpen, FileWithoutPermissionIsEacces) {
  TempDir dir;
  write_plain(dir.file("secret"), pattern(10), 0, 0600);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // nobody may look inside, not read
  const int status = as_unprivileged([&] {
    EventLoop loop;
    return loop.run([&]() -> Task<int> {
      Result<File> file = co_await File::open(dir.file("secret"));
      co_return file.error() == std::errc::permission_denied ? 0 : 1;
    }());
  });
  EXPECT_EQ(status, 0);
}

TEST(FsFile, WriteAtThenReadAtRoundTrips) {
  TempDir dir;
  const auto data = pattern(10000);
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("f"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    Result<std::size_t> written = co_await file->write_at(data, 100);
    CO_ASSERT_OK(written);
    EXPECT_EQ(*written, data.size());
    std::vector<std::byte> back(data.size());
    Result<std::size_t> read = co_await file->read_at(back, 100);
    CO_ASSERT_OK(read);
    EXPECT_EQ(*read, data.size());
    EXPECT_EQ(back, data);
  });
  const auto on_disk = read_plain(dir.file("f"));
  ASSERT_EQ(on_disk.size(), 10100U);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), on_disk.begin() + 100));
}

TEST(FsFile, ReadNearEndOfFileIsShortAndAtEndIsZero) {
  TempDir dir;
  write_plain(dir.file("f"), pattern(1000));
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("f"));
    CO_ASSERT_OK(file);
    std::array<std::byte, 100> buffer{};
    Result<std::size_t> tail = co_await file->read_at(buffer, 990);
    CO_ASSERT_OK(tail);
    EXPECT_EQ(*tail, 10U);
    EXPECT_EQ(buffer[9], pattern_byte(999));
    Result<std::size_t> end = co_await file->read_at(buffer, 1000);
    CO_ASSERT_OK(end);
    EXPECT_EQ(*end, 0U);
    Result<std::size_t> beyond = co_await file->read_at(buffer, 5000);
    CO_ASSERT_OK(beyond);
    EXPECT_EQ(*beyond, 0U);
  });
}

TEST(FsFile, ReadAllReportsEndOfFileWithAShortCount) {
  TempDir dir;
  const auto data = pattern(300000);
  write_plain(dir.file("f"), data);
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("f"));
    CO_ASSERT_OK(file);
    std::vector<std::byte> buffer(400000);
    Result<std::size_t> n = co_await file->read_all(buffer, 0);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, data.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), buffer.begin()));
    Result<std::size_t> exact = co_await file->read_all(std::span(buffer).first(1000), 299500);
    CO_ASSERT_OK(exact);
    EXPECT_EQ(*exact, 500U);
  });
}

// A pipe as two Files, its read end and its write end (a stream: offsets are ignored).
struct PipeFiles {
  File reader;
  File writer;
};
PipeFiles pipe_files() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
  return {File(fds[0], "pipe-read"), File(fds[1], "pipe-write")};
}

// A pipe hands out what has been written so far: read_all must keep reading until its
// buffer is full, across the writer's pieces.
TEST(FsFile, ReadAllContinuesShortReadsFromAPipe) {
  PipeFiles pipe = pipe_files();
  File& reader = pipe.reader;
  File& writer = pipe.writer;
  const auto data = pattern(200000);  // more than a pipe holds: writes are short too
  std::vector<std::byte> got(data.size());
  run_in_loop([&]() -> Task<void> {
    // Offsets past 0 are ignored by a pipe, which is a stream.
    Result<std::size_t> n = std::size_t{0};
    auto read_side = [&]() -> Task<void> { n = co_await reader.read_all(got, 0); };
    auto write_side = [&]() -> Task<void> {
      Result<void> w = co_await writer.write_all(data, 0);
      EXPECT_TRUE(w) << w.message();
    };
    co_await when_all(read_side(), write_side());
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, data.size());
  });
  EXPECT_EQ(got, data);
}

// read_all is one request operation: a deadline bounds the whole read (a pipe that got
// 3 of 8 bytes), a timeout each read, and either cutting it short is ETIMEDOUT.
TEST(FsFile, ReadAllDeadlineAndTimeoutEndAStalledReadWithEtimedout) {
  PipeFiles pipe = pipe_files();
  File& reader = pipe.reader;
  File& writer = pipe.writer;
  ASSERT_EQ(::write(writer.fd(), "abc", 3), 3);
  std::vector<std::byte> got(8);
  run_in_loop([&]() -> Task<void> {
    const auto start = std::chrono::steady_clock::now();
    Result<std::size_t> whole = co_await reader.read_all(got, 0).with_deadline(50ms);
    EXPECT_FALSE(whole);
    EXPECT_EQ(whole.error(), std::errc::timed_out);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
    Result<std::size_t> each = co_await reader.read_all(got, 0).with_timeout(50ms);
    EXPECT_FALSE(each);
    EXPECT_EQ(each.error(), std::errc::timed_out);
  });
}

// A stop token that fired before the co_await: nothing is submitted, and the result is
// ECANCELED (not a read of 0 bytes, not a write that made no progress).
TEST(FsFile, ReadAllAndWriteAllWithAStoppedTokenAreCancelled) {
  PipeFiles pipe = pipe_files();
  File& reader = pipe.reader;
  File& writer = pipe.writer;
  ASSERT_EQ(::write(writer.fd(), "abc", 3), 3);
  std::stop_source stop;
  stop.request_stop();
  std::vector<std::byte> got(3);
  run_in_loop([&]() -> Task<void> {
    Result<std::size_t> read = co_await reader.read_all(got, 0).with_stop(stop.get_token());
    EXPECT_FALSE(read);
    EXPECT_EQ(read.error(), std::errc::operation_canceled);
    Result<void> wrote = co_await writer.write_all(got, 0).with_stop(stop.get_token());
    EXPECT_FALSE(wrote);
    EXPECT_EQ(wrote.error(), std::errc::operation_canceled);
  });
  // The read took nothing from the pipe.
  std::array<char, 8> left{};
  EXPECT_EQ(::read(reader.fd(), left.data(), left.size()), 3);
}

TEST(FsFile, VectoredWriteAndReadScatterAndGather) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("v"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    std::string a = "alpha-", b = "beta-", c = "gamma";
    std::array<iovec, 3> out{iovec{a.data(), a.size()}, iovec{b.data(), b.size()},
                             iovec{c.data(), c.size()}};
    Result<std::size_t> written = co_await file->write_vectored_at(out, 7);
    CO_ASSERT_OK(written);
    EXPECT_EQ(*written, 16U);
    std::array<char, 8> first{};
    std::array<char, 8> second{};
    std::array<iovec, 2> in{iovec{first.data(), first.size()}, iovec{second.data(), 8}};
    Result<std::size_t> read = co_await file->read_vectored_at(in, 7);
    CO_ASSERT_OK(read);
    EXPECT_EQ(*read, 16U);
    EXPECT_EQ(std::string(first.data(), 8), "alpha-be");
    EXPECT_EQ(std::string(second.data(), 8), "ta-gamma");
  });
}

TEST(FsFile, ReadingAFileOpenedWriteOnlyIsEbadfNamingThePath) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("w"), O_WRONLY | O_CREAT);
    CO_ASSERT_OK(file);
    std::array<std::byte, 8> buffer{};
    Result<std::size_t> n = co_await file->read_at(buffer, 0);
    CO_ASSERT(!n);
    EXPECT_EQ(n.error(), std::errc::bad_file_descriptor);
    EXPECT_EQ(n.message(), "read '" + dir.file("w") + "': Bad file descriptor");
  });
}

// /dev/full refuses every write with ENOSPC, as a full disk does.
TEST(FsFile, AWriteToAFullDeviceIsEnospcNamingIt) {
  run_in_loop([&]() -> Task<void> {
    Result<File> full = co_await File::open("/dev/full", O_WRONLY);
    if (!full) CO_SKIP("no /dev/full: " + full.message());
    Result<void> written = co_await full->write_all(pattern(4096), 0);
    CO_ASSERT(!written);
    EXPECT_EQ(written.error(), std::errc::no_space_on_device);
    EXPECT_EQ(written.message(), "write '/dev/full': No space left on device");
  });
}

TEST(FsFile, SyncAndDatasyncSucceedOnAFileAndFailOnAPipe) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  File pipe_end(fds[1], "pipe");
  ::close(fds[0]);
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("s"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    CO_ASSERT_OK(co_await file->write_at(pattern(4096), 0));
    Result<void> synced = co_await file->sync();
    EXPECT_TRUE(synced) << synced.message();
    Result<void> datasynced = co_await file->datasync();
    EXPECT_TRUE(datasynced) << datasynced.message();
    Result<void> on_pipe = co_await pipe_end.sync();
    EXPECT_EQ(on_pipe.error(), std::errc::invalid_argument);
    EXPECT_EQ(on_pipe.failure().operation(), std::string("sync"));
  });
}

TEST(FsFile, AllocateReservesSpaceAndExtendsUnlessKeepSize) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("a"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    CO_ASSERT_OK(co_await file->allocate(0, 1 << 20));
    EXPECT_EQ(stat_plain(dir.file("a")).st_size, 1 << 20);
    EXPECT_GE(stat_plain(dir.file("a")).st_blocks * 512, 1 << 20);
    CO_ASSERT_OK(co_await file->allocate(1 << 20, 1 << 20, FALLOC_FL_KEEP_SIZE));
    EXPECT_EQ(stat_plain(dir.file("a")).st_size, 1 << 20);
    EXPECT_GE(stat_plain(dir.file("a")).st_blocks * 512, 2 << 20);
    Result<File> read_only = co_await File::open(dir.file("a"));
    CO_ASSERT_OK(read_only);
    Result<void> refused = co_await read_only->allocate(0, 4096);
    EXPECT_EQ(refused.error(), std::errc::bad_file_descriptor);
  });
}

Task<void> check_truncate(const TempDir& dir, bool on_pool) {
  Result<File> file = co_await File::open(dir.file("t"), O_RDWR | O_CREAT | O_TRUNC);
  CO_ASSERT_OK(file);
  CO_ASSERT_OK(co_await file->write_at(pattern(10000), 0));
  auto truncate = [&](std::uint64_t length) {
    return on_pool ? detail::truncate_on_pool(*file, length) : file->truncate(length);
  };
  CO_ASSERT_OK(co_await truncate(100));
  EXPECT_EQ(stat_plain(dir.file("t")).st_size, 100);
  CO_ASSERT_OK(co_await truncate(5 * gib));  // extends with a hole
  EXPECT_EQ(static_cast<std::uint64_t>(stat_plain(dir.file("t")).st_size), 5 * gib);
  Result<File> read_only = co_await File::open(dir.file("t"));
  CO_ASSERT_OK(read_only);
  // Not a ?: with a co_await in each branch: GCC 12 destroys the result of such an
  // expression twice.
  Task<Result<void>> refusing =
      on_pool ? detail::truncate_on_pool(*read_only, 0) : read_only->truncate(0);
  Result<void> refused = co_await std::move(refusing);
  CO_ASSERT(!refused);
  EXPECT_TRUE(refused.error() == std::errc::invalid_argument ||
              refused.error() == std::errc::bad_file_descriptor)
      << refused.message();
  EXPECT_EQ(refused.failure().path(), dir.file("t"));
}

TEST(FsFile, TruncateWithTheRingOperation) {
  if (!supports(ring::Op::ftruncate)) GTEST_SKIP() << "kernel lacks IORING_OP_FTRUNCATE (6.9)";
  TempDir dir;
  run_in_loop([&] { return check_truncate(dir, false); });
}

TEST(FsFile, TruncateOnTheBlockingPool) {
  TempDir dir;
  run_in_loop([&] { return check_truncate(dir, true); });
}

TEST(FsFile, StatDescribesTheOpenFile) {
  TempDir dir;
  write_plain(dir.file("st"), pattern(12345), 0, 0604);
  ASSERT_EQ(::chmod(dir.file("st").c_str(), 0604), 0);
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("st"));
    CO_ASSERT_OK(file);
    Result<Stat> st = co_await file->stat();
    CO_ASSERT_OK(st);
    EXPECT_EQ(st->size(), 12345U);
    EXPECT_TRUE(st->is_regular());
    EXPECT_FALSE(st->is_directory());
    EXPECT_EQ(st->permissions(), 0604U);
    EXPECT_EQ(st->links(), 1U);
    EXPECT_EQ(st->inode(), stat_plain(dir.file("st")).st_ino);
  });
}

TEST(FsFile, CloseClosesOnTheRingAndASecondCloseIsEbadf) {
  TempDir dir;
  const int before = ring::test::count_open_fds();
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("c"), O_WRONLY | O_CREAT);
    CO_ASSERT_OK(file);
    const int fd = file->fd();
    Result<void> closed = co_await file->close();
    EXPECT_TRUE(closed) << closed.message();
    EXPECT_FALSE(file->is_open());
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
    Result<void> again = co_await file->close();
    EXPECT_EQ(again.error(), std::errc::bad_file_descriptor);
  });
  EXPECT_EQ(ring::test::count_open_fds(), before);
}

TEST(FsFile, DestructorAndMoveAssignmentCloseTheFd) {
  TempDir dir;
  write_plain(dir.file("a"), pattern(1));
  write_plain(dir.file("b"), pattern(1));
  const int before = ring::test::count_open_fds();
  run_in_loop([&]() -> Task<void> {
    Result<File> a = co_await File::open(dir.file("a"));
    Result<File> b = co_await File::open(dir.file("b"));
    CO_ASSERT_OK(a);
    CO_ASSERT_OK(b);
    const int a_fd = a->fd();
    *a = std::move(*b);  // closes a's fd
    EXPECT_EQ(::fcntl(a_fd, F_GETFD), -1);
    EXPECT_EQ(a->path(), dir.file("b"));
    EXPECT_FALSE(b->is_open());
  });
  EXPECT_EQ(ring::test::count_open_fds(), before);
}

TEST(FsFile, OffsetsBeyondFourGibOnASparseFile) {
  TempDir dir;
  const auto data = pattern(8192, 7);
  const std::uint64_t offsets[] = {4 * gib - 100, 4 * gib + 65536,
                                   6 * gib + 12345};  // the first straddles 4 GiB
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("sparse"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    for (const std::uint64_t offset : offsets) {
      Result<void> written = co_await file->write_all(data, offset);
      CO_ASSERT_OK(written);
    }
    for (const std::uint64_t offset : offsets) {
      std::vector<std::byte> back(data.size());
      Result<std::size_t> n = co_await file->read_all(back, offset);
      CO_ASSERT_OK(n);
      EXPECT_EQ(*n, data.size());
      EXPECT_EQ(back, data) << "at offset " << offset;
    }
    std::array<std::byte, 16> hole{};
    hole.fill(std::byte{0xff});
    Result<std::size_t> n = co_await file->read_at(hole, 5 * gib);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, hole.size());
    EXPECT_EQ(hole, (std::array<std::byte, 16>{}));
    Result<Stat> st = co_await file->stat();
    CO_ASSERT_OK(st);
    EXPECT_EQ(st->size(), 6 * gib + 12345 + data.size());
    EXPECT_LT(st->blocks() * 512, std::uint64_t{1} << 20);  // still sparse
  });
}

TEST(FsFile, ManyCoroutinesReadOneFileConcurrently) {
  TempDir dir;
  constexpr std::size_t chunk = 4096;
  constexpr std::size_t chunks = 512;
  write_plain(dir.file("shared"), pattern(chunk * chunks, 3));
  std::size_t verified = 0;
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("shared"));
    CO_ASSERT_OK(file);
    auto reader = [&](std::size_t first) -> Task<void> {
      std::vector<std::byte> buffer(chunk);
      // Each reader walks every chunk, from its own starting point.
      for (std::size_t i = 0; i < chunks; i += 7) {
        const std::uint64_t offset = ((first + i) % chunks) * chunk;
        Result<std::size_t> n = co_await file->read_at(buffer, offset);
        if (!n || *n != chunk) {
          ADD_FAILURE() << "read at " << offset << ": " << n.message();
          co_return;
        }
        for (std::size_t b = 0; b < chunk; b += 511) {
          if (buffer[b] != pattern_byte(offset + b, 3)) {
            ADD_FAILURE() << "wrong byte at " << offset + b;
            co_return;
          }
        }
        ++verified;
      }
    };
    std::vector<Task<void>> readers;
    for (std::size_t r = 0; r < 64; ++r) readers.push_back(reader(r * 8));
    co_await when_all(std::move(readers));
  });
  EXPECT_EQ(verified, 64U * ((chunks + 6) / 7));
}

}  // namespace
}  // namespace coring::fs
