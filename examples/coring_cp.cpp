// coring-cp: copies a file with N reads and writes in flight on registered buffers.
//
//   usage: coring-cp SRC DST [--qd N] [--bs SIZE]
//     --qd N     chunks in flight at once (1..1024, default 16)
//     --bs SIZE  bytes per chunk, with an optional K, M or G suffix (4K..64M, default 256K)
//   DST may be an existing directory: the copy is then DST/basename(SRC).
//
// N workers share one cursor over the source's data extents. Each holds one buffer of a
// FixedBufferPool registered with the loop's ring and repeats: take the next chunk, read
// it with read_fixed, write it to the same offset with write_fixed. Both files sit in a
// FileTable (direct descriptors), so no request looks a file up. Holes (found with
// SEEK_DATA/SEEK_HOLE) are not read, and the destination is sized at the end, so a sparse file
// stays sparse and an empty file stays empty; the destination gets the source's permission bits.
//
// The buffers are fitted to the file: no more of them than it has chunks, none larger
// than its largest extent (a 6-byte file takes one page whatever --qd and --bs say).
// Buffers that would not fit in the memory the process may still take are refused
// before DST is touched, with the figures, rather than ending in std::bad_alloc or the
// OOM killer. The defaults register 16 x 256 KiB = 4 MiB: Linux charges registered
// buffers, and from 6.14 the ring too, to RLIMIT_MEMLOCK for a process without
// CAP_IPC_LOCK, and that leaves room under Debian's default limit of 8 MiB. Where the
// limit forbids registering them, the copy goes on with plain reads and writes and says
// so on stderr. On success it prints the bytes copied and the rate; on any failure it
// prints what failed, naming the path, and exits 1 — a failed copy never exits 0. Bad
// usage exits 2.
#include <fcntl.h>
#include <libgen.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <coring/fs/buffers.hpp>
#include <coring/fs/copy.hpp>
#include <coring/fs/file.hpp>
#include <coring/fs/file_table.hpp>
#include <coring/fs/paths.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/when_all.hpp>

namespace fs = coring::fs;
using coring::Task;

namespace {

struct Options {
  std::string source;
  std::string target;
  std::uint32_t queue_depth = 16;
  std::size_t block_size = 256 << 10;
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr, "coring-cp: %s\nusage: coring-cp SRC DST [--qd N] [--bs SIZE]\n", problem);
  std::exit(2);
}

// "64K", "1M", "4096": a size in bytes, or nothing if it does not parse.
std::optional<std::uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t scale = 1;
  switch (text.back()) {
    case 'K':
    case 'k':
      scale = 1ULL << 10;
      break;
    case 'M':
    case 'm':
      scale = 1ULL << 20;
      break;
    case 'G':
    case 'g':
      scale = 1ULL << 30;
      break;
    default:
      break;
  }
  if (scale != 1) text.remove_suffix(1);
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::uint64_t value = 0;  // at most 12 digits: below 2^40
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / scale) return std::nullopt;
  return value * scale;
}

Options parse(int argc, char** argv) {
  Options options;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--qd" || word == "--bs") {
      if (i + 1 == argc) usage("an option lacks its value");
      const auto value = parse_size(argv[++i]);
      if (word == "--qd") {
        if (!value || *value < 1 || *value > 1024) usage("--qd must be 1..1024");
        options.queue_depth = static_cast<std::uint32_t>(*value);
      } else {
        if (!value || *value < 4096 || *value > (64U << 20)) usage("--bs must be 4K..64M");
        options.block_size = static_cast<std::size_t>(*value);
      }
    } else if (word == "-h" || word == "--help") {
      std::printf("usage: coring-cp SRC DST [--qd N] [--bs SIZE]\n");
      std::exit(0);
    } else if (word.starts_with("--")) {
      usage(("unknown option " + std::string(word)).c_str());
    } else {
      paths.emplace_back(word);
    }
  }
  if (paths.size() != 2) usage("expected a source and a destination");
  options.source = paths[0];
  options.target = paths[1];
  return options;
}

// The chunks still to copy: the data extents, cut into block-size pieces.
class Cursor {
 public:
  Cursor(std::vector<fs::Extent> extents, std::size_t block_size)
      : extents_(std::move(extents)), block_size_(block_size) {}

