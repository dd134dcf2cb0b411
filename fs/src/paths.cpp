// Path operations: one io_uring request each, in a Task whose frame holds the paths
// until the kernel has read them; directory listing on the blocking pool.
//
// The operations newer than the ring's baseline are probed first (renameat and
// unlinkat came in 5.11, mkdirat, symlinkat and linkat in 5.15): an older kernel gets
// ring::Errc::feature_unsupported naming the operation, not a bare -EINVAL.
#include "coring/fs/paths.hpp"

#include <dirent.h>
#include <fcntl.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "coring/fs/file.hpp"
#include "coring/fs/probe.hpp"
#include "coring/ring/error.hpp"
#include "coring/runtime/blocking.hpp"
#include "coring/runtime/io.hpp"

namespace coring::fs {

namespace {

// A path operation's result: nothing, or the error naming its path(s).
Result<void> path_result(const IoResult& r, const char* operation,
                         const std::filesystem::path& path,
                         const std::filesystem::path& other = {}) {
  if (r) return {};
  return Error(r.error(), operation, path.native(), other.native());
}

Error unsupported(const char* operation, const std::filesystem::path& path) {
  return Error(ring::Errc::feature_unsupported, operation, path.native());
}

Task<Result<void>> unlink_at(std::filesystem::path path, int flags, const char* operation) {
  if (!supports(ring::Op::unlinkat)) co_return unsupported(operation, path);
  const IoResult r = co_await io(
      [&](ring::Sqe& sqe) noexcept { ring::prep_unlinkat(sqe, AT_FDCWD, path.c_str(), flags); });
  co_return path_result(r, operation, path);
}

Task<Result<Stat>> statx_path(std::filesystem::path path, int flags, unsigned mask,
                              const char* operation) {
  Stat st;
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
    ring::prep_statx(sqe, AT_FDCWD, path.c_str(), flags, mask, &st.raw);
  });
  if (!r) co_return Error(r.error(), operation, path.native());
  co_return st;
}

struct Listing {
  int error = 0;
  std::vector<DirEntry> entries;
};

// On a pool thread: readdir(3) over an fd opened O_CLOEXEC.
Listing read_directory(const char* path) {
  Listing listing;
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return {errno, {}};
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    listing.error = errno;
    ::close(fd);
    return listing;
  }
  const std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      listing.error = errno;  // 0 at the end of the directory
      break;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    listing.entries.push_back(
        DirEntry{std::string(name), file_type_of_mode(DTTOIF(entry->d_type))});
  }
  return listing;
}

}  // namespace

Task<Result<void>> rename(std::filesystem::path from, std::filesystem::path to, unsigned flags) {
  if (!supports(ring::Op::renameat)) co_return unsupported("rename", from);
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
    ring::prep_renameat(sqe, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
  });
  co_return path_result(r, "rename", from, to);
}

Task<Result<void>> unlink(std::filesystem::path path) {
  return unlink_at(std::move(path), 0, "unlink");
}

Task<Result<void>> remove_dir(std::filesystem::path path) {
  return unlink_at(std::move(path), AT_REMOVEDIR, "remove_dir");
}

Task<Result<void>> create_dir(std::filesystem::path path, mode_t mode) {
  if (!supports(ring::Op::mkdirat)) co_return unsupported("create_dir", path);
  const IoResult r = co_await io(
      [&](ring::Sqe& sqe) noexcept { ring::prep_mkdirat(sqe, AT_FDCWD, path.c_str(), mode); });
  co_return path_result(r, "create_dir", path);
}

Task<Result<void>> symlink(std::filesystem::path target, std::filesystem::path link) {
  if (!supports(ring::Op::symlinkat)) co_return unsupported("symlink", link);
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
    ring::prep_symlinkat(sqe, target.c_str(), AT_FDCWD, link.c_str());
  });
  co_return path_result(r, "symlink", link, target);
}

Task<Result<void>> hard_link(std::filesystem::path existing, std::filesystem::path link) {
  if (!supports(ring::Op::linkat)) co_return unsupported("hard_link", existing);
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
    ring::prep_linkat(sqe, AT_FDCWD, existing.c_str(), AT_FDCWD, link.c_str(), 0);
  });
  co_return path_result(r, "hard_link", existing, link);
}

Task<Result<Stat>> stat(std::filesystem::path path, unsigned mask) {
  return statx_path(std::move(path), 0, mask, "stat");
}

Task<Result<Stat>> symlink_stat(std::filesystem::path path, unsigned mask) {
  return statx_path(std::move(path), AT_SYMLINK_NOFOLLOW, mask, "symlink_stat");
}

Task<Result<std::vector<std::byte>>> read_file(std::filesystem::path path) {
  Result<File> file = co_await File::open(std::move(path), O_RDONLY);
  if (!file) co_return file.failure();
  Result<Stat> st = co_await file->stat(STATX_SIZE);
  if (!st) co_return st.failure();
  // Read the size statx reported, then on until EOF: /proc files say 0, and a file
  // may grow while it is read.
  std::vector<std::byte> data(st->size() + 1);
  std::size_t used = 0;
  for (;;) {
    Result<std::size_t> n = co_await file->read_all(std::span(data).subspan(used), used);
    if (!n) co_return n.failure();
    used += *n;
    if (used < data.size()) break;
    data.resize(data.size() + std::max<std::size_t>(data.size(), 64 << 10));
  }
  data.resize(used);
  if (Result<void> closed = co_await file->close(); !closed) co_return closed.failure();
  co_return data;
}

Task<Result<void>> write_file(std::filesystem::path path, std::span<const std::byte> data,
                              mode_t mode) {
  Result<File> file = co_await File::open(std::move(path), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (!file) co_return file.failure();
  if (Result<void> written = co_await file->write_all(data, 0); !written) co_return written;
  co_return co_await file->close();
}

Task<Result<std::vector<DirEntry>>> list_dir(std::filesystem::path path) {
  Listing listing;
  try {
    listing = co_await spawn_blocking([&path] { return read_directory(path.c_str()); });
  } catch (const std::system_error& e) {
    co_return Error(e.code(), "list_dir", path.native());
  }
  if (listing.error != 0) {
    co_return Error(std::error_code(listing.error, std::system_category()), "list_dir",
                    path.native());
  }
  co_return std::move(listing.entries);
}

}  // namespace coring::fs
