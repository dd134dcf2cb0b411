// Path operations and their errors, read_file/write_file, directory listing,
// data_extents and copy_file.
#include "coring/fs/paths.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coring/fs/copy.hpp"
#include "coring/fs/probe.hpp"
#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::TempDir;
using namespace test;

constexpr std::uint64_t mib = std::uint64_t{1} << 20;
constexpr std::uint64_t gib = std::uint64_t{1} << 30;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

#define REQUIRE_OP(op)                                                          \
  do {                                                                          \
    if (!supports(ring::Op::op)) GTEST_SKIP() << "kernel lacks IORING_OP_" #op; \
  } while (0)

// fs::supports() answers for the backend the calling loop runs on: on the epoll
// emulation, what its probe lists (the kernel's probe lists more, and where io_uring is
// blocked it cannot be asked at all), on io_uring the kernel's.
TEST(FsPaths, SupportsAnswersForTheLoopsOwnBackend) {
  EventLoop loop;
  auto probe = loop.ring().get_probe();
  ASSERT_TRUE(probe) << probe.error().message();
  std::vector<int> differ;
  loop.run([&]() -> Task<void> {
    for (int op = 0; op < static_cast<int>(ring::Op::last); ++op) {
      const auto which = static_cast<ring::Op>(op);
      if (supports(which) != probe->is_supported(which)) differ.push_back(op);
    }
    co_return;
  }());
  EXPECT_TRUE(differ.empty()) << differ.size() << " opcodes answered for another backend, "
                              << "the first " << (differ.empty() ? -1 : differ.front()) << " on "
                              << ring::to_string(loop.backend());
}

TEST(FsPaths, CreateDirThenEexistAndRemoveDir) {
  REQUIRE_OP(mkdirat);
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await create_dir(dir.file("d"), 0750));
    EXPECT_TRUE(S_ISDIR(stat_plain(dir.file("d")).st_mode));
    Result<void> again = co_await create_dir(dir.file("d"));
    EXPECT_EQ(again.error(), std::errc::file_exists);
    EXPECT_EQ(again.message(), "create_dir '" + dir.file("d") + "': File exists");
    Result<void> nested = co_await create_dir(dir.file("missing/d"));
    EXPECT_EQ(nested.error(), std::errc::no_such_file_or_directory);
    CO_ASSERT_OK(co_await remove_dir(dir.file("d")));
    EXPECT_FALSE(exists(dir.file("d")));
  });
}

TEST(FsPaths, RemoveDirOfANonEmptyDirectoryOrAFileFails) {
  REQUIRE_OP(unlinkat);
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("full").c_str(), 0755), 0);
  write_plain(dir.file("full/x"), pattern(1));
  run_in_loop([&]() -> Task<void> {
    Result<void> full = co_await remove_dir(dir.file("full"));
    EXPECT_EQ(full.error(), std::errc::directory_not_empty);
    Result<void> file = co_await remove_dir(dir.file("full/x"));
    EXPECT_EQ(file.error(), std::errc::not_a_directory);
    Result<void> missing = co_await remove_dir(dir.file("nope"));
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  });
  EXPECT_TRUE(exists(dir.file("full/x")));
}

TEST(FsPaths, UnlinkRemovesAFileAndRefusesADirectory) {
  REQUIRE_OP(unlinkat);
  TempDir dir;
  write_plain(dir.file("f"), pattern(1));
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await unlink(dir.file("f")));
    EXPECT_FALSE(exists(dir.file("f")));
    Result<void> again = co_await unlink(dir.file("f"));
    EXPECT_EQ(again.error(), std::errc::no_such_file_or_directory);
    Result<void> directory = co_await unlink(dir.path());
    EXPECT_EQ(directory.error(), std::errc::is_a_directory);
  });
}

