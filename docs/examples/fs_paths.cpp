// docs/fs.md, "Paths": directories, whole-file reads and writes, rename, links,
// listing and copying.
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <span>
#include <string>

#include <coring/fs/copy.hpp>
#include <coring/fs/paths.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>

namespace fs = coring::fs;
using coring::Task;

// Stops at the first failure, printing what failed and where.
#define CHECK(expression)                                      \
  do {                                                         \
    if (auto result_ = (expression); !result_) {               \
      std::fprintf(stderr, "%s\n", result_.message().c_str()); \
      co_return 1;                                             \
    }                                                          \
  } while (0)

Task<int> demo(const std::string& root) {
  const std::string dir = root + "/data";
  CHECK(co_await fs::create_dir(dir));
  const std::string text = "hello, files\n";
  CHECK(co_await fs::write_file(dir + "/a.txt", std::as_bytes(std::span(text))));
  CHECK(co_await fs::rename(dir + "/a.txt", dir + "/b.txt"));
  CHECK(co_await fs::symlink("b.txt", dir + "/link"));
  CHECK(co_await fs::hard_link(dir + "/b.txt", dir + "/c.txt"));
  fs::Result<std::uint64_t> copied = co_await fs::copy_file(dir + "/b.txt", dir + "/d.txt");
  CHECK(copied);
  std::printf("copied %llu bytes with splice\n", static_cast<unsigned long long>(*copied));

  fs::Result<std::vector<std::byte>> bytes = co_await fs::read_file(dir + "/link");
  CHECK(bytes);
  std::printf("through the link: %.*s", static_cast<int>(bytes->size()),
              reinterpret_cast<const char*>(bytes->data()));

  fs::Result<std::vector<fs::DirEntry>> entries = co_await fs::list_dir(dir);
  CHECK(entries);
  std::sort(entries->begin(), entries->end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const fs::DirEntry& entry : *entries) {
    std::printf("  %s%s\n", entry.name.c_str(), entry.type == fs::FileType::symlink ? " ->" : "");
  }

  fs::Result<void> not_empty = co_await fs::remove_dir(dir);
  std::printf("%s\n", not_empty.message().c_str());  // remove_dir '...': Directory not empty
  for (const char* name : {"/b.txt", "/c.txt", "/d.txt", "/link"}) {
    CHECK(co_await fs::unlink(dir + name));
  }
  CHECK(co_await fs::remove_dir(dir));
  co_return 0;
}

int main() {
  std::string root = (std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp");
  root += "/coring-fs-paths-XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) return 1;
  coring::EventLoop loop;
  const int status = loop.run(demo(root));
  coring::EventLoop cleanup;
  (void)cleanup.run(fs::remove_dir(root));
  return status;
}
