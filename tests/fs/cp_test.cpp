// coring-cp as a program: large, empty and sparse files copied byte for byte with the
// mode kept, holes kept, and failures (missing source, unwritable destination, bad
// usage) that exit non-zero with a message naming the path. Its buffers fit the file
// and the memory it may take: a tiny file takes one page whatever --qd and --bs say, the
// defaults register without warning under an unprivileged user's 8 MiB RLIMIT_MEMLOCK,
// and buffers beyond RLIMIT_AS are refused with the figures before DST is touched.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::TempDir;
using namespace test;

constexpr std::uint64_t mib = std::uint64_t{1} << 20;
constexpr std::uint64_t gib = std::uint64_t{1} << 30;

struct CpRun {
  int status = -1;  // the exit status, or -1 if it did not exit normally
  std::string out;
  std::string err;
};

// Limits of a coring-cp run, as a user's shell or service manager sets them.
struct CpLimits {
  std::optional<rlim_t> address_space = std::nullopt;  // RLIMIT_AS, bytes
  // RLIMIT_MEMLOCK in bytes, with CAP_IPC_LOCK dropped, as for an unprivileged user.
  std::optional<rlim_t> memlock = std::nullopt;
};

// A sanitizer build maps terabytes of shadow memory at start, so a coring-cp built with
// one cannot run under an RLIMIT_AS of a few hundred MiB.
#ifdef CORING_TEST_SANITIZED
constexpr bool address_space_limits_work = false;
#else
constexpr bool address_space_limits_work = true;
#endif
constexpr const char* no_address_space_limits =
    "a sanitizer's shadow memory does not fit under RLIMIT_AS; the other builds run this";

// Exit status of a child that could not drop CAP_IPC_LOCK (root without CAP_SETPCAP).
constexpr int kCannotDropIpcLock = 125;

#ifdef CORING_CP_PATH
// Only for runs of coring-cp, which a build without the examples does not have.
std::string text_of(const std::string& path) {
  const auto bytes = read_plain(path);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// In a forked child, before exec: only async-signal-safe calls. Root regains every
// capability of the bounding set at exec, so CAP_IPC_LOCK leaves that set too.
void apply_limits(const CpLimits& limits, __user_cap_header_struct header,
                  __user_cap_data_struct* caps) {
  if (limits.address_space) {
    const rlimit limit{*limits.address_space, *limits.address_space};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(126);
  }
  if (limits.memlock) {
    const rlimit limit{*limits.memlock, *limits.memlock};
    if (::setrlimit(RLIMIT_MEMLOCK, &limit) != 0) ::_exit(126);
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_IPC_LOCK, 0, 0);
    if (::geteuid() == 0 && ::prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) != 0) {
      ::_exit(kCannotDropIpcLock);
    }
    ::syscall(SYS_capset, &header, caps);
  }
}
#endif