TEST(FsPaths, RenameMovesAndItsErrorsNameBothPaths) {
  REQUIRE_OP(renameat);
  TempDir dir;
  write_plain(dir.file("a"), pattern(5, 1));
  write_plain(dir.file("b"), pattern(5, 2));
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await rename(dir.file("a"), dir.file("c")));
    EXPECT_FALSE(exists(dir.file("a")));
    EXPECT_EQ(read_plain(dir.file("c")), pattern(5, 1));
    Result<void> missing = co_await rename(dir.file("a"), dir.file("d"));
    CO_ASSERT(!missing);
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(missing.message(), "rename '" + dir.file("a") + "' -> '" + dir.file("d") +
                                     "': No such file or directory");
    Result<void> no_replace = co_await rename(dir.file("c"), dir.file("b"), RENAME_NOREPLACE);
    EXPECT_EQ(no_replace.error(), std::errc::file_exists);
    CO_ASSERT_OK(co_await rename(dir.file("c"), dir.file("b")));  // replaces
    EXPECT_EQ(read_plain(dir.file("b")), pattern(5, 1));
  });
}

TEST(FsPaths, SymlinkAndStatFollowingOrNot) {
  REQUIRE_OP(symlinkat);
  TempDir dir;
  write_plain(dir.file("target"), pattern(77));
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await symlink("target", dir.file("link")));
    Result<Stat> followed = co_await stat(dir.file("link"));
    CO_ASSERT_OK(followed);
    EXPECT_TRUE(followed->is_regular());
    EXPECT_EQ(followed->size(), 77U);
    Result<Stat> link = co_await symlink_stat(dir.file("link"));
    CO_ASSERT_OK(link);
    EXPECT_TRUE(link->is_symlink());
    EXPECT_EQ(link->size(), 6U);  // "target"
    Result<void> again = co_await symlink("elsewhere", dir.file("link"));
    EXPECT_EQ(again.error(), std::errc::file_exists);
    CO_ASSERT_OK(co_await symlink("nowhere", dir.file("dangling")));
    Result<Stat> dangling = co_await stat(dir.file("dangling"));
    EXPECT_EQ(dangling.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(dangling.failure().path(), dir.file("dangling"));
  });
}

TEST(FsPaths, HardLinkSharesTheInode) {
  REQUIRE_OP(linkat);
  TempDir dir;
  write_plain(dir.file("one"), pattern(10));
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await hard_link(dir.file("one"), dir.file("two")));
    Result<Stat> one = co_await stat(dir.file("one"));
    Result<Stat> two = co_await stat(dir.file("two"));
    CO_ASSERT_OK(one);
    CO_ASSERT_OK(two);
    EXPECT_TRUE(one->same_file_as(*two));
    EXPECT_EQ(one->links(), 2U);
    Result<void> exists_already = co_await hard_link(dir.file("one"), dir.file("two"));
    EXPECT_EQ(exists_already.error(), std::errc::file_exists);
    Result<void> missing = co_await hard_link(dir.file("nope"), dir.file("three"));
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    Result<void> of_directory = co_await hard_link(dir.path(), dir.file("dirlink"));
    EXPECT_EQ(of_directory.error(), std::errc::operation_not_permitted);
  });
}

TEST(FsPaths, StatOfAMissingPathIsEnoent) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<Stat> st = co_await stat(dir.file("nope"));
    EXPECT_EQ(st.error(), std::errc::no_such_file_or_directory);
    Result<Stat> through_file = co_await stat(dir.file("nope/deeper"));
    EXPECT_EQ(through_file.error(), std::errc::no_such_file_or_directory);
    Result<Stat> directory = co_await stat(dir.path());
    CO_ASSERT_OK(directory);
    EXPECT_TRUE(directory->is_directory());
  });
}

TEST(FsPaths, WriteFileThenReadFileRoundTrips) {
  TempDir dir;
  const auto data = pattern(3 * mib + 17, 8);
  const auto old_umask = ::umask(022);
  run_in_loop([&]() -> Task<void> {
    CO_ASSERT_OK(co_await write_file(dir.file("w"), data, 0640));
    Result<std::vector<std::byte>> back = co_await read_file(dir.file("w"));
    CO_ASSERT_OK(back);
    EXPECT_EQ(*back, data);
    CO_ASSERT_OK(co_await write_file(dir.file("w"), std::span(data).first(10)));  // truncates
    back = co_await read_file(dir.file("w"));
    CO_ASSERT_OK(back);
    EXPECT_EQ(back->size(), 10U);
    CO_ASSERT_OK(co_await write_file(dir.file("empty"), {}));
    back = co_await read_file(dir.file("empty"));
    CO_ASSERT_OK(back);
    EXPECT_TRUE(back->empty());
  });
  ::umask(old_umask);
  EXPECT_EQ(stat_plain(dir.file("w")).st_mode & 07777, 0640U);
}

