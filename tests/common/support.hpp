// Helpers shared by the ring tests: temporary directories, loopback sockets,
// SQE acquisition that fails the test instead of returning null, and feature
// probes that skip with a reason. The fd-leak check lives in main.cpp.
#pragma once

// Defined in a build with AddressSanitizer or ThreadSanitizer (g++ says so by a macro,
// clang by __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORING_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORING_TEST_SANITIZED 1
#endif
#endif

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <map>
#include <string>

#include "coring/ring/prep.hpp"
#include "coring/ring/ring.hpp"

namespace coring::ring::test {

// The number of open fds of this process (entries of /proc/self/fd).
int count_open_fds();

// This process's open fds, each with what it refers to (its /proc/self/fd link:
// a path, "socket:[inode]", "anon_inode:[eventfd]", ...).
std::map<int, std::string> open_fds();

// The bytes the process's heap has handed out and not taken back, every thread's (the
// sanitizer's allocator's count in a sanitized build, mallinfo2 otherwise).
std::size_t heap_in_use();

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An fd closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
  Fd fd;
  sockaddr_in address{};
};
Listener make_listener();

// A connected TCP pair over loopback: `client` and the accepted `server`.
struct TcpPair {
  Fd client;
  Fd server;
};
TcpPair make_tcp_pair();

// Bytes of a string literal or std::string, for prep_* spans.
inline std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Submits queued SQEs and copies exactly one CQE, failing the test on error.
Cqe submit_and_get_cqe(Ring& ring);

// Whether a loop made now runs on the epoll emulation (CORING_BACKEND=epoll, or io_uring
// blocked): a ring is set up the way a loop sets one up, and asked.
bool on_epoll_backend();

}  // namespace coring::ring::test

// get_sqe() or fail the test (the queue is never full where this is used).
#define CORING_GET_SQE(ring_)                                              \
  ([&]() -> ::coring::ring::Sqe& {                                         \
    ::coring::ring::Sqe* sqe_ = (ring_).get_sqe();                         \
    if (sqe_ == nullptr) throw std::runtime_error("SQ unexpectedly full"); \
    return *sqe_;                                                          \
  }())

// Skip the test, with the reason, on the epoll emulation: for what only the kernel's
// ring does (direct descriptors outside the process's fd table, say).
#define CORING_SKIP_ON_EPOLL_BACKEND(reason)                                        \
  do {                                                                              \
    if (::coring::ring::test::on_epoll_backend()) {                                 \
      GTEST_SKIP() << "kernel io_uring only, not on the epoll backend: " << reason; \
    }                                                                               \
  } while (0)

// Skip the test, with the reason, if the running kernel lacks opcode `op`.
#define CORING_REQUIRE_OP(ring_, op)                       \
  do {                                                     \
    auto probe_ = (ring_).get_probe();                     \
    ASSERT_TRUE(probe_.ok()) << probe_.error().message();  \
    if (!probe_->is_supported(op)) {                       \
      GTEST_SKIP() << "kernel lacks io_uring opcode " #op; \
    }                                                      \
  } while (0)