// Runs coring-cp with `args` under `limits`, its stdout and stderr captured in files.
CpRun run_cp(const std::vector<std::string>& args, const CpLimits& limits = {}) {
#ifndef CORING_CP_PATH
  (void)args;
  (void)limits;
  return {};
#else
  TempDir logs;
  std::vector<std::string> words{CORING_CP_PATH};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  // The capabilities of a child under a memlock limit, made here (not after fork): ours
  // without CAP_IPC_LOCK, and none inheritable.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3]{};
  ::syscall(SYS_capget, &header, caps);
  for (__user_cap_data_struct& set : caps) set.inheritable = 0;
  const auto ipc_lock = static_cast<std::uint32_t>(CAP_TO_MASK(CAP_IPC_LOCK));
  caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~ipc_lock;
  caps[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~ipc_lock;
  const int out = ::open(logs.file("out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(logs.file("err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CpRun run;
  const pid_t pid = out < 0 || err < 0 ? -1 : ::fork();
  if (pid == 0) {
    if (::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
    apply_limits(limits, header, caps);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (out >= 0) ::close(out);
  if (err >= 0) ::close(err);
  if (pid < 0) {
    ADD_FAILURE() << "starting " << argv[0] << ": " << std::strerror(errno);
    return run;
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) run.status = WEXITSTATUS(status);
  run.out = text_of(logs.file("out"));
  run.err = text_of(logs.file("err"));
  return run;
#endif
}

#define REQUIRE_CP()                                                                   \
  do {                                                                                 \
    if (!cp_built()) GTEST_SKIP() << "coring-cp is not built (CORING_BUILD_EXAMPLES)"; \
  } while (0)

bool cp_built() {
#ifdef CORING_CP_PATH
  return true;
#else
  return false;
#endif
}

// The data extents of a file (SEEK_DATA/SEEK_HOLE), as [begin, end) pairs.
std::vector<std::pair<std::uint64_t, std::uint64_t>> extents_of(const std::string& path) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> extents;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return extents;
  off_t at = 0;
  for (;;) {
    const off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0) break;
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    extents.emplace_back(data, hole);
    at = hole;
  }
  ::close(fd);
  return extents;
}

// Byte-identical without reading gigabytes of holes: equal sizes, equal bytes over
// every data extent of `a`, and no data in `b` outside those extents (so b reads zeros
// wherever a does).
void expect_identical_sparse(const std::string& a, const std::string& b) {
  ASSERT_EQ(stat_plain(a).st_size, stat_plain(b).st_size);
  const auto a_extents = extents_of(a);
  const auto b_extents = extents_of(b);
  ASSERT_FALSE(a_extents.empty());
  for (const auto& [begin, end] : b_extents) {
    bool covered = false;
    for (const auto& [a_begin, a_end] : a_extents) covered |= a_begin <= begin && end <= a_end;
    EXPECT_TRUE(covered) << "data in the copy at [" << begin << ", " << end << ") is a hole in "
                         << a;
  }
  const int fa = ::open(a.c_str(), O_RDONLY | O_CLOEXEC);
  const int fb = ::open(b.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> x(mib);
  std::vector<char> y(mib);
  for (const auto& [begin, end] : a_extents) {
    for (std::uint64_t at = begin; at < end; at += mib) {
      const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(mib, end - at));
      ASSERT_EQ(::pread(fa, x.data(), length, static_cast<off_t>(at)),
                static_cast<ssize_t>(length));
      ASSERT_EQ(::pread(fb, y.data(), length, static_cast<off_t>(at)),
                static_cast<ssize_t>(length));
      ASSERT_EQ(std::memcmp(x.data(), y.data(), length), 0)
          << "differs in [" << at << ", +" << length << ")";
    }
  }
  ::close(fa);
  ::close(fb);
}

TEST(FsCp, CopiesALargeFileByteForByteAndKeepsTheMode) {
  REQUIRE_CP();
  TempDir dir;
  const auto data = pattern(64 * mib + 4097, 21);
  write_plain(dir.file("large"), data);
  ASSERT_EQ(::chmod(dir.file("large").c_str(), 0741), 0);
  const CpRun run = run_cp({dir.file("large"), dir.file("copy"), "--qd", "8", "--bs", "256K"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("copied " + std::to_string(data.size()) + " bytes"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("MB/s"), std::string::npos) << run.out;
  EXPECT_EQ(read_plain(dir.file("copy")), data);
  EXPECT_EQ(stat_plain(dir.file("copy")).st_mode & 07777, 0741U);
}

TEST(FsCp, SmallBlocksAndAnOddSizeStillCopyEverything) {
  REQUIRE_CP();
  TempDir dir;
  const auto data = pattern(mib + 123, 22);
  write_plain(dir.file("odd"), data);
  const CpRun run = run_cp({dir.file("odd"), dir.file("copy"), "--qd", "3", "--bs", "4K"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(read_plain(dir.file("copy")), data);
}

TEST(FsCp, CopiesAnEmptyFileOverANonEmptyOne) {
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("empty"), {});
  write_plain(dir.file("copy"), pattern(5000));
  const CpRun run = run_cp({dir.file("empty"), dir.file("copy")});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("copied 0 bytes"), std::string::npos) << run.out;
  EXPECT_EQ(stat_plain(dir.file("copy")).st_size, 0);
}

TEST(FsCp, CopiesASparseFileKeepingItsHoles) {
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("sparse"), pattern(100000, 1), 0);
  write_plain(dir.file("sparse"), pattern(3 * mib, 2), 64 * mib);
  write_plain(dir.file("sparse"), pattern(5000, 3), 4 * gib + 4096);
  ASSERT_EQ(::truncate(dir.file("sparse").c_str(), static_cast<off_t>(5 * gib + 1)), 0);
  const CpRun run = run_cp({dir.file("sparse"), dir.file("copy"), "--qd", "4"});
  ASSERT_EQ(run.status, 0) << run.err;
  expect_identical_sparse(dir.file("sparse"), dir.file("copy"));
  // Not ballooned: the copy takes about the space of the source's data, not 5 GiB.
  EXPECT_LE(stat_plain(dir.file("copy")).st_blocks, stat_plain(dir.file("sparse")).st_blocks + 64);
}

TEST(FsCp, CopiesIntoADirectory) {
  REQUIRE_CP();
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("into").c_str(), 0755), 0);
  write_plain(dir.file("f"), pattern(1000));
  const CpRun run = run_cp({dir.file("f"), dir.file("into")});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(read_plain(dir.file("into/f")), pattern(1000));
}

TEST(FsCp, AMissingSourceExitsNonZeroNamingIt) {
  REQUIRE_CP();
  TempDir dir;
  const CpRun run = run_cp({dir.file("missing"), dir.file("copy")});
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find(dir.file("missing")), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("No such file or directory"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  EXPECT_NE(::access(dir.file("copy").c_str(), F_OK), 0);
}

TEST(FsCp, AnUnwritableDestinationExitsNonZeroNamingIt) {
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("f"), pattern(1000));
  ASSERT_EQ(::mkdir(dir.file("locked").c_str(), 0555), 0);
  // Root writes into a 0555 directory anyway; an immutable one refuses even root.
  const bool root = ::geteuid() == 0;
  if (root && !set_immutable(dir.file("locked"), true)) {
    GTEST_SKIP() << "running as root without CAP_LINUX_IMMUTABLE: no directory is unwritable";
  }
  const CpRun run = run_cp({dir.file("f"), dir.file("locked/copy")});
  if (root) set_immutable(dir.file("locked"), false);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("open '" + dir.file("locked/copy") + "'"), std::string::npos) << run.err;
  EXPECT_TRUE(run.err.find("Permission denied") != std::string::npos ||
              run.err.find("Operation not permitted") != std::string::npos)
      << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
}

TEST(FsCp, ADirectorySourceOrACopyOntoItselfFails) {
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("f"), pattern(1000));
  const CpRun directory = run_cp({dir.path(), dir.file("copy")});
  EXPECT_EQ(directory.status, 1);
  EXPECT_NE(directory.err.find("Is a directory"), std::string::npos) << directory.err;
  const CpRun itself = run_cp({dir.file("f"), dir.file("f")});
  EXPECT_EQ(itself.status, 1);
  EXPECT_NE(itself.err.find("same file"), std::string::npos) << itself.err;
  EXPECT_EQ(read_plain(dir.file("f")), pattern(1000));
}

