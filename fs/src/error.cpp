// fs errors and the layer's small shared pieces: error messages, the fs logger, the
// kernel probe, file types.
#include "coring/fs/error.hpp"

#include <optional>
#include <string>

#include "coring/fs/detail/op.hpp"
#include "coring/fs/probe.hpp"
#include "coring/fs/stat.hpp"
#include "coring/ring/detail/log.hpp"
#include "coring/ring/ring.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::fs {

std::string Error::context() const {
  std::string text = operation_;
  if (!path_.empty()) text += " '" + path_ + "'";
  if (!other_path_.empty()) text += " -> '" + other_path_ + "'";
  return text;
}

std::string Error::message() const { return context() + ": " + code_.message(); }

namespace {
std::optional<ring::Probe> probe_backend(ring::Backend backend) noexcept {
  ring::Params params;
  auto created = ring::Ring::create(2, params, backend);
  if (!created) {
    coring::detail::log_error("fs", "fs::supports: io_uring_setup", created.error());
    return std::nullopt;
  }
  auto probed = created->get_probe();
  if (!probed) {
    coring::detail::log_error("fs", "fs::supports: IORING_REGISTER_PROBE", probed.error());
    return std::nullopt;
  }
  return *probed;
}
}  // namespace

bool supports(ring::Op op) noexcept {
  // The backend of the loop the operation runs on: the epoll emulation implements a
  // set of its own, and where io_uring is blocked the kernel cannot be asked at all.
  // Thread-safe static initialisation: the first caller per backend probes.
  const EventLoop* loop = EventLoop::current();
  if (loop != nullptr && loop->backend() == ring::Backend::epoll) {
    static const std::optional<ring::Probe> emulated = probe_backend(ring::Backend::epoll);
    return emulated && emulated->is_supported(op);
  }
  static const std::optional<ring::Probe> kernel = probe_backend(ring::Backend::io_uring);
  return kernel && kernel->is_supported(op);
}

FileType file_type_of_mode(std::uint32_t mode) noexcept {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return FileType::regular;
    case S_IFDIR:
      return FileType::directory;
    case S_IFLNK:
      return FileType::symlink;
    case S_IFBLK:
      return FileType::block_device;
    case S_IFCHR:
      return FileType::character_device;
    case S_IFIFO:
      return FileType::fifo;
    case S_IFSOCK:
      return FileType::socket;
    default:
      return FileType::unknown;
  }
}

namespace detail {

Error make_error(std::int32_t res, const char* operation, std::string path) {
  return Error(std::error_code(-res, std::system_category()), operation, std::move(path));
}

Error make_error(std::int32_t res, Where where) {
  return make_error(res, where.operation, where.path != nullptr ? *where.path : std::string());
}

}  // namespace detail
}  // namespace coring::fs
