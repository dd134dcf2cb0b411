// Registered buffers (FixedBufferPool, read_fixed/write_fixed), registered files
// (FileTable), O_DIRECT with aligned buffers and its alignment errors.
#include "coring/fs/buffers.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <system_error>
#include <vector>

#include "coring/fs/file.hpp"
#include "coring/fs/file_table.hpp"
#include "coring/runtime/when_all.hpp"
#include "fs_support.hpp"
#include "support.hpp"

namespace coring::fs {
namespace {

using ring::test::TempDir;
using namespace test;

constexpr std::uint64_t gib = std::uint64_t{1} << 30;

// The code of the std::system_error that `fn` throws, or none if it throws nothing.
template <typename Fn>
std::error_code thrown_code(Fn fn) {
  try {
    fn();
  } catch (const std::system_error& e) {
    return e.code();
  }
  return {};
}

TEST(FsAlignedBuffer, IsAlignedZeroedAndSized) {
  AlignedBuffer buffer(10000, 4096);
  EXPECT_EQ(buffer.size(), 10000U);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % 4096, 0U);
  for (const std::byte b : buffer.bytes()) ASSERT_EQ(b, std::byte{0});
  EXPECT_EQ(thrown_code([] { AlignedBuffer(16, 3000); }), std::errc::invalid_argument);
}

TEST(FsFixedBufferPool, WriteFixedAndReadFixedRoundTripBeyondFourGib) {
  TempDir dir;
  EventLoop loop;
  FixedBufferPool pool(loop, FixedBufferPoolOptions{4, 8192, true});
  EXPECT_TRUE(pool.registered());
  EXPECT_EQ(pool.count(), 4U);
  EXPECT_EQ(pool.buffer_size(), 8192U);
  const auto data = pattern(8192, 9);
  run_on(loop, [&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("fixed"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    std::optional<FixedBuffer> out = pool.try_acquire();
    std::optional<FixedBuffer> in = pool.try_acquire();
    CO_ASSERT(out && in);
    EXPECT_NE(out->index(), in->index());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(out->bytes().data()) % 4096, 0U);
    std::memcpy(out->bytes().data(), data.data(), data.size());
    Result<std::size_t> written = co_await file->write_fixed(*out, 5 * gib);
    CO_ASSERT_OK(written);
    EXPECT_EQ(*written, 8192U);
    Result<std::size_t> read = co_await file->read_fixed(in->first(5000), 5 * gib + 100);
    CO_ASSERT_OK(read);
    EXPECT_EQ(*read, 5000U);
    EXPECT_EQ(std::memcmp(in->bytes().data(), data.data() + 100, 5000), 0);
    EXPECT_EQ(pool.available(), 2U);
  });
  EXPECT_EQ(pool.available(), 4U);
}

TEST(FsFixedBufferPool, AcquireWaitsForABufferToBeGivenBack) {
  EventLoop loop;
  FixedBufferPool pool(loop, FixedBufferPoolOptions{1, 4096, true});
  std::vector<int> order;
  run_on(loop, [&]() -> Task<void> {
    auto holder = [&]() -> Task<void> {
      FixedBuffer buffer = co_await pool.acquire();
      order.push_back(1);
      co_await nop();  // keeps the buffer across a turn
      co_await nop();
      order.push_back(2);
    };
    auto waiter = [&]() -> Task<void> {
      FixedBuffer buffer = co_await pool.acquire();
      order.push_back(3);
      EXPECT_TRUE(buffer.valid());
    };
    co_await when_all(holder(), waiter());
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(pool.available(), 1U);
}

TEST(FsFixedBufferPool, AReadFixedOutsideTheRegisteredBufferIsAnError) {
  TempDir dir;
  write_plain(dir.file("f"), pattern(8192));
  EventLoop loop;
  FixedBufferPool pool(loop, FixedBufferPoolOptions{1, 4096, true});
  std::vector<std::byte> unregistered(4096);
  run_on(loop, [&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("f"));
    CO_ASSERT_OK(file);
    Result<std::size_t> wrong_memory = co_await file->read_fixed(FixedSlice{unregistered, 0}, 0);
    EXPECT_EQ(wrong_memory.error(), std::errc::bad_address);
    std::optional<FixedBuffer> buffer = pool.try_acquire();
    CO_ASSERT(buffer.has_value());
    Result<std::size_t> wrong_index = co_await file->read_fixed(FixedSlice{buffer->bytes(), 7}, 0);
    EXPECT_EQ(wrong_index.error(), std::errc::bad_address);
  });
}

TEST(FsFixedBufferPool, OneRegisteredPoolPerLoop) {
  EventLoop loop;
  FixedBufferPool first(loop, FixedBufferPoolOptions{2, 4096, true});
  try {
    FixedBufferPool second(loop, FixedBufferPoolOptions{2, 4096, true});
    ADD_FAILURE() << "a second registered pool on one loop was accepted";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::device_or_resource_busy) << e.what();
  }
  FixedBufferPool unregistered(loop, FixedBufferPoolOptions{2, 4096, false});
  EXPECT_FALSE(unregistered.registered());
  EXPECT_EQ(thrown_code([&] {
              FixedBufferPool(loop, FixedBufferPoolOptions{0, 4096, false});
            }),
            std::errc::invalid_argument);
  EXPECT_EQ(thrown_code([&] {
              FixedBufferPool(loop, FixedBufferPoolOptions{2, 0, false});
            }),
            std::errc::invalid_argument);
}

TEST(FsFileTable, ReadsAndWritesThroughARegisteredSlot) {
  TempDir dir;
  EventLoop loop;
  FileTable table(loop, 2);
  run_on(loop, [&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("t"), O_RDWR | O_CREAT);
    CO_ASSERT_OK(file);
    CO_ASSERT_OK(table.attach(*file));
    EXPECT_TRUE(file->is_direct());
    EXPECT_EQ(table.attached(), 1U);
    const auto data = pattern(3000, 5);
    CO_ASSERT_OK(co_await file->write_at(data, 10));
    CO_ASSERT_OK(co_await file->sync());
    std::vector<std::byte> back(3000);
    Result<std::size_t> n = co_await file->read_at(back, 10);
    CO_ASSERT_OK(n);
    EXPECT_EQ(back, data);
    Result<void> twice = table.attach(*file);
    EXPECT_EQ(twice.error(), std::errc::device_or_resource_busy);
    table.detach(*file);
    EXPECT_FALSE(file->is_direct());
    n = co_await file->read_at(back, 10);
    CO_ASSERT_OK(n);
    CO_ASSERT_OK(table.attach(*file));
    CO_ASSERT_OK(co_await file->close());  // detaches it
    EXPECT_EQ(table.attached(), 0U);
    Result<void> closed = table.attach(*file);
    EXPECT_EQ(closed.error(), std::errc::bad_file_descriptor);
  });
}

