// Operations on paths: each is a Task on the current loop, one io_uring request where
// the kernel has one, and the blocking pool where it has none (directory listing).
//
//   if (auto made = co_await fs::create_dir("out"); !made) log(made.message());
//   fs::Result<std::vector<std::byte>> bytes = co_await fs::read_file("config.json");
//
// Paths are taken by value: a Task starts later, and the path has to live in its frame
// until the kernel has read it. Errors name the path (both paths, for rename and links).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "coring/fs/error.hpp"
#include "coring/fs/stat.hpp"
#include "coring/runtime/task.hpp"

namespace coring::fs {

// renameat2(2); `flags` is RENAME_NOREPLACE, RENAME_EXCHANGE or 0.
Task<Result<void>> rename(std::filesystem::path from, std::filesystem::path to, unsigned flags = 0);
// unlinkat(2) of a file (EISDIR for a directory).
Task<Result<void>> unlink(std::filesystem::path path);
// rmdir(2): the directory must be empty (ENOTEMPTY otherwise).
Task<Result<void>> remove_dir(std::filesystem::path path);
// mkdirat(2), `mode` filtered by the umask.
Task<Result<void>> create_dir(std::filesystem::path path, mode_t mode = 0777);
// symlinkat(2): a link at `link` whose content is `target`.
Task<Result<void>> symlink(std::filesystem::path target, std::filesystem::path link);
// linkat(2): a new name `link` for the file `existing`.
Task<Result<void>> hard_link(std::filesystem::path existing, std::filesystem::path link);
// statx(2), following a final symlink; symlink_stat() describes the link itself.
Task<Result<Stat>> stat(std::filesystem::path path, unsigned mask = STATX_BASIC_STATS);
Task<Result<Stat>> symlink_stat(std::filesystem::path path, unsigned mask = STATX_BASIC_STATS);

// The whole content of a file (of any size, /proc files included: it reads to EOF).
Task<Result<std::vector<std::byte>>> read_file(std::filesystem::path path);
// Creates or truncates `path` (with `mode` for a new file) and writes `data` to it.
Task<Result<void>> write_file(std::filesystem::path path, std::span<const std::byte> data,
                              mode_t mode = 0644);

struct DirEntry {
  std::string name;
  FileType type = FileType::unknown;  // from d_type; unknown where the file system omits it
};
// The entries of a directory except "." and "..", in the order the file system gives
// them. On the blocking pool: io_uring has no getdents.
Task<Result<std::vector<DirEntry>>> list_dir(std::filesystem::path path);

}  // namespace coring::fs
