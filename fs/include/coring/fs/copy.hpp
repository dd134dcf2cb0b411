// Copying files: the data extents of a sparse file, and copy_file with splice.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "coring/fs/error.hpp"
#include "coring/fs/file.hpp"
#include "coring/runtime/task.hpp"

namespace coring::fs {

// A range of a file that holds data; what lies between extents is a hole (reads as
// zeros, takes no space).
struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// The data extents of `file`'s first `size` bytes, found with lseek(SEEK_DATA/SEEK_HOLE)
// on the blocking pool (the file system may read its extent tree from disk). A file
// system without hole support reports one extent covering everything.
Task<Result<std::vector<Extent>>> data_extents(const File& file, std::uint64_t size);

// Copies the regular file `from` to `to` (created or truncated, with `from`'s
// permission bits), moving the data with IORING_OP_SPLICE through a pipe so that it
// never enters user space. Holes are skipped, so a sparse file stays sparse. Returns the
// number of bytes spliced. Copying a file onto itself fails with EINVAL before `to` is
// truncated.
Task<Result<std::uint64_t>> copy_file(std::filesystem::path from, std::filesystem::path to);

}  // namespace coring::fs
