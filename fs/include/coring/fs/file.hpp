// File: an open file and the operations on it, each one io_uring request.
//
//   fs::Result<fs::File> file = co_await fs::File::open("data.bin", O_RDWR | O_CREAT, 0644);
//   fs::Result<std::size_t> n = co_await file->read_at(buffer, 4096);
//
// The single-request operations (read_at, write_at and their vectored and fixed forms,
// sync, datasync, allocate) are awaitables built on the runtime's io(): the operation
// record and the buffer it names stay in the awaiting frame until the CQE arrives, and
// nothing is allocated. They accept with_timeout() and with_stop() like io(). read_all
// and write_all are one awaitable too (request()), which adds with_deadline(). The
// composite ones (open, truncate, stat, close, ...) are Tasks.
//
// Every result is an fs::Result whose error names the operation and the file's path.
// A File must be used from the thread of the loop that runs its operations.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>

#include "coring/fs/buffers.hpp"
#include "coring/fs/detail/op.hpp"
#include "coring/fs/error.hpp"
#include "coring/fs/stat.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/task.hpp"

namespace coring::fs {

class FileTable;

// How File::open_beneath resolves its path, besides staying beneath the directory.
struct BeneathOptions {
  // Refuse every symlink on the path (RESOLVE_NO_SYMLINKS: ELOOP), not only those that
  // lead out of the directory.
  bool no_symlinks = false;
};
static_assert(std::is_trivially_destructible_v<BeneathOptions>);

class File {
 public:
  // The most one read or write transfers (Linux's MAX_RW_COUNT); larger spans are
  // cut to it, and the count returned says so.
  static constexpr std::size_t max_transfer = detail::max_transfer;

  File() noexcept = default;
  // Adopts `fd` (which should be O_CLOEXEC); `path` is what errors will name.
  File(int fd, std::string path) noexcept : fd_(fd), target_(fd), path_(std::move(path)) {}
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  // Closes a file still open with close(2) on this thread (after detaching it from its
  // FileTable); co_await close() to close it on the ring and see the error.
  ~File();

  // openat(2) relative to the working directory, always with O_CLOEXEC added to
  // `flags`. `mode` applies when O_CREAT or O_TMPFILE creates the file.
  static Task<Result<File>> open(std::filesystem::path path, int flags = O_RDONLY,
                                 mode_t mode = 0644);
  // Opens `path` relative to the directory `dir`, refusing to leave it: openat2(2)
  // (IORING_OP_OPENAT2, 5.6) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, O_CLOEXEC
  // always. An absolute path, a `..` above `dir` or a symlink leading out of it fails
  // with EXDEV (a symlink inside is followed); a /proc magic link with ELOOP, as does
  // any symlink under options.no_symlinks. `dir` is a File opened with O_DIRECTORY
  // (O_PATH suffices). Errors name dir's path joined with `path`. On a kernel without
  // openat2 the result is ring::Errc::feature_unsupported: nothing is opened unchecked.
  static Task<Result<File>> open_beneath(const File& dir, std::filesystem::path path,
                                         int flags = O_RDONLY, mode_t mode = 0644,
                                         BeneathOptions options = {});

  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // Whether operations name a direct descriptor: the File's registered-file slot
  // (FileTable::attach()) instead of its fd.
  [[nodiscard]] bool is_direct() const noexcept { return table_ != nullptr; }
  // Gives up ownership of the fd (detached from its FileTable first) and returns it.
  int release() noexcept;

  // --- One request each -----------------------------------------------------------------

  // pread: the count read (0 at end of file; short near it).
  auto read_at(std::span<std::byte> buffer, std::uint64_t offset) const noexcept {
    return op<std::size_t>("read", [fd = target_, direct = is_direct(), buffer = clamp(buffer),
                                    offset](ring::Sqe& sqe) noexcept {
      ring::prep_read(sqe, fd, buffer, offset);
      if (direct) ring::use_fixed_file(sqe);
    });
  }
  // pwrite: the count written (possibly short).
  auto write_at(std::span<const std::byte> data, std::uint64_t offset) const noexcept {
    return op<std::size_t>("write", [fd = target_, direct = is_direct(), data = clamp(data),
                                     offset](ring::Sqe& sqe) noexcept {
      ring::prep_write(sqe, fd, data, offset);
      if (direct) ring::use_fixed_file(sqe);
    });
  }
  // preadv2/pwritev2 with RWF_* flags. The iovec array must outlive the co_await.
  auto read_vectored_at(std::span<const iovec> buffers, std::uint64_t offset,
                        std::uint32_t rw_flags = 0) const noexcept {
    return op<std::size_t>("read", [fd = target_, direct = is_direct(), buffers, offset,
                                    rw_flags](ring::Sqe& sqe) noexcept {
      ring::prep_readv(sqe, fd, buffers, offset, rw_flags);
      if (direct) ring::use_fixed_file(sqe);
    });
  }
  auto write_vectored_at(std::span<const iovec> buffers, std::uint64_t offset,
                         std::uint32_t rw_flags = 0) const noexcept {
    return op<std::size_t>("write", [fd = target_, direct = is_direct(), buffers, offset,
                                     rw_flags](ring::Sqe& sqe) noexcept {
      ring::prep_writev(sqe, fd, buffers, offset, rw_flags);
      if (direct) ring::use_fixed_file(sqe);
    });
  }
  // Read into / write from (part of) a registered buffer of a FixedBufferPool.
  auto read_fixed(FixedSlice buffer, std::uint64_t offset) const noexcept {
    return op<std::size_t>(
        "read", [fd = target_, direct = is_direct(), buffer, offset](ring::Sqe& sqe) noexcept {
          ring::prep_read_fixed(sqe, fd, clamp(buffer.bytes), offset, buffer.index);
          if (direct) ring::use_fixed_file(sqe);
        });
  }
  auto write_fixed(FixedSlice buffer, std::uint64_t offset) const noexcept {
    return op<std::size_t>(
        "write", [fd = target_, direct = is_direct(), buffer, offset](ring::Sqe& sqe) noexcept {
          ring::prep_write_fixed(sqe, fd, clamp(buffer.bytes), offset, buffer.index);
          if (direct) ring::use_fixed_file(sqe);
        });
  }