TEST(FsPaths, ReadFileReadsProcFilesThatReportSizeZero) {
  run_in_loop([&]() -> Task<void> {
    Result<std::vector<std::byte>> status = co_await read_file("/proc/self/status");
    CO_ASSERT_OK(status);
    const std::string text(reinterpret_cast<const char*>(status->data()), status->size());
    EXPECT_NE(text.find("Name:"), std::string::npos);
    EXPECT_NE(text.find("VmRSS:"), std::string::npos);
  });
}

TEST(FsPaths, ReadFileAndWriteFileErrors) {
  TempDir dir;
  run_in_loop([&]() -> Task<void> {
    Result<std::vector<std::byte>> missing = co_await read_file(dir.file("nope"));
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    Result<std::vector<std::byte>> directory = co_await read_file(dir.path());
    EXPECT_EQ(directory.error(), std::errc::is_a_directory);
    EXPECT_EQ(directory.failure().path(), dir.path());
    Result<void> no_parent = co_await write_file(dir.file("no/such"), pattern(3));
    EXPECT_EQ(no_parent.error(), std::errc::no_such_file_or_directory);
    Result<void> onto_directory = co_await write_file(dir.path(), pattern(3));
    EXPECT_EQ(onto_directory.error(), std::errc::is_a_directory);
  });
}

TEST(FsPaths, ListDirGivesNamesAndTypes) {
  TempDir dir;
  write_plain(dir.file("file"), pattern(1));
  ASSERT_EQ(::mkdir(dir.file("sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("file", dir.file("link").c_str()), 0);
  run_in_loop([&]() -> Task<void> {
    Result<std::vector<DirEntry>> entries = co_await list_dir(dir.path());
    CO_ASSERT_OK(entries);
    std::sort(entries->begin(), entries->end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    CO_ASSERT(entries->size() == 3);
    EXPECT_EQ((*entries)[0].name, "file");
    EXPECT_EQ((*entries)[0].type, FileType::regular);
    EXPECT_EQ((*entries)[1].name, "link");
    EXPECT_EQ((*entries)[1].type, FileType::symlink);
    EXPECT_EQ((*entries)[2].name, "sub");
    EXPECT_EQ((*entries)[2].type, FileType::directory);
    Result<std::vector<DirEntry>> empty = co_await list_dir(dir.file("sub"));
    CO_ASSERT_OK(empty);
    EXPECT_TRUE(empty->empty());
    Result<std::vector<DirEntry>> missing = co_await list_dir(dir.file("nope"));
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(missing.failure().path(), dir.file("nope"));
    Result<std::vector<DirEntry>> file = co_await list_dir(dir.file("file"));
    EXPECT_EQ(file.error(), std::errc::not_a_directory);
  });
}

// A file with data at 0, a hole, data at 1 MiB and past 4 GiB, and a trailing hole.
void make_sparse(const std::string& path) {
  write_plain(path, pattern(100000, 1), 0);
  write_plain(path, pattern(70000, 2), mib);
  write_plain(path, pattern(5000, 3), 4 * gib + 4096);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(5 * gib)), 0);
}

TEST(FsCopy, DataExtentsOfASparseFile) {
  TempDir dir;
  make_sparse(dir.file("sparse"));
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("sparse"));
    CO_ASSERT_OK(file);
    Result<std::vector<Extent>> extents = co_await data_extents(*file, 5 * gib);
    CO_ASSERT_OK(extents);
    CO_ASSERT(extents->size() == 3);
    // Extents are block-granular: each holds its data and ends before the next one.
    EXPECT_EQ((*extents)[0].offset, 0U);
    EXPECT_GE((*extents)[0].length, 100000U);
    EXPECT_LE((*extents)[1].offset, mib);
    EXPECT_GE((*extents)[1].offset + (*extents)[1].length, mib + 70000);
    EXPECT_LE((*extents)[2].offset, 4 * gib + 4096);
    EXPECT_LT((*extents)[2].offset + (*extents)[2].length, 5 * gib);
  });
}

