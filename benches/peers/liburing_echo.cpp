// The liburing peer of `coring-bench echo`: the completion-based echo server a liburing
// user would write.
//
// One ring (SINGLE_ISSUER | DEFER_TASKRUN, registered ring fd, as coring's EventLoop)
// and one multishot accept. Each connection has its own buffer and keeps one operation
// in flight: a recv, then a send of what it received (again for the rest if the send was
// short), then the next recv. Every SQE prepared while handling a batch of CQEs leaves
// with the next io_uring_submit_and_wait(1); CQEs are read where they lie
// (io_uring_for_each_cqe) and released with one io_uring_cq_advance().
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "echo_peers.hpp"

namespace coring::bench {
namespace {

constexpr std::size_t buffer_size = 4096;
constexpr unsigned ring_entries = 1024;

struct Conn {
  explicit Conn(int socket) noexcept : fd(socket) {}
  int fd;
  std::uint32_t length = 0;  // bytes of the current message
  std::uint32_t sent = 0;
  char buffer[buffer_size];
};

// user_data: the Conn's address, with bit 0 set for a send; 0 for the accept.
constexpr std::uint64_t send_tag = 1;

class LiburingEchoServer {
 public:
  explicit LiburingEchoServer(int listen_fd) : listen_fd_(listen_fd) {}
  ~LiburingEchoServer() {
    if (initialised_) io_uring_queue_exit(&ring_);
  }
  LiburingEchoServer(const LiburingEchoServer&) = delete;
  LiburingEchoServer& operator=(const LiburingEchoServer&) = delete;

  int run() {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (const int ret = io_uring_queue_init_params(ring_entries, &ring_, &params); ret < 0) {
      std::fprintf(stderr, "liburing echo: io_uring_queue_init_params: %s\n", std::strerror(-ret));
      return 1;
    }
    initialised_ = true;
    io_uring_register_ring_fd(&ring_);
    accept();
    for (;;) {
      const int ret = io_uring_submit_and_wait(&ring_, 1);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        std::fprintf(stderr, "liburing echo: io_uring_submit_and_wait: %s\n", std::strerror(-ret));
        return 1;
      }
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        complete(*cqe);
      }
      io_uring_cq_advance(&ring_, seen);
    }
  }

 private:
  // An SQE, submitting what is queued first if the SQ is full.
  io_uring_sqe* sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void accept() {
    io_uring_sqe* accept_sqe = sqe();
    io_uring_prep_multishot_accept(accept_sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(accept_sqe, 0);
  }

  void recv(Conn& conn) {
    io_uring_sqe* recv_sqe = sqe();
    io_uring_prep_recv(recv_sqe, conn.fd, conn.buffer, buffer_size, 0);
    io_uring_sqe_set_data(recv_sqe, &conn);
  }

  void send(Conn& conn) {
    io_uring_sqe* send_sqe = sqe();
    io_uring_prep_send(send_sqe, conn.fd, conn.buffer + conn.sent, conn.length - conn.sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(send_sqe, reinterpret_cast<std::uint64_t>(&conn) | send_tag);
  }

  void complete(const io_uring_cqe& cqe) {
    if (cqe.user_data == 0) return accepted(cqe);
    const bool is_send = (cqe.user_data & send_tag) != 0;
    Conn& conn = *reinterpret_cast<Conn*>(cqe.user_data & ~send_tag);
    if (cqe.res <= 0) return close(conn);
    if (is_send) {
      conn.sent += static_cast<std::uint32_t>(cqe.res);
      return conn.sent < conn.length ? send(conn) : recv(conn);
    }
    conn.length = static_cast<std::uint32_t>(cqe.res);
    conn.sent = 0;
    send(conn);
  }

  void accepted(const io_uring_cqe& cqe) {
    if (cqe.res >= 0) {
      const int one = 1;
      ::setsockopt(cqe.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      recv(*new Conn(cqe.res));
    }
    if ((cqe.flags & IORING_CQE_F_MORE) == 0) accept();  // the kernel ended it: re-arm
  }

  static void close(Conn& conn) {
    ::close(conn.fd);
    delete &conn;
  }

  int listen_fd_;
  io_uring ring_{};
  bool initialised_ = false;
};

}  // namespace

bool liburing_echo_available() noexcept { return true; }

int serve_liburing_echo(int listen_fd) { return LiburingEchoServer(listen_fd).run(); }

}  // namespace coring::bench
