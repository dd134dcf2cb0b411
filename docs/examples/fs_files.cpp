// docs/fs.md, "Files": open, write and read at offsets, stat, close, and errors that
// name the path.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <coring/fs/file.hpp>
#include <coring/fs/paths.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>

namespace fs = coring::fs;
using coring::Task;

Task<int> demo(const std::string& dir) {
  const std::string path = dir + "/notes.txt";
  fs::Result<fs::File> file = co_await fs::File::open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (!file) {
    std::fprintf(stderr, "%s\n", file.message().c_str());
    co_return 1;
  }
  const std::string text = "written through io_uring\n";
  // write_all continues short writes; read_all stops early only at end of file.
  if (auto written = co_await file->write_all(std::as_bytes(std::span(text)), 0); !written) {
    std::fprintf(stderr, "%s\n", written.message().c_str());
    co_return 1;
  }
  std::vector<std::byte> buffer(100);
  fs::Result<std::size_t> n = co_await file->read_all(buffer, 0);
  if (!n) co_return 1;
  std::printf("read %zu bytes (asked for %zu: the file ended): %.*s", *n, buffer.size(),
              static_cast<int>(*n), reinterpret_cast<const char*>(buffer.data()));

  fs::Result<fs::Stat> st = co_await file->stat();
  if (!st) co_return 1;
  std::printf("size %llu, mode %o\n", static_cast<unsigned long long>(st->size()),
              st->permissions());
  if (auto closed = co_await file->close(); !closed) co_return 1;

  // Errors are values, and they say which file.
  fs::Result<fs::File> missing = co_await fs::File::open(dir + "/missing.txt");
  std::printf("%s\n", missing.message().c_str());
  if (missing.error() != std::errc::no_such_file_or_directory) co_return 1;
  co_return (co_await fs::unlink(path)).ok() ? 0 : 1;
}

int main() {
  std::string dir = (std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp");
  dir += "/coring-fs-files-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return 1;
  coring::EventLoop loop;
  const int status = loop.run(demo(dir));
  ::rmdir(dir.c_str());
  return status;
}