TEST(FsCopy, CopyFileIsByteIdenticalKeepsTheModeAndTheHoles) {
  REQUIRE_OP(splice);
  TempDir dir;
  make_sparse(dir.file("src"));
  ASSERT_EQ(::chmod(dir.file("src").c_str(), 0751), 0);
  run_in_loop([&]() -> Task<void> {
    Result<std::uint64_t> copied = co_await copy_file(dir.file("src"), dir.file("dst"));
    CO_ASSERT_OK(copied);
    EXPECT_LT(*copied, 2 * mib);  // the holes were not copied
  });
  const struct stat src = stat_plain(dir.file("src"));
  const struct stat dst = stat_plain(dir.file("dst"));
  EXPECT_EQ(dst.st_size, src.st_size);
  EXPECT_EQ(dst.st_mode & 07777, 0751U);
  EXPECT_LE(dst.st_blocks, src.st_blocks + 16);
  // Byte for byte where the data is, and zeros elsewhere.
  const int fd = ::open(dir.file("dst").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<std::byte> buffer(100000);
  ASSERT_EQ(::pread(fd, buffer.data(), 100000, 0), 100000);
  EXPECT_EQ(buffer, pattern(100000, 1));
  buffer.resize(70000);
  ASSERT_EQ(::pread(fd, buffer.data(), 70000, static_cast<off_t>(mib)), 70000);
  EXPECT_EQ(buffer, pattern(70000, 2));
  buffer.resize(5000);
  ASSERT_EQ(::pread(fd, buffer.data(), 5000, static_cast<off_t>(4 * gib + 4096)), 5000);
  EXPECT_EQ(buffer, pattern(5000, 3));
  ASSERT_EQ(::pread(fd, buffer.data(), 5000, static_cast<off_t>(2 * gib)), 5000);
  EXPECT_EQ(buffer, std::vector<std::byte>(5000));
  ::close(fd);
}

TEST(FsCopy, CopyFileOfALargeAndAnEmptyFile) {
  REQUIRE_OP(splice);
  TempDir dir;
  const auto data = pattern(9 * mib + 3, 11);
  write_plain(dir.file("large"), data);
  write_plain(dir.file("empty"), {});
  run_in_loop([&]() -> Task<void> {
    Result<std::uint64_t> large = co_await copy_file(dir.file("large"), dir.file("large.copy"));
    CO_ASSERT_OK(large);
    EXPECT_EQ(*large, data.size());
    Result<std::uint64_t> empty = co_await copy_file(dir.file("empty"), dir.file("empty.copy"));
    CO_ASSERT_OK(empty);
    EXPECT_EQ(*empty, 0U);
  });
  EXPECT_EQ(read_plain(dir.file("large.copy")), data);
  EXPECT_EQ(stat_plain(dir.file("empty.copy")).st_size, 0);
}

TEST(FsCopy, CopyFileErrors) {
  TempDir dir;
  write_plain(dir.file("src"), pattern(1000));
  run_in_loop([&]() -> Task<void> {
    Result<std::uint64_t> missing = co_await copy_file(dir.file("nope"), dir.file("dst"));
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(missing.failure().path(), dir.file("nope"));
    Result<std::uint64_t> directory = co_await copy_file(dir.path(), dir.file("dst"));
    EXPECT_EQ(directory.error(), std::errc::is_a_directory);
    Result<std::uint64_t> onto_itself = co_await copy_file(dir.file("src"), dir.file("src"));
    EXPECT_EQ(onto_itself.error(), std::errc::invalid_argument);
    Result<std::uint64_t> no_parent = co_await copy_file(dir.file("src"), dir.file("no/dst"));
    EXPECT_EQ(no_parent.error(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(no_parent.failure().path(), dir.file("no/dst"));
  });
  EXPECT_EQ(read_plain(dir.file("src")), pattern(1000));  // untouched by the self-copy
  EXPECT_FALSE(exists(dir.file("dst")));
}

}  // namespace
}  // namespace coring::fs
