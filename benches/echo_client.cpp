// The echo load client on coring's bare Ring.
//
// Each connection cycles through one message: prepare it (the message number in its
// first bytes, so that a stale or reordered reply cannot match), send it and post a recv
// for its reply in the same turn, compare every received byte with what was sent, and
// start the next message once the whole reply is back and the send has completed. One
// submit_and_wait(1) per turn submits every connection's SQEs together and waits for at
// least one completion; the CQEs are handled where they lie (for_each_cqe).
#include "echo_client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "child_process.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/ring.hpp"

namespace coring::bench {
namespace {

struct Conn {
  int fd = -1;
  std::uint64_t number = 0;  // of the message in flight
  std::uint32_t sent = 0;
  std::uint32_t received = 0;
  std::byte* message = nullptr;  // `size` bytes
  std::byte* reply = nullptr;
};

std::uint32_t ring_entries(std::uint32_t conns) {
  return std::bit_ceil(std::clamp<std::uint32_t>(2 * conns, 8, ring::Ring::max_entries));
}

}  // namespace

struct EchoClient::State {
  State(std::uint16_t port, EchoLoad load)
      : size(load.size),
        buffers(std::size_t{2} * load.conns * load.size),
        conns(load.conns),
        ring(ring_entries(load.conns), ring::setup::single_issuer | ring::setup::defer_taskrun) {
    ring.register_ring_fd().value();
    for (std::uint32_t i = 0; i < load.conns; ++i) {
      Conn& conn = conns[i];
      conn.fd = connect_loopback(port, std::chrono::milliseconds(5000));
      const int one = 1;
      ::setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      conn.message = &buffers[std::size_t{2} * i * size];
      conn.reply = conn.message + size;
      for (std::uint32_t j = 0; j < size; ++j) conn.message[j] = std::byte((i * 131 + j) & 0xff);
      start(i);
    }
  }
  ~State() {
    for (const Conn& conn : conns) {
      if (conn.fd >= 0) ::close(conn.fd);
    }
  }

  void start(std::uint32_t index) {
    Conn& conn = conns[index];
    ++conn.number;
    std::memcpy(conn.message, &conn.number, std::min<std::size_t>(size, sizeof(conn.number)));
    conn.sent = 0;
    conn.received = 0;
    send(index);
    recv(index);
  }
  void send(std::uint32_t index) {
    Conn& conn = conns[index];
    ring::Sqe* sqe = ring.get_sqe();
    ring::prep_send(*sqe, conn.fd, std::span(conn.message + conn.sent, size - conn.sent),
                    MSG_NOSIGNAL);
    sqe->user_data = std::uint64_t{index} << 1;
  }
  void recv(std::uint32_t index) {
    Conn& conn = conns[index];
    ring::Sqe* sqe = ring.get_sqe();
    ring::prep_recv(*sqe, conn.fd, std::span(conn.reply + conn.received, size - conn.received), 0);
    sqe->user_data = (std::uint64_t{index} << 1) | 1;
  }

  // Where a reply chunk of `bytes` at conn.received first differs, and what it holds.
  std::string describe_difference(const Conn& conn, std::uint32_t bytes) const {
    std::uint32_t at = conn.received;
    while (at < conn.received + bytes && conn.reply[at] == conn.message[at]) ++at;
    char text[160];
    std::snprintf(text, sizeof(text),
                  "%u bytes received before, %u in this chunk, first difference at byte %u "
                  "(got 0x%02x, sent 0x%02x)",
                  conn.received, bytes, at, static_cast<unsigned>(conn.reply[at]),
                  static_cast<unsigned>(conn.message[at]));
    return text;
  }

  [[noreturn]] void fail(std::uint32_t index, const std::string& what) const {
    throw std::runtime_error("echo client, connection " + std::to_string(index) + ", message " +
                             std::to_string(conns[index].number) + ": " + what);
  }

  void complete(const ring::Cqe& cqe) {
    const auto index = static_cast<std::uint32_t>(cqe.user_data >> 1);
    Conn& conn = conns[index];
    if (cqe.res < 0) fail(index, std::system_category().message(-cqe.res));
    const auto bytes = static_cast<std::uint32_t>(cqe.res);
    if ((cqe.user_data & 1) == 0) {
      conn.sent += bytes;
      if (conn.sent < size) return send(index);
    } else {
      if (bytes == 0) fail(index, "the server closed the connection");
      if (std::memcmp(conn.reply + conn.received, conn.message + conn.received, bytes) != 0) {
        fail(index, "the reply differs from the message: " + describe_difference(conn, bytes));
      }
      conn.received += bytes;
      if (conn.received < size) return recv(index);
    }
    if (conn.sent == size && conn.received == size) {
      ++done;
      start(index);
    }
  }

  std::uint32_t size;
  std::vector<std::byte> buffers;
  std::vector<Conn> conns;
  ring::Ring ring;  // after the buffers: destroyed (its requests cancelled) first
  std::uint64_t done = 0;
};

EchoClient::EchoClient(std::uint16_t port, EchoLoad load)
    : state_(std::make_unique<State>(port, load)) {}

EchoClient::~EchoClient() = default;

std::uint64_t EchoClient::run_until(std::chrono::steady_clock::time_point deadline) {
  State& state = *state_;
  const std::uint64_t before = state.done;
  while (std::chrono::steady_clock::now() < deadline) {
    auto submitted = state.ring.submit_and_wait(1);
    if (!submitted) {
      const int error = submitted.error().value();
      if (error == EINTR || error == EAGAIN || error == EBUSY) continue;
      throw std::system_error(submitted.error(), "echo client: io_uring_enter");
    }
    state.ring.for_each_cqe([&state](const ring::Cqe& cqe) { state.complete(cqe); });
  }
  return state.done - before;
}

}  // namespace coring::bench
