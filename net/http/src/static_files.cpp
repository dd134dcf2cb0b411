// StaticFiles: a request's path becomes a name below the root directory, which is opened
// with openat2's RESOLVE_BENEATH (File::open_beneath), so that confinement is the
// kernel's and not a check of the string (`..`, symlinks and races with renames are all
// resolved by it). The file is opened with O_NONBLOCK, so that a FIFO without a writer
// does not hold the open, and its type is asked with statx on the open fd before any
// byte is read. A regular file then has O_NONBLOCK cleared: some kernels' io_uring makes
// every read of an O_NONBLOCK file non-blocking, and a read of pages not yet cached would
// fail with EAGAIN instead of waiting for them. The response carries the open File: the
// server sends its range with send_file, and closes it with the response.
//
// The open-file cache (StaticOptions::open_file_cache_ms) keeps what a lookup found — the
// open file and its statx — by name for that long, shared by the loops under a mutex:
// a hit costs no system call (no openat2, statx, fcntl or close), as nginx's
// open_file_cache. Only regular files are kept; a miss or an expired entry looks the
// name up again. A file replaced by a rename keeps its old inode's bytes until the entry
// expires; one truncated in place ends the connection whose send_file it cuts short.
// Every entry holds an fd, and fds are what accepts and opens need: expired entries are
// closed (at a lookup of their name, and all of them by a sweep at most once per
// lifetime, at a lookup), the cache holds at most a quarter of the process's fd limit,
// and an open that fails for want of fds empties the cache and tries once more.
#include "coring/http/static_files.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coring/fs/file.hpp"
#include "coring/http/headers.hpp"
#include "coring/ring/detail/log.hpp"

namespace coring::http {

struct StaticFiles::Root {
  struct Cached {
    std::shared_ptr<const fs::File> file;
    fs::Stat stat;
    std::chrono::steady_clock::time_point until;
  };
  // The most names the cache holds: past that, expired entries go, and if none has
  // expired, every entry. Below this, a quarter of the fd limit (fd_share()).
  static constexpr std::size_t cache_entries = 4096;

  fs::File dir;
  std::string index;  // empty: no index file
  fs::BeneathOptions beneath;
  std::uint32_t max_age = 0;
  std::chrono::milliseconds cache_for{0};
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, Cached> cache;
  mutable std::size_t max_entries = cache_entries;             // under cache_mutex
  mutable std::chrono::steady_clock::time_point next_sweep{};  // under cache_mutex

  // A quarter of RLIMIT_NOFILE's soft limit, at least 16: what the cache may hold.
  static std::size_t fd_share() noexcept {
    ::rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
      return cache_entries;
    return std::clamp<std::size_t>(static_cast<std::size_t>(limit.rlim_cur / 4), 16, cache_entries);
  }

  // Entries leave the map under the lock into `dropped`, whose files close when the
  // caller destroys it, after the lock (or later, when the last response sending one
  // ends).
  using Dropped = std::vector<Cached>;

