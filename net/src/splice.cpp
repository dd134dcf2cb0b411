// send_file's forms without a pipe of the caller's: a small file read and sent from
// memory, a larger one spliced through a pipe of the call's own. Opening and closing
// that pipe costs four system calls (pipe2, two fcntl, two close) and no fd outlives
// the call; a server that sends many files keeps a Pipe per connection instead.
#include "coring/net/splice.hpp"

#include <array>

#include "coring/runtime/io.hpp"

namespace coring::net::detail {

namespace {

// Reads [offset, offset + length) (length <= small_file_bytes) and sends it.
Task<TransferResult> send_from_memory(const StreamSocket& stream, FileDescriptor file,
                                      std::uint64_t offset, std::uint64_t length,
                                      SendFileOptions options, std::stop_token stop) {
  std::array<std::byte, small_file_bytes> buffer;
  std::size_t filled = 0;
  while (filled < length) {
    const std::span<std::byte> rest(buffer.data() + filled, length - filled);
    const IoResult read = co_await io([&](ring::Sqe& sqe) noexcept {
                            ring::prep_read(sqe, file.fd, rest, offset + filled);
                            ring::use_fixed_file(sqe, file.direct);
                          }).with_stop(stop);
    if (!read) co_return TransferResult(0, read.error(), read.outcome);
    if (read.res == 0) co_return TransferResult(0, Errc::file_ended, Outcome::completed);
    filled += read.value();
  }
  const std::span<const std::byte> data(buffer.data(), filled);
  const int flags = options.more_after ? MSG_MORE : 0;
  std::size_t sent = 0;
  while (sent < filled) {
    const IoResult out = co_await stream.send(data.subspan(sent), flags).with_stop(stop);
    if (!out) co_return TransferResult(sent, out.error(), out.outcome);
    sent += out.value();
  }
  co_return TransferResult(sent, {}, Outcome::completed);
}

}  // namespace

Task<TransferResult> send_file_pooled(const StreamSocket& stream, FileDescriptor file,
                                      std::uint64_t offset, std::uint64_t length,
                                      SendFileOptions options, std::stop_token stop) {
  if (length <= small_file_bytes) {
    co_return co_await send_from_memory(stream, file, offset, length, options, std::move(stop));
  }
  Result<Pipe> pipe = Pipe::open();
  if (!pipe) co_return TransferResult(0, pipe.error(), Outcome::completed);
  co_return co_await send_file(stream, file, offset, length, *pipe, options)
      .with_stop(std::move(stop));
}

}  // namespace coring::net::detail