TEST(FsCp, BadUsageExitsTwo) {
  REQUIRE_CP();
  EXPECT_EQ(run_cp({}).status, 2);
  EXPECT_EQ(run_cp({"a"}).status, 2);
  EXPECT_EQ(run_cp({"a", "b", "--qd", "0"}).status, 2);
  EXPECT_EQ(run_cp({"a", "b", "--bs", "12X"}).status, 2);
  EXPECT_EQ(run_cp({"a", "b", "--frobnicate"}).status, 2);
  EXPECT_EQ(run_cp({"a", "b", "--bs", "17179869185G"}).status, 2) << "2^64 + 1 GiB, not 1 GiB";
}

// A 6-byte file takes one buffer of one page, whatever --qd and --bs ask for: 64 x 64 MiB
// must not become 4 GiB of buffers.
TEST(FsCp, ATinyFileTakesOnePageWhateverQdAndBsAsk) {
  if (!address_space_limits_work) GTEST_SKIP() << no_address_space_limits;
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("tiny"), pattern(6, 23));
  const CpRun run = run_cp({dir.file("tiny"), dir.file("copy"), "--qd", "64", "--bs", "64M"},
                           {.address_space = 256 * mib});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(run.err.empty()) << run.err;
  EXPECT_NE(run.out.find("copied 6 bytes"), std::string::npos) << run.out;
  EXPECT_EQ(read_plain(dir.file("copy")), pattern(6, 23));
}

// An unprivileged user's process (no CAP_IPC_LOCK) under Debian's default RLIMIT_MEMLOCK
// of 8 MiB registers the default buffers, ring included, and so copies without a warning.
TEST(FsCp, TheDefaultsRegisterUnderAnUnprivilegedUsersMemlockLimit) {
  REQUIRE_CP();
  TempDir dir;
  const auto data = pattern(24 * mib, 24);  // more chunks than the default --qd
  write_plain(dir.file("data"), data);
  const CpRun run = run_cp({dir.file("data"), dir.file("copy")}, {.memlock = 8 * mib});
  if (run.status == kCannotDropIpcLock) GTEST_SKIP() << "cannot drop CAP_IPC_LOCK here";
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(run.err.empty()) << run.err;
  EXPECT_EQ(read_plain(dir.file("copy")), data);
}

// Buffers the process cannot have are refused before DST is created, with the figures
// and what to lower, not with std::bad_alloc. The file has 16 chunks of --bs 16M (one
// 16 MiB extent, 15 of a page): 256 MiB of buffers, beyond a 128 MiB RLIMIT_AS.
TEST(FsCp, BuffersBeyondTheMemoryLimitAreRefusedWithTheFigures) {
  if (!address_space_limits_work) GTEST_SKIP() << no_address_space_limits;
  REQUIRE_CP();
  TempDir dir;
  write_plain(dir.file("sparse"), pattern(16 * mib, 25));
  for (std::uint64_t i = 1; i <= 15; ++i)
    write_plain(dir.file("sparse"), pattern(4096, i), i * 32 * mib);
  const CpRun run = run_cp({dir.file("sparse"), dir.file("copy"), "--qd", "64", "--bs", "16M"},
                           {.address_space = 128 * mib});
  EXPECT_EQ(run.status, 1);
  for (const char* part : {"256 MiB of buffers", "16 of 16 MiB", "--qd 64", "--bs 16 MiB",
                           "RLIMIT_AS", "lower --qd or --bs"}) {
    EXPECT_NE(run.err.find(part), std::string::npos) << "no '" << part << "' in: " << run.err;
  }
  EXPECT_EQ(run.err.find("bad_alloc"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  EXPECT_NE(::access(dir.file("copy").c_str(), F_OK), 0) << "DST was created";
}

}  // namespace
}  // namespace coring::fs
