// docs/fs.md, "Registered buffers and files" and "O_DIRECT": a FixedBufferPool and a
// FileTable on the loop, read_fixed, and an aligned O_DIRECT read.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <coring/fs/buffers.hpp>
#include <coring/fs/file.hpp>
#include <coring/fs/file_table.hpp>
#include <coring/fs/paths.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/when_all.hpp>

namespace fs = coring::fs;
using coring::Task;

// Reads block `index` of the file into a buffer leased from the pool.
Task<bool> read_block(const fs::File& file, fs::FixedBufferPool& pool, std::uint64_t index) {
  fs::FixedBuffer buffer = co_await pool.acquire();  // waits while all are leased
  fs::Result<std::size_t> n = co_await file.read_fixed(buffer, index * 4096);
  co_return n&&* n == 4096 && buffer.bytes()[0] == std::byte(index);
}

Task<int> demo(coring::EventLoop& loop, const std::string& path) {
  std::vector<std::byte> data(16 * 4096);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i / 4096);
  if (!co_await fs::write_file(path, data)) co_return 1;

  fs::FileTable table(loop, 4);  // before the File: it must outlive the files attached
  fs::FixedBufferPool pool(loop, {4, 4096, true});  // 4 registered 4 KiB buffers
  fs::Result<fs::File> file = co_await fs::File::open(path);
  if (!file || !table.attach(*file)) co_return 1;  // reads now skip the fd lookup

  // 16 reads, at most 4 in flight: one per buffer.
  std::vector<Task<bool>> reads;
  for (std::uint64_t i = 0; i < 16; ++i) reads.push_back(read_block(*file, pool, i));
  const std::vector<bool> ok = co_await coring::when_all(std::move(reads));
  std::printf("16 fixed reads through 4 registered buffers: %s\n",
              std::count(ok.begin(), ok.end(), true) == 16 ? "all correct" : "WRONG");

  // O_DIRECT bypasses the page cache; buffer, offset and length must be aligned.
  fs::Result<fs::File> direct = co_await fs::File::open(path, O_RDONLY | O_DIRECT);
  if (direct) {
    fs::Result<fs::Stat> st = co_await direct->stat(STATX_BASIC_STATS | STATX_DIOALIGN);
    if (!st) co_return 1;
    std::printf("O_DIRECT alignment: memory %u, offset %u\n", st->direct_memory_alignment(),
                st->direct_offset_alignment());
    fs::AlignedBuffer aligned(4096);
    fs::Result<std::size_t> n = co_await direct->read_at(aligned.bytes(), 3 * 4096);
    if (!n || aligned.bytes()[0] != std::byte{3}) co_return 1;
    // A length that is not a multiple of the offset alignment is refused.
    fs::Result<std::size_t> misaligned = co_await direct->read_at(aligned.bytes().first(100), 0);
    std::printf("O_DIRECT read of 100 bytes: %s\n", misaligned.message().c_str());
    if (misaligned.error() != std::errc::invalid_argument) co_return 1;
  }
  co_return std::count(ok.begin(), ok.end(), true) == 16 ? 0 : 1;
}

int main() {
  std::string dir = (std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp");
  dir += "/coring-fs-fixed-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return 1;
  const std::string path = dir + "/blocks.bin";
  int status = 1;
  {
    coring::EventLoop loop;
    status = loop.run(demo(loop, path));
  }
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  return status;
}