  std::optional<fs::Extent> next() {
    while (index_ < extents_.size()) {
      const fs::Extent& extent = extents_[index_];
      if (done_ < extent.length) {
        const std::uint64_t length = std::min<std::uint64_t>(block_size_, extent.length - done_);
        const fs::Extent chunk{extent.offset + done_, length};
        done_ += length;
        return chunk;
      }
      ++index_;
      done_ = 0;
    }
    return std::nullopt;
  }

 private:
  std::vector<fs::Extent> extents_;
  std::size_t block_size_;
  std::size_t index_ = 0;
  std::uint64_t done_ = 0;
};

// "4 KiB", "1.5 GiB": a size for messages.
std::string human(std::uint64_t bytes) {
  constexpr const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  for (; value >= 1024 && unit + 1 < std::size(units); ++unit) value /= 1024;
  char text[32];
  const bool whole = value == static_cast<double>(static_cast<std::uint64_t>(value));
  std::snprintf(text, sizeof(text), whole ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

// The buffers a copy of `extents` needs: one per chunk in flight, no more than the file
// has chunks, each as large as a chunk can be (whole pages, at most --bs).
struct Buffers {
  std::uint32_t count = 1;
  std::size_t size = fs::AlignedBuffer::page_size;

  [[nodiscard]] std::uint64_t bytes() const { return std::uint64_t{count} * size; }
  [[nodiscard]] std::string describe(const Options& options) const {
    return human(bytes()) + " of buffers (" + std::to_string(count) + " of " + human(size) +
           ": --qd " + std::to_string(options.queue_depth) + " and --bs " +
           human(options.block_size) + ", fitted to the file)";
  }
};

Buffers fit_buffers(const std::vector<fs::Extent>& extents, const Options& options) {
  constexpr std::uint64_t page = fs::AlignedBuffer::page_size;
  std::uint64_t chunks = 0;
  std::uint64_t largest = 0;
  for (const fs::Extent& extent : extents) {
    chunks += (extent.length + options.block_size - 1) / options.block_size;
    largest = std::max(largest, extent.length);
  }
  Buffers buffers;
  buffers.count =
      static_cast<std::uint32_t>(std::clamp<std::uint64_t>(chunks, 1, options.queue_depth));
  buffers.size = static_cast<std::size_t>(
      std::clamp<std::uint64_t>((largest + page - 1) / page * page, page, options.block_size));
  return buffers;
}

// The first number in a file such as memory.max, or nothing (no file, or "max").
std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

// The number after `key` on a line of a "key value" file: /proc/meminfo, memory.stat.
std::optional<std::uint64_t> read_field(const std::string& path, std::string_view key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string name;
    std::uint64_t value = 0;
    if (words >> name >> value && name == key) return value;
  }
  return std::nullopt;
}

// What the memory cgroup's limit leaves: the limit less the anonymous memory charged to
// the cgroup (its page cache can be reclaimed). Nothing where no limit is readable.
std::optional<std::uint64_t> cgroup_room() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {  // "id:controllers:path"
    const std::size_t first = line.find(':');
    const std::size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    // Built by appending: g++ 12 at -O3 reports a false -Wrestrict for "," + substr().
    std::string controllers = ",";
    controllers += line.substr(first + 1, second - first - 1);
    controllers += ',';
    const std::string path = line.substr(second + 1);
    std::optional<std::uint64_t> limit;
    std::optional<std::uint64_t> used;
    if (controllers == ",,") {  // cgroup v2
      limit = read_number("/sys/fs/cgroup" + path + "/memory.max");
      used = read_field("/sys/fs/cgroup" + path + "/memory.stat", "anon");
    } else if (controllers.find(",memory,") != std::string::npos) {  // cgroup v1
      limit = read_number("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes");
      used = read_field("/sys/fs/cgroup/memory" + path + "/memory.stat", "total_rss");
    }
    if (limit) return *limit - std::min(*limit, used.value_or(0));
  }
  return std::nullopt;
}

// What RLIMIT_AS leaves of the address space, or nothing without a limit.
std::optional<std::uint64_t> address_space_room() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t used = read_number("/proc/self/statm").value_or(0) * page;
  return limit.rlim_cur - std::min<std::uint64_t>(limit.rlim_cur, used);
}

