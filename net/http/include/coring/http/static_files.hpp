// StaticFiles: a handler that serves the regular files below a directory.
//
//   http::Router router;
//   router.prefix("GET", "/static/", http::StaticFiles("/srv/www").mount("/static/"));
//   // GET /static/css/site.css serves /srv/www/css/site.css
//
// What it answers, with nginx's static module and RFC 9110 as the reference:
//   - GET and HEAD (the server drops a HEAD's body); any other method 405, `Allow: GET, HEAD`.
//   - The path below the mount prefix, percent-decoded (a malformed escape or %00: 400), is
//     opened with File::open_beneath, so nothing outside the directory is reached: `..`
//     above it, an absolute path and a symlink leading out are 404s, as is a name that does
//     not exist; a file the process may not read is 403.
//   - A path ending in '/' serves options.index in that directory (404 without one); a
//     directory named without the '/' is a 301 to the path with it. Only regular files
//     are served: a FIFO, socket or device is 404, and opening one never blocks.
//   - Last-Modified, a weak ETag (W/"size-mtime"), Cache-Control when options.max_age is
//     set, Content-Type by extension (content_type_for). If-None-Match, or else
//     If-Modified-Since, answers 304 when the file has not changed.
//   - Range on GET, one `bytes` range (`a-b`, `a-`, `-n`): 206 with Content-Range, or 416
//     when it starts past the end. Several ranges, another unit or a malformed field are
//     ignored (200, the whole file), as is a Range whose If-Range is not the file's exact
//     Last-Modified date (the ETag is weak, so an entity tag never matches).
//   - Other failures are a 500, logged (logger "http") with the path; bodies of errors are
//     a line of text, never the file system's path.
//
// A StaticFiles is cheap to copy (copies share the directory's fd) and immutable: one
// handler may serve requests on several loops' threads at once. It must outlive the
// requests it serves, as any handler must.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "coring/http/message.hpp"
#include "coring/runtime/task.hpp"

namespace coring::http {

struct StaticOptions {
  // The file served for a path ending in '/'; nullptr or "": such paths are 404s (no
  // directory listings). Copied by the constructor.
  const char* index = "index.html";
  // false: no symlink on the path is followed, even one that stays inside (404).
  bool follow_symlinks = true;
  // Cache-Control: max-age in seconds on what is served; 0: no Cache-Control field.
  std::uint32_t max_age = 0;
  // How long a file found stays open and known by its name (nginx's open_file_cache
  // with open_file_cache_valid): a request for it then costs no system call of the
  // lookup. A change on disk is seen once the entry expires. 0: every request looks up.
  // Each entry holds an fd: the cache keeps at most 4,096 files and a quarter of the fd
  // limit (RLIMIT_NOFILE), closes expired ones at later requests (all of them at least
  // once per this many ms), and is emptied when an open fails for want of fds.
  std::uint32_t open_file_cache_ms = 0;
};
static_assert(std::is_trivially_destructible_v<StaticOptions>);

class StaticFiles {
 public:
  // Opens the directory `root` (O_PATH, so reading it is not required, only searching).
  // Throws std::system_error, naming the path, if it does not exist or is not a directory.
  explicit StaticFiles(const std::filesystem::path& root, StaticOptions options = {});

  // A copy that serves paths below `prefix` (a trailing '/' is optional): "/static/a.css"
  // is a.css of the directory, "/static" a 301 to "/static/", and a path outside the
  // prefix is 404. Without a mount the whole path names the file. Throws
  // std::invalid_argument unless `prefix` is empty or starts with '/'.
  [[nodiscard]] StaticFiles mount(std::string_view prefix) const;

  Task<Response> operator()(Request& request) const;

 private:
  struct Root;  // the directory and the options: shared by copies, never changed

  std::shared_ptr<const Root> root_;
  std::string prefix_;  // without a trailing '/': "" or "/static"
};

// The Content-Type for a file name, by its extension (ignoring case): text types with
// `; charset=utf-8`, application/octet-stream for an extension it does not know.
[[nodiscard]] std::string_view content_type_for(std::string_view name) noexcept;

}  // namespace coring::http