TEST(FsFileTable, AFullTableIsEnfile) {
  TempDir dir;
  write_plain(dir.file("f"), pattern(1));
  EventLoop loop;
  FileTable table(loop, 1);
  run_on(loop, [&]() -> Task<void> {
    Result<File> a = co_await File::open(dir.file("f"));
    Result<File> b = co_await File::open(dir.file("f"));
    CO_ASSERT_OK(a);
    CO_ASSERT_OK(b);
    CO_ASSERT_OK(table.attach(*a));
    Result<void> full = table.attach(*b);
    EXPECT_EQ(full.error(), std::errc::too_many_files_open_in_system);
    // a's destructor detaches it.
  });
  EXPECT_EQ(table.attached(), 0U);
}

// O_DIRECT needs buffer address, offset and length aligned to what statx reports.
TEST(FsDirect, AlignedReadsWorkAndMisalignedOnesAreEinval) {
  TempDir dir;
  write_plain(dir.file("d"), pattern(1 << 20, 4));
  run_in_loop([&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("d"), O_RDONLY | O_DIRECT);
    if (file.error() == std::errc::invalid_argument) {
      CO_SKIP("the file system of " + dir.path() + " has no O_DIRECT");
    }
    CO_ASSERT_OK(file);
    Result<Stat> st = co_await file->stat(STATX_BASIC_STATS | STATX_DIOALIGN);
    CO_ASSERT_OK(st);
    const std::uint32_t alignment = st->direct_offset_alignment();
    if (alignment <= 1 || st->direct_memory_alignment() <= 1) {
      CO_SKIP("the file system reports no O_DIRECT alignment (statx DIOALIGN, 6.1)");
    }
    AlignedBuffer buffer(2 * 4096, 4096);
    Result<std::size_t> aligned = co_await file->read_at(buffer.bytes().first(4096), 8192);
    CO_ASSERT_OK(aligned);
    EXPECT_EQ(*aligned, 4096U);
    EXPECT_EQ(buffer.bytes()[0], pattern_byte(8192, 4));
    const std::size_t memory_off = st->direct_memory_alignment() / 2;
    Result<std::size_t> bad_memory =
        co_await file->read_at(buffer.bytes().subspan(memory_off, 4096), 8192);
    EXPECT_EQ(bad_memory.error(), std::errc::invalid_argument);
    Result<std::size_t> bad_offset =
        co_await file->read_at(buffer.bytes().first(4096), 8192 + alignment / 2);
    EXPECT_EQ(bad_offset.error(), std::errc::invalid_argument);
    Result<std::size_t> bad_length =
        co_await file->read_at(buffer.bytes().first(4096 - alignment / 2), 8192);
    EXPECT_EQ(bad_length.error(), std::errc::invalid_argument);
  });
}

TEST(FsDirect, ReadFixedFromAPoolBufferWithODirect) {
  TempDir dir;
  write_plain(dir.file("d"), pattern(1 << 16, 6));
  EventLoop loop;
  FixedBufferPool pool(loop, FixedBufferPoolOptions{1, 1 << 16, true});
  run_on(loop, [&]() -> Task<void> {
    Result<File> file = co_await File::open(dir.file("d"), O_RDONLY | O_DIRECT);
    if (file.error() == std::errc::invalid_argument) CO_SKIP("no O_DIRECT here");
    CO_ASSERT_OK(file);
    FixedBuffer buffer = co_await pool.acquire();
    Result<std::size_t> n = co_await file->read_fixed(buffer, 0);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, std::size_t{1} << 16);
    EXPECT_EQ(buffer.bytes()[12345], pattern_byte(12345, 6));
  });
}

}  // namespace
}  // namespace coring::fs