// Whether this process can still take `buffers`: within the memory the system has
// available, the memory cgroup's limit and RLIMIT_AS. Says why not on stderr.
bool memory_fits(const Buffers& buffers, const Options& options) {
  std::uint64_t room = std::numeric_limits<std::uint64_t>::max();
  const char* bound = nullptr;
  const auto bound_by = [&](std::optional<std::uint64_t> bytes, const char* what) {
    if (bytes && *bytes < room) {
      room = *bytes;
      bound = what;
    }
  };
  const std::optional<std::uint64_t> available_kib = read_field("/proc/meminfo", "MemAvailable:");
  if (available_kib) bound_by(*available_kib * 1024, "the system has available (MemAvailable)");
  bound_by(cgroup_room(), "the memory cgroup's limit leaves");
  bound_by(address_space_room(), "RLIMIT_AS (ulimit -v) leaves");
  if (buffers.bytes() <= room) return true;
  std::fprintf(stderr,
               "coring-cp: this copy needs %s, more than the %s that %s: lower --qd or --bs\n",
               buffers.describe(options).c_str(), human(room).c_str(), bound);
  return false;
}

struct Copy {
  const fs::File& source;
  const fs::File& target;
  Cursor cursor;
  std::uint64_t bytes = 0;
  std::optional<fs::Error> error;  // the first failure: every worker stops at it
};

Task<fs::Result<std::size_t>> read_chunk(const fs::File& file, fs::FixedSlice buffer,
                                         bool registered, std::uint64_t offset) {
  if (registered) co_return co_await file.read_fixed(buffer, offset);
  co_return co_await file.read_at(buffer.bytes, offset);
}

Task<fs::Result<std::size_t>> write_chunk(const fs::File& file, fs::FixedSlice buffer,
                                          bool registered, std::uint64_t offset) {
  if (registered) co_return co_await file.write_fixed(buffer, offset);
  co_return co_await file.write_at(buffer.bytes, offset);
}

// Reads or writes all of `buffer` at `offset`, continuing short transfers.
template <typename Transfer>
Task<std::optional<fs::Error>> transfer_all(Transfer transfer, const fs::File& file,
                                            fs::FixedSlice buffer, bool registered,
                                            std::uint64_t offset, const char* operation) {
  for (std::size_t done = 0; done < buffer.bytes.size();) {
    const fs::FixedSlice rest = buffer.subspan(done, buffer.bytes.size() - done);
    fs::Result<std::size_t> n = co_await transfer(file, rest, registered, offset + done);
    if (!n) co_return n.failure();
    if (*n == 0) {  // the source shrank under us, or the device took nothing
      co_return fs::Error(std::make_error_code(std::errc::io_error), operation, file.path());
    }
    done += *n;
  }
  co_return std::nullopt;
}

Task<void> worker(Copy& copy, fs::FixedBufferPool& pool) {
  fs::FixedBuffer buffer = co_await pool.acquire();
  const bool registered = buffer.registered();
  while (!copy.error) {
    const std::optional<fs::Extent> chunk = copy.cursor.next();
    if (!chunk) break;
    const fs::FixedSlice slice = buffer.first(static_cast<std::size_t>(chunk->length));
    auto failed = co_await transfer_all(read_chunk, copy.source, slice, registered, chunk->offset,
                                        "read (source shrank?)");
    if (!failed) {
      failed = co_await transfer_all(write_chunk, copy.target, slice, registered, chunk->offset,
                                     "write");
    }
    if (failed) {
      if (!copy.error) copy.error = std::move(*failed);
      co_return;
    }
    copy.bytes += chunk->length;
  }
}

// Registered buffers, or plain ones with a warning where the kernel refuses to pin them.
// False, after saying why, where there is no memory for them.
bool make_pool(std::optional<fs::FixedBufferPool>& pool, coring::EventLoop& loop,
               const Buffers& buffers, const Options& options) {
  try {
    try {
      pool.emplace(loop, fs::FixedBufferPoolOptions{buffers.count, buffers.size, true});
      return true;
    } catch (const std::system_error& e) {
      std::string advice;
      if (e.code() == std::errc::not_enough_memory) {
        advice =
            "; lower --qd or --bs to register them: this copy takes " + buffers.describe(options);
      }
      std::fprintf(stderr, "coring-cp: warning: %s; copying without registered buffers%s\n",
                   e.what(), advice.c_str());
    }
    pool.emplace(loop, fs::FixedBufferPoolOptions{buffers.count, buffers.size, false});
    return true;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "coring-cp: out of memory for %s: lower --qd or --bs\n",
                 buffers.describe(options).c_str());
    return false;
  }
}

