// FileTable: a loop's table of registered files, for File operations that skip the
// per-request file lookup.
//
// docs/fs.md, "Registered buffers and files", describes it. A ring has one file table,
// so a loop has at most one FileTable (a second fails with EBUSY). Create, use and
// destroy it on the loop's thread; detach or close every attached File first.
#pragma once

#include <cstdint>
#include <vector>

#include "coring/fs/error.hpp"

namespace coring {
class EventLoop;
}

namespace coring::fs {

class File;

class FileTable {
 public:
  // Registers a sparse table of `slots` entries (5.19's IORING_RSRC_REGISTER_SPARSE
  // through register_files_sparse). Throws std::system_error if the kernel refuses.
  FileTable(EventLoop& loop, std::uint32_t slots);
  ~FileTable();
  FileTable(const FileTable&) = delete;
  FileTable& operator=(const FileTable&) = delete;

  // Installs `file` in a free slot. Fails with ENFILE ("file table full") when every
  // slot is taken, EBADF for a closed File, EBUSY for one already attached.
  Result<void> attach(File& file);
  // Takes `file` out of its slot; its operations use its fd again.
  void detach(File& file) noexcept;

  [[nodiscard]] std::uint32_t slots() const noexcept {
    return static_cast<std::uint32_t>(used_.size());
  }
  [[nodiscard]] std::uint32_t attached() const noexcept { return attached_; }

 private:
  EventLoop& loop_;
  std::vector<bool> used_;
  std::uint32_t attached_ = 0;
};

}  // namespace coring::fs
