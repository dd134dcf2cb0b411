// Stat: what statx(2) says about a file, with accessors for the fields people use.
#pragma once

#include <sys/stat.h>

#include <cstdint>

namespace coring::fs {

enum class FileType : std::uint8_t {
  unknown,
  regular,
  directory,
  symlink,
  block_device,
  character_device,
  fifo,
  socket,
};

// The type bits of a mode (S_IFMT), or of a directory entry's d_type.
[[nodiscard]] FileType file_type_of_mode(std::uint32_t mode) noexcept;

struct Stat {
  struct statx raw {};

  [[nodiscard]] std::uint64_t size() const noexcept { return raw.stx_size; }
  [[nodiscard]] FileType type() const noexcept { return file_type_of_mode(raw.stx_mode); }
  [[nodiscard]] bool is_regular() const noexcept { return type() == FileType::regular; }
  [[nodiscard]] bool is_directory() const noexcept { return type() == FileType::directory; }
  [[nodiscard]] bool is_symlink() const noexcept { return type() == FileType::symlink; }
  // The permission bits, with set-uid, set-gid and sticky (mode & 07777).
  [[nodiscard]] mode_t permissions() const noexcept { return raw.stx_mode & 07777; }
  // Space allocated on disk, in 512-byte blocks: less than size() for a sparse file.
  [[nodiscard]] std::uint64_t blocks() const noexcept { return raw.stx_blocks; }
  [[nodiscard]] std::uint32_t links() const noexcept { return raw.stx_nlink; }
  [[nodiscard]] std::uint64_t inode() const noexcept { return raw.stx_ino; }
  [[nodiscard]] bool same_file_as(const Stat& other) const noexcept {
    return raw.stx_ino == other.raw.stx_ino && raw.stx_dev_major == other.raw.stx_dev_major &&
           raw.stx_dev_minor == other.raw.stx_dev_minor;
  }
  // O_DIRECT alignment of buffers in memory and of file offsets and lengths, or 0 when
  // the file system did not say (ask with STATX_DIOALIGN, 6.1) or has no direct I/O.
  [[nodiscard]] std::uint32_t direct_memory_alignment() const noexcept {
    return (raw.stx_mask & STATX_DIOALIGN) != 0 ? raw.stx_dio_mem_align : 0;
  }
  [[nodiscard]] std::uint32_t direct_offset_alignment() const noexcept {
    return (raw.stx_mask & STATX_DIOALIGN) != 0 ? raw.stx_dio_offset_align : 0;
  }
};

}  // namespace coring::fs