// DST, or DST/basename(SRC) when DST is a directory.
Task<std::string> target_path(const Options& options) {
  fs::Result<fs::Stat> st = co_await fs::stat(options.target);
  if (!st || !st->is_directory()) co_return options.target;
  std::string source = options.source;
  co_return options.target + "/" + ::basename(source.data());
}

int fail(const fs::Error& error) {
  std::fprintf(stderr, "coring-cp: %s\n", error.message().c_str());
  return 1;
}

Task<int> copy(coring::EventLoop& loop, const Options& options) {
  // Declared before the files, so destroyed after them: a File leaves its table slot
  // when it is closed or destroyed.
  std::optional<fs::FileTable> table;
  fs::Result<fs::File> source = co_await fs::File::open(options.source, O_RDONLY);
  if (!source) co_return fail(source.failure());
  fs::Result<fs::Stat> source_stat = co_await source->stat();
  if (!source_stat) co_return fail(source_stat.failure());
  if (!source_stat->is_regular()) {
    co_return fail(
        fs::Error(std::make_error_code(source_stat->is_directory() ? std::errc::is_a_directory
                                                                   : std::errc::invalid_argument),
                  "copy (not a regular file)", options.source));
  }
  const std::uint64_t size = source_stat->size();
  fs::Result<std::vector<fs::Extent>> extents = co_await fs::data_extents(*source, size);
  if (!extents) co_return fail(extents.failure());
  // Before DST is opened: a copy refused for want of memory leaves it as it was.
  const Buffers buffers = fit_buffers(*extents, options);
  std::optional<fs::FixedBufferPool> pool;
  if (!memory_fits(buffers, options) || !make_pool(pool, loop, buffers, options)) co_return 1;

  const std::string target_name = co_await target_path(options);
  if (fs::Result<fs::Stat> st = co_await fs::stat(target_name);
      st && st->same_file_as(*source_stat)) {
    co_return fail(fs::Error(std::make_error_code(std::errc::invalid_argument), "copy (same file)",
                             options.source, target_name));
  }
  fs::Result<fs::File> target = co_await fs::File::open(target_name, O_WRONLY | O_CREAT | O_TRUNC,
                                                        source_stat->permissions());
  if (!target) co_return fail(target.failure());
  if (auto chmod = co_await target->set_permissions(source_stat->permissions()); !chmod) {
    co_return fail(chmod.failure());
  }

  try {
    table.emplace(loop, 2);
    if (auto attached = table->attach(*source); !attached)
      throw fs::FilesystemError(attached.failure());
    if (auto attached = table->attach(*target); !attached)
      throw fs::FilesystemError(attached.failure());
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "coring-cp: warning: %s; copying without registered files\n", e.what());
  }
  Copy state{*source, *target, Cursor(std::move(*extents), options.block_size), 0, std::nullopt};
  const auto start = std::chrono::steady_clock::now();
  std::vector<Task<void>> workers;
  for (std::uint32_t i = 0; i < buffers.count; ++i) workers.push_back(worker(state, *pool));
  co_await coring::when_all(std::move(workers));
  if (state.error) {
    fail(*state.error);
    std::fprintf(stderr, "coring-cp: copy failed; '%s' is incomplete\n", target_name.c_str());
    co_return 1;
  }
  // Sets the size: a trailing hole, or an empty file, is not written by any worker.
  if (auto sized = co_await target->truncate(size); !sized) co_return fail(sized.failure());
  if (auto closed = co_await target->close(); !closed) co_return fail(closed.failure());
  if (auto closed = co_await source->close(); !closed) co_return fail(closed.failure());
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const double seconds = std::max(elapsed.count(), 1e-9);
  std::printf("copied %llu bytes (%llu of data) in %.3f s: %.1f MB/s\n",
              static_cast<unsigned long long>(size), static_cast<unsigned long long>(state.bytes),
              seconds, static_cast<double>(size) / 1e6 / seconds);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  try {
    coring::LoopOptions loop_options;
    loop_options.entries = std::bit_ceil(std::max<std::uint32_t>(2 * options.queue_depth, 8));
    coring::EventLoop loop(loop_options);
    return loop.run(copy(loop, options));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-cp: %s\n", e.what());
    return 1;
  }
}