 private:
  // Defined before sync() and datasync(), which deduce their type from it.
  auto fsync_op(const char* operation, std::uint32_t flags) const noexcept {
    return op<void>(operation,
                    [fd = target_, direct = is_direct(), flags](ring::Sqe& sqe) noexcept {
                      ring::prep_fsync(sqe, fd, flags);
                      if (direct) ring::use_fixed_file(sqe);
                    });
  }

 public:
  // fsync(2) and fdatasync(2).
  auto sync() const noexcept { return fsync_op("sync", 0); }
  auto datasync() const noexcept { return fsync_op("datasync", ring::fsync_datasync); }

  // fallocate(2): reserves [offset, offset + length); `mode` is FALLOC_FL_* (0 extends
  // the file size when the range goes past it).
  auto allocate(std::uint64_t offset, std::uint64_t length, int mode = 0) const noexcept {
    return op<void>("allocate", [fd = target_, direct = is_direct(), offset, length,
                                 mode](ring::Sqe& sqe) noexcept {
      ring::prep_fallocate(sqe, fd, mode, offset, length);
      if (direct) ring::use_fixed_file(sqe);
    });
  }

  // Reads until `buffer` is full or the file ends, continuing short reads, in as many
  // requests as it takes (runtime/request.hpp). Returns the count read: less than
  // buffer.size() only at end of file. `.with_deadline(d)` bounds the whole read and
  // `.with_timeout(d)` each request; either cutting it short is ETIMEDOUT.
  auto read_all(std::span<std::byte> buffer, std::uint64_t offset) const noexcept {
    return coring::request(detail::ReadAllBody{
        {buffer.data(), buffer.size(), offset, target_, is_direct(), false, {"read", &path_}}});
  }
  // Writes all of `data`, continuing short writes, bounded as read_all(). A write that
  // makes no progress is EIO.
  auto write_all(std::span<const std::byte> data, std::uint64_t offset) const noexcept {
    return coring::request(detail::WriteAllBody{{const_cast<std::byte*>(data.data()),
                                                 data.size(),
                                                 offset,
                                                 target_,
                                                 is_direct(),
                                                 true,
                                                 {"write", &path_}}});
  }

  // --- Composite operations (Tasks) -----------------------------------------------------
  // ftruncate(2): IORING_OP_FTRUNCATE where the kernel has it (6.9), the blocking pool
  // otherwise.
  Task<Result<void>> truncate(std::uint64_t length) const;
  // statx(2) of the open file. `mask` is STATX_*; add STATX_DIOALIGN to learn O_DIRECT's
  // alignment (Stat::direct_memory_alignment()).
  Task<Result<Stat>> stat(unsigned mask = STATX_BASIC_STATS) const;
  // fchmod(2), on the blocking pool (io_uring has no chmod).
  Task<Result<void>> set_permissions(mode_t mode) const;
  // Closes the file on the ring (IORING_OP_CLOSE); the error, if any, is close(2)'s
  // (such as a failed write-back). The File is closed (is_open() false) from the call
  // on: the task owns the fd, so it closes the fd when awaited, now or later, whatever
  // becomes of the File meanwhile, and a task dropped unawaited closes it with close(2)
  // as the destructor would.
  Task<Result<void>> close();

 private:
  friend class FileTable;

  template <typename T, typename Prep>
  detail::FileOp<T, Prep> op(const char* operation, Prep prep) const noexcept {
    return detail::FileOp<T, Prep>(std::move(prep), detail::Where{operation, &path_});
  }
  template <typename Byte>
  static std::span<Byte> clamp(std::span<Byte> buffer) noexcept {
    return buffer.first(std::min(buffer.size(), max_transfer));
  }
  void detach() noexcept;
  static Task<Result<void>> close_owned(File file);

  int fd_ = -1;
  int target_ = -1;  // what SQEs name: fd_, or the direct descriptor when table_ is set
  FileTable* table_ = nullptr;
  std::string path_;
};

}  // namespace coring::fs

namespace coring::fs::detail {
// truncate()'s path on kernels without IORING_OP_FTRUNCATE: ftruncate(2) on the
// blocking pool. Public for the tests, which run it on kernels that have the op too.
Task<Result<void>> truncate_on_pool(const File& file, std::uint64_t length);
}  // namespace coring::fs::detail
