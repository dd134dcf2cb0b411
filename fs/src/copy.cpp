// copy_file: file -> pipe -> file with IORING_OP_SPLICE, extent by extent.
//
// splice(2) needs a pipe on one side, so each chunk makes two requests: the source
// file into the pipe (up to the pipe's capacity, raised to 1 MiB where allowed), then
// the pipe into the destination at the same offset (the runtime's SpliceBody, one
// awaitable per extent). The bytes move as page references
// and never reach user space. Only the source's data extents are copied; the holes
// between them stay holes in the destination, whose size is set at the end so that a
// trailing hole is kept too.
#include "coring/fs/copy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "coring/fs/detail/op.hpp"
#include "coring/fs/paths.hpp"
#include "coring/runtime/blocking.hpp"
#include "coring/runtime/request.hpp"
#include "coring/runtime/splice.hpp"

namespace coring::fs {

namespace {

struct ExtentScan {
  int error = 0;
  std::vector<Extent> extents;
};

// On a pool thread: SEEK_DATA finds the next data, SEEK_HOLE where it ends.
ExtentScan scan_extents(int fd, std::uint64_t size) {
  ExtentScan scan;
  std::uint64_t offset = 0;
  while (offset < size) {
    const off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data after offset: the rest is a hole
      if (errno == EINVAL) {      // no hole support: all of it is data
        scan.extents = {Extent{0, size}};
        return scan;
      }
      scan.error = errno;
      return scan;
    }
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) {
      scan.error = errno;
      return scan;
    }
    const auto begin = static_cast<std::uint64_t>(data);
    const std::uint64_t end = std::min(static_cast<std::uint64_t>(hole), size);
    if (begin >= end) break;
    scan.extents.push_back(Extent{begin, end - begin});
    offset = end;
  }
  return scan;
}

// Moves [offset, offset + length) of `from` to the same range of `to` through `pipe`.
Task<Result<std::uint64_t>> splice_range(const File& from, const File& to, Pipe& pipe,
                                         std::uint64_t offset, std::uint64_t length) {
  const SpliceSummary moved = co_await request(SpliceBody(
      SpliceEnd{from.fd(), false, offset}, SpliceEnd{to.fd(), false, offset}, length, pipe));
  if (moved.error) {
    if (moved.side == SpliceSide::sink)
      co_return Error(moved.error, "copy_file: splice to", to.path());
    co_return Error(moved.error, "copy_file: splice from", from.path());
  }
  // The source ended early: it shrank while being copied.
  if (moved.side == SpliceSide::source)
    co_return Error(std::make_error_code(std::errc::io_error), "copy_file: source shrank",
                    from.path());
  co_return moved.bytes;
}

}  // namespace

Task<Result<std::vector<Extent>>> data_extents(const File& file, std::uint64_t size) {
  ExtentScan scan;
  try {
    scan = co_await spawn_blocking([fd = file.fd(), size] { return scan_extents(fd, size); });
  } catch (const std::system_error& e) {
    co_return Error(e.code(), "data_extents", file.path());
  }
  if (scan.error != 0) co_return detail::make_error(-scan.error, "data_extents", file.path());
  co_return std::move(scan.extents);
}

Task<Result<std::uint64_t>> copy_file(std::filesystem::path from, std::filesystem::path to) {
  Result<File> source = co_await File::open(from, O_RDONLY);
  if (!source) co_return source.failure();
  Result<Stat> source_stat = co_await source->stat();
  if (!source_stat) co_return source_stat.failure();
  if (source_stat->is_directory())
    co_return detail::make_error(-EISDIR, "copy_file", from.native());
  if (!source_stat->is_regular()) co_return detail::make_error(-EINVAL, "copy_file", from.native());
  // Opening `to` with O_TRUNC would empty the source if both name one file.
  if (Result<Stat> target_stat = co_await stat(to);
      target_stat && target_stat->same_file_as(*source_stat)) {
    co_return Error(std::make_error_code(std::errc::invalid_argument), "copy_file: same file",
                    from.native(), to.native());
  }
  Result<File> target =
      co_await File::open(to, O_WRONLY | O_CREAT | O_TRUNC, source_stat->permissions());
  if (!target) co_return target.failure();
  // The umask filtered the mode of a new file, and an existing file kept its own.
  if (Result<void> chmod = co_await target->set_permissions(source_stat->permissions()); !chmod)
    co_return chmod.failure();

  const std::uint64_t size = source_stat->size();
  Result<std::vector<Extent>> extents = co_await data_extents(*source, size);
  if (!extents) co_return extents.failure();
  coring::Result<Pipe> pipe = Pipe::open();
  if (!pipe) co_return Error(pipe.error(), "copy_file: pipe", from.native());
  std::uint64_t copied = 0;
  for (const Extent& extent : *extents) {
    Result<std::uint64_t> n =
        co_await splice_range(*source, *target, *pipe, extent.offset, extent.length);
    if (!n) co_return n.failure();
    copied += *n;
  }
  if (Result<void> sized = co_await target->truncate(size); !sized) co_return sized.failure();
  if (Result<void> closed = co_await target->close(); !closed) co_return closed.failure();
  co_return copied;
}

}  // namespace coring::fs
