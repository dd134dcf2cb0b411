// File: the composite operations (Tasks) and ownership of the fd.
//
// The single-request operations, and read_all/write_all, are inline in file.hpp. What
// is here needs memory the kernel writes that must live in a frame (stat's statx
// buffer, open's path), a choice made by probing the kernel (truncate), or a system call
// io_uring does not have (fchmod, on the blocking pool).
#include "coring/fs/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "coring/fs/file_table.hpp"
#include "coring/fs/probe.hpp"
#include "coring/ring/detail/log.hpp"
#include "coring/runtime/io.hpp"
#include "on_pool.hpp"

namespace coring::fs {

File::File(File&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      target_(std::exchange(other.target_, -1)),
      table_(std::exchange(other.table_, nullptr)),
      path_(std::move(other.path_)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    this->~File();
    ::new (static_cast<void*>(this)) File(std::move(other));
  }
  return *this;
}

File::~File() {
  const int fd = release();
  if (fd >= 0 && ::close(fd) != 0) {
    coring::detail::log_error("fs", ("~File: close " + path_).c_str(),
                              std::error_code(errno, std::system_category()));
  }
}

int File::release() noexcept {
  detach();
  target_ = -1;
  return std::exchange(fd_, -1);
}

void File::detach() noexcept {
  if (table_ != nullptr) table_->detach(*this);
}

Task<Result<File>> File::open(std::filesystem::path path, int flags, mode_t mode) {
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
                       ring::prep_openat(sqe, AT_FDCWD, path.c_str(), flags | O_CLOEXEC, mode);
                     }).with_fd_result();
  if (!r) co_return detail::make_error(r.res, "open", path.native());
  co_return File(r.res, std::move(path).native());
}

namespace {

// openat2's refusals, said in words: the codes themselves (EXDEV, ELOOP) name other
// situations in their standard messages.
const char* beneath_operation(std::int32_t res) noexcept {
  if (res == -EXDEV) return "open_beneath: the path leads out of the directory";
  if (res == -ELOOP) return "open_beneath: a symlink the resolution refuses";
  return "open_beneath";
}

}  // namespace

Task<Result<File>> File::open_beneath(const File& dir, std::filesystem::path path, int flags,
                                      mode_t mode, BeneathOptions options) {
  std::string named = (std::filesystem::path(dir.path()) / path).native();
  if (!supports(ring::Op::openat2)) {
    co_return Error(ring::Errc::feature_unsupported, "open_beneath: openat2 (Linux 5.6)",
                    std::move(named));
  }
  // The kernel rejects mode bits with neither O_CREAT nor O_TMPFILE (EINVAL).
  const bool creates = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
  namespace resolve = ring::resolve_flags;
  const ring::OpenHow how{
      static_cast<std::uint64_t>(static_cast<unsigned>(flags | O_CLOEXEC)), creates ? mode : 0u,
      resolve::beneath | resolve::no_magiclinks | (options.no_symlinks ? resolve::no_symlinks : 0)};
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
                       ring::prep_openat2(sqe, dir.fd(), path.c_str(), &how);
                     }).with_fd_result();
  if (!r) co_return detail::make_error(r.res, beneath_operation(r.res), std::move(named));
  co_return File(r.res, std::move(named));
}

Task<Result<void>> File::truncate(std::uint64_t length) const {
  if (!supports(ring::Op::ftruncate)) co_return co_await detail::truncate_on_pool(*this, length);
  co_return co_await op<void>(
      "truncate", [fd = target_, direct = is_direct(), length](ring::Sqe& sqe) noexcept {
        ring::prep_ftruncate(sqe, fd, length);
        if (direct) ring::use_fixed_file(sqe);
      });
}

Task<Result<Stat>> File::stat(unsigned mask) const {
  // statx cannot name a direct descriptor: it always names the fd (with an empty path).
  Stat st;
  const IoResult r = co_await io([&](ring::Sqe& sqe) noexcept {
    ring::prep_statx(sqe, fd_, "", AT_EMPTY_PATH, mask, &st.raw);
  });
  if (!r) co_return detail::make_error(r.res, "stat", path_);
  co_return st;
}

Task<Result<void>> File::set_permissions(mode_t mode) const {
  co_return co_await detail::on_pool(
      "chmod", path_, [fd = fd_, mode] { return ::fchmod(fd, mode) == 0 ? 0 : errno; });
}

// The fd leaves the File now, for a task that owns it (in a File of its own, whose
// destructor closes it if the task is destroyed before it runs).
Task<Result<void>> File::close() { return close_owned(File(release(), path_)); }

Task<Result<void>> File::close_owned(File file) {
  const int fd = file.release();
  if (fd < 0) co_return detail::make_error(-EBADF, "close", file.path_);
  const IoResult r = co_await io([fd](ring::Sqe& sqe) noexcept { ring::prep_close(sqe, fd); });
  if (!r) co_return detail::make_error(r.res, "close", file.path_);
  co_return Result<void>{};
}

namespace detail {

Task<Result<void>> truncate_on_pool(const File& file, std::uint64_t length) {
  if (length > static_cast<std::uint64_t>(INT64_MAX))
    co_return make_error(-EINVAL, "truncate", file.path());
  co_return co_await on_pool("truncate", file.path(), [fd = file.fd(), length] {
    return ::ftruncate(fd, static_cast<off_t>(length)) == 0 ? 0 : errno;
  });
}

}  // namespace detail
}  // namespace coring::fs
