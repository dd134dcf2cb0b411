// FileTable: slots of the ring's registered-file table, handed to Files.
//
// The table is registered sparse (every slot empty) and filled one slot at a time with
// IORING_REGISTER_FILES_UPDATE, so attaching a file costs one io_uring_register(2) and
// nothing is re-registered. Emptying a slot (fd -1) while a request that named it is in
// flight is safe: the kernel holds its own reference to the file until that request
// completes.
#include "coring/fs/file_table.hpp"

#include <cassert>
#include <cerrno>
#include <system_error>

#include "coring/fs/detail/op.hpp"
#include "coring/fs/file.hpp"
#include "coring/ring/detail/log.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::fs {

FileTable::FileTable(EventLoop& loop, std::uint32_t slots) : loop_(loop), used_(slots, false) {
  if (auto registered = coring::detail::LoopOps(loop_).ring().register_files_sparse(slots);
      !registered) {
    throw std::system_error(registered.error(), "fs::FileTable: registering the file table");
  }
}

FileTable::~FileTable() {
  assert(attached_ == 0 && "a FileTable destroyed with files attached");
  if (auto done = coring::detail::LoopOps(loop_).ring().unregister_files(); !done) {
    coring::detail::log_error("fs", "fs::~FileTable: unregister_files", done.error());
  }
}

Result<void> FileTable::attach(File& file) {
  if (!file.is_open()) return detail::make_error(-EBADF, "attach", file.path());
  if (file.table_ != nullptr) return detail::make_error(-EBUSY, "attach", file.path());
  std::uint32_t slot = 0;
  while (slot < used_.size() && used_[slot]) ++slot;
  if (slot == used_.size()) return detail::make_error(-ENFILE, "attach", file.path());
  const int fd = file.fd_;
  if (auto updated = coring::detail::LoopOps(loop_).ring().register_files_update(slot, {&fd, 1});
      !updated) {
    return Error(updated.error(), "attach", file.path());
  }
  used_[slot] = true;
  ++attached_;
  file.table_ = this;
  file.target_ = static_cast<int>(slot);
  return {};
}

void FileTable::detach(File& file) noexcept {
  assert(file.table_ == this);
  const auto slot = static_cast<std::uint32_t>(file.target_);
  const int empty = -1;
  if (auto updated = coring::detail::LoopOps(loop_).ring().register_files_update(slot, {&empty, 1});
      !updated) {
    coring::detail::log_error("fs", "fs::FileTable::detach: register_files_update",
                              updated.error());
  }
  used_[slot] = false;
  --attached_;
  file.table_ = nullptr;
  file.target_ = file.fd_;
}

}  // namespace coring::fs