  void drop_if(Dropped& dropped, const auto& doomed) const {
    for (auto it = cache.begin(); it != cache.end();) {
      if (doomed(it->second)) {
        dropped.push_back(std::move(it->second));
        it = cache.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Once per cache_for, at a lookup: every expired entry goes, and the bound follows
  // the fd limit as it is now.
  void sweep_if_due(Dropped& dropped, std::chrono::steady_clock::time_point now) const {
    if (now < next_sweep) return;
    drop_if(dropped, [now](const Cached& c) { return c.until <= now; });
    max_entries = fd_share();
    next_sweep = now + cache_for;
  }

  [[nodiscard]] std::optional<Cached> cached(const std::string& name,
                                             std::chrono::steady_clock::time_point now) const {
    Dropped dropped;
    const std::lock_guard lock(cache_mutex);
    sweep_if_due(dropped, now);
    const auto found = cache.find(name);
    if (found == cache.end()) return std::nullopt;
    if (found->second.until <= now) {
      dropped.push_back(std::move(found->second));
      cache.erase(found);
      return std::nullopt;
    }
    return found->second;
  }
  void keep(const std::string& name, Cached entry) const {
    Dropped dropped;
    const std::lock_guard lock(cache_mutex);
    const auto now = entry.until - cache_for;
    sweep_if_due(dropped, now);
    if (cache.size() >= max_entries && cache.find(name) == cache.end()) {
      drop_if(dropped, [now](const Cached& c) { return c.until <= now; });
      if (cache.size() >= max_entries) drop_if(dropped, [](const Cached&) { return true; });
    }
    cache.insert_or_assign(name, std::move(entry));
  }
  // Closes every entry's file (those a response still sends close when it ends).
  void drop_all() const {
    std::unordered_map<std::string, Cached> dropped;
    const std::lock_guard lock(cache_mutex);
    dropped.swap(cache);
  }
};

StaticFiles::StaticFiles(const std::filesystem::path& root, StaticOptions options) {
  // A blocking open is fine here: this is configuration, done before serving.
  const int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw std::system_error(error, std::system_category(),
                            "StaticFiles: cannot open the directory '" + root.native() + "'");
  }
  auto shared = std::make_shared<Root>();
  shared->dir = fs::File(fd, root.native());
  shared->index = options.index != nullptr ? options.index : "";
  shared->beneath = fs::BeneathOptions{.no_symlinks = !options.follow_symlinks};
  shared->max_age = options.max_age;
  shared->cache_for = std::chrono::milliseconds(options.open_file_cache_ms);
  root_ = std::move(shared);
}

StaticFiles StaticFiles::mount(std::string_view prefix) const {
  if (!prefix.empty() && prefix.front() != '/') {
    throw std::invalid_argument("StaticFiles::mount: the prefix '" + std::string(prefix) +
                                "' does not start with '/'");
  }
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  StaticFiles copy = *this;
  copy.prefix_ = prefix;
  return copy;
}

namespace {

struct ContentType {
  std::string_view extension;
  std::string_view type;
};

constexpr std::array<ContentType, 33> content_types = {{
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"xml", "application/xml"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"webmanifest", "application/manifest+json"},
}};

constexpr std::string_view octet_stream = "application/octet-stream";

}  // namespace

std::string_view content_type_for(std::string_view name) noexcept {
  const std::size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return octet_stream;
  const std::string_view extension = name.substr(dot + 1);
  for (const ContentType& entry : content_types) {
    if (equal_ignoring_case(entry.extension, extension)) return entry.type;
  }
  return octet_stream;
}

namespace {

Response error_response(int status) {
  return Response::text(status, std::string(reason_phrase(status)) + "\n");
}

Response internal_error(const fs::Error& error) {
  coring::detail::log("http", coring::detail::LogLevel::error, "StaticFiles: " + error.message());
  return error_response(500);
}

// Whether an open failed for want of fds: the process's (EMFILE) or the system's (ENFILE).
bool out_of_fds(const fs::Error& error) noexcept {
  return error.code() == std::error_code(EMFILE, std::system_category()) ||
         error.code() == std::error_code(ENFILE, std::system_category());
}

// What a failed open answers. A name that leads out of the root (EXDEV), or through a
// symlink the options refuse (ELOOP), is as absent as one that does not exist: a 404
// does not tell a client what lies outside. A socket or a device without a driver
// (ENXIO, ENODEV) is not a regular file.
Response open_failure(const fs::Error& error) {
  if (error.code().category() != std::system_category()) return internal_error(error);
  switch (error.code().value()) {
    case ENOENT:
    case ENOTDIR:
    case EXDEV:
    case ELOOP:
    case ENAMETOOLONG:
    case ENXIO:
    case ENODEV:
      return error_response(404);
    case EACCES:
    case EPERM:
      return error_response(403);
    default:
      return internal_error(error);
  }
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path with each %XX replaced by its byte; nullopt for a '%' without two hex digits
// after it and for a NUL, which would cut the name the kernel sees.
std::optional<std::string> percent_decode(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out.push_back(path[i]);
      continue;
    }
    if (path.size() - i < 3) return std::nullopt;
    const int high = hex_digit(path[i + 1]);
    const int low = hex_digit(path[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  if (out.find('\0') != std::string::npos) return std::nullopt;
  return out;
}

// `name` as a path of a URI: bytes other than RFC 3986's unreserved characters,
// sub-delims, ':', '@' and '/' are escaped, so a Location never holds what a browser
// reads differently ("/\host" is "//host" to it).
std::string percent_encode(std::string_view name) {
  constexpr std::string_view kept = "-._~!$&'()*+,;=:@/";
  constexpr std::string_view hex = "0123456789ABCDEF";
  std::string out;
  for (const char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum || kept.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(hex[byte >> 4]);
      out.push_back(hex[byte & 0xF]);
    }
  }
  return out;
}

Response redirect(std::string location, std::string_view query) {
  if (!query.empty()) {
    location += '?';
    location += query;
  }
  Response response = error_response(301);
  response.headers.add("Location", location);
  return response;
}

// The part of `path` below `prefix` (a trailing '/' removed): "" for the prefix itself,
// else a part that starts with '/'; nullopt for a path outside it.
std::optional<std::string_view> below_prefix(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return std::nullopt;
  path.remove_prefix(prefix.size());
  if (!path.empty() && path.front() != '/') return std::nullopt;
  return path;
}

std::string to_hex(std::uint64_t value) {
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value, 16);
  return {digits, end};
}

// What the conditional fields of a request are compared with.
struct Validators {
  std::int64_t mtime;  // seconds since the epoch, as Last-Modified says
  std::string last_modified;
  std::string etag;
};

Validators validators_of(const fs::Stat& stat) {
  const std::int64_t mtime = stat.raw.stx_mtime.tv_sec;
  return {mtime, format_http_date(mtime),
          "W/\"" + to_hex(stat.size()) + "-" + to_hex(static_cast<std::uint64_t>(mtime)) + "\""};
}

// Whether an If-None-Match list holds `etag` by the weak comparison of RFC 9110 (section
// 8.8.3.2: the opaque tags are equal, W/ aside), or is "*". A malformed list matches
// nothing from the malformed member on.
bool none_match_hits(std::string_view list, std::string_view etag) noexcept {
  auto opaque = [](std::string_view tag) {
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    return tag;
  };
  const std::string_view ours = opaque(etag);
  for (;;) {
    while (!list.empty() && (list.front() == ' ' || list.front() == '\t' || list.front() == ','))
      list.remove_prefix(1);
    if (list.empty()) return false;
    if (list == "*") return true;
    const std::size_t start = list.starts_with("W/") ? 2 : 0;
    if (list.size() <= start || list[start] != '"') return false;
    const std::size_t close = list.find('"', start + 1);
    if (close == std::string_view::npos) return false;
    if (list.substr(start, close + 1 - start) == ours) return true;
    list.remove_prefix(close + 1);
  }
}

// RFC 9110, section 13.2.2: If-None-Match decides when it is present, and
// If-Modified-Since (a date it can parse) only when it is not.
bool not_modified(const Request& request, const Validators& validators) {
  if (const auto list = request.header("if-none-match")) {
    return none_match_hits(*list, validators.etag);
  }
  if (const auto since = request.header("if-modified-since")) {
    const std::optional<std::int64_t> date = parse_http_date(*since);
    return date && validators.mtime <= *date;
  }
  return false;
}

struct ByteRange {
  enum class Kind : std::uint8_t { whole, part, unsatisfiable };
  Kind kind = Kind::whole;
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};

// Decimal digits, saturating at the largest value (a position past any file); nullopt
// unless `text` is one or more digits.
std::optional<std::uint64_t> position(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
  }
  return value;
}

// A Range field's one byte range on a file of `size` bytes (RFC 9110, section 14.1.2).
// Anything but a single well-formed `bytes` range is `whole`: a server may ignore Range.
ByteRange parse_range(std::string_view value, std::uint64_t size) noexcept {
  const std::size_t equals = value.find('=');
  if (equals == std::string_view::npos || !equal_ignoring_case(value.substr(0, equals), "bytes"))
    return {};
  std::string_view spec = value.substr(equals + 1);
  while (!spec.empty() && (spec.front() == ' ' || spec.front() == '\t')) spec.remove_prefix(1);
  while (!spec.empty() && (spec.back() == ' ' || spec.back() == '\t')) spec.remove_suffix(1);
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  const std::string_view last_text = spec.substr(dash + 1);
  if (dash == 0) {  // -n: the last n bytes
    const std::optional<std::uint64_t> suffix = position(last_text);
    if (!suffix) return {};
    if (*suffix == 0 || size == 0) return {ByteRange::Kind::unsatisfiable};
    return {ByteRange::Kind::part, size - std::min(*suffix, size), size - 1};
  }
  const std::optional<std::uint64_t> first = position(spec.substr(0, dash));
  const std::optional<std::uint64_t> last =
      last_text.empty() ? std::optional<std::uint64_t>(UINT64_MAX) : position(last_text);
  if (!first || !last || *last < *first) return {};
  if (*first >= size) return {ByteRange::Kind::unsatisfiable};
  return {ByteRange::Kind::part, *first, std::min(*last, size - 1)};
}

// The range a GET asks for. RFC 9110 defines range requests for GET only, so HEAD and
// other methods get the whole. If-Range other than the exact Last-Modified date (an
// entity tag cannot match our weak one) sends the whole file.
ByteRange requested_range(const Request& request, const Validators& validators,
                          std::uint64_t size) {
  if (request.method() != Method::get || request.headers().count("range") != 1) return {};
  if (const auto if_range = request.header("if-range")) {
    if (parse_http_date(*if_range) != validators.mtime) return {};
  }
  return parse_range(*request.header("range"), size);
}

void add_validators(Response& response, const Validators& validators, std::uint32_t max_age) {
  response.headers.add("Last-Modified", validators.last_modified);
  response.headers.add("ETag", validators.etag);
  if (max_age != 0) response.headers.add("Cache-Control", "max-age=" + std::to_string(max_age));
}

// The answer for the regular file `file`, opened as `name`.
template <typename F>
Response answer(const Request& request, F file, const fs::Stat& stat, std::string_view name,
                std::uint32_t max_age) {
  const Validators validators = validators_of(stat);
  if (not_modified(request, validators)) {
    Response response(304);
    add_validators(response, validators, max_age);
    return response;
  }
  const std::uint64_t size = stat.size();
  const ByteRange range = requested_range(request, validators, size);
  if (range.kind == ByteRange::Kind::unsatisfiable) {
    Response response = error_response(416);
    response.headers.add("Content-Range", "bytes */" + std::to_string(size));
    return response;
  }
  const bool part = range.kind == ByteRange::Kind::part;
  const std::uint64_t first = part ? range.first : 0;
  const std::uint64_t length = part ? range.last - range.first + 1 : size;
  Response response =
      Response::file(part ? 206 : 200, std::move(file), first, length, content_type_for(name));
  add_validators(response, validators, max_age);
  response.headers.add("Accept-Ranges", "bytes");
  if (part) {
    response.headers.add("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                              std::to_string(range.last) + "/" +
                                              std::to_string(size));
  }
  return response;
}

// Clears O_NONBLOCK (see the comment at the top). fcntl never blocks.
std::optional<fs::Error> make_blocking(const fs::File& file) {
  const int flags = ::fcntl(file.fd(), F_GETFL);
  if (flags < 0 || ::fcntl(file.fd(), F_SETFL, flags & ~O_NONBLOCK) < 0) {
    return fs::Error(std::error_code(errno, std::system_category()), "fcntl", file.path());
  }
  return std::nullopt;
}

}  // namespace

Task<Response> StaticFiles::operator()(Request& request) const {
  if (request.method() != Method::get && request.method() != Method::head) {
    Response response = error_response(405);
    response.headers.add("Allow", "GET, HEAD");
    co_return response;
  }
  const std::optional<std::string_view> below = below_prefix(request.path(), prefix_);
  if (!below) co_return error_response(404);
  if (below->empty()) co_return redirect(prefix_ + "/", request.query());
  std::optional<std::string> name = percent_decode(below->substr(1));
  if (!name) co_return error_response(400);
  const bool wants_index = name->empty() || name->back() == '/';
  if (wants_index) {
    if (root_->index.empty()) co_return error_response(404);
    *name += root_->index;
  }
  const bool caching = root_->cache_for.count() > 0;
  const auto now =
      caching ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  if (caching) {
    if (std::optional<Root::Cached> hit = root_->cached(*name, now)) {
      co_return answer(request, std::move(hit->file), hit->stat, *name, root_->max_age);
    }
  }
  fs::Result<fs::File> file =
      co_await fs::File::open_beneath(root_->dir, *name, O_RDONLY | O_NONBLOCK, 0, root_->beneath);
  if (!file && caching && out_of_fds(file.failure())) {
    // The cache's files may be what is missing: they go, and the open is tried again.
    root_->drop_all();
    file = co_await fs::File::open_beneath(root_->dir, *name, O_RDONLY | O_NONBLOCK, 0,
                                           root_->beneath);
  }
  if (!file) co_return open_failure(file.failure());
  const fs::Result<fs::Stat> stat = co_await file->stat(STATX_TYPE | STATX_SIZE | STATX_MTIME);
  if (!stat) co_return internal_error(stat.failure());
  if (stat->is_directory() && !wants_index) {
    co_return redirect(prefix_ + "/" + percent_encode(*name) + "/", request.query());
  }
  if (!stat->is_regular()) co_return error_response(404);
  if (const std::optional<fs::Error> error = make_blocking(*file)) co_return internal_error(*error);
  if (caching) {
    auto shared = std::make_shared<const fs::File>(std::move(*file));
    root_->keep(*name, Root::Cached{shared, *stat, now + root_->cache_for});
    co_return answer(request, std::move(shared), *stat, *name, root_->max_age);
  }
  co_return answer(request, std::move(*file), *stat, *name, root_->max_age);
}

}  // namespace coring::http
