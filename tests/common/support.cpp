#include "support.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <ftw.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <system_error>

#ifdef CORING_TEST_SANITIZED
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace coring::ring::test {

std::size_t heap_in_use() {
#ifdef CORING_TEST_SANITIZED
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

bool on_epoll_backend() {
  Params params;
  auto ring = Ring::create(2, params, Backend::automatic);
  return ring && ring->backend() == Backend::epoll;
}

int count_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    throw std::system_error(errno, std::generic_category(), "opendir /proc/self/fd");
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory stream's own fd
}

std::map<int, std::string> open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    throw std::system_error(errno, std::generic_category(), "opendir /proc/self/fd");
  std::map<int, std::string> fds;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == ::dirfd(dir)) continue;
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    char target[256];
    const ssize_t length = ::readlink(link.c_str(), target, sizeof(target));
    fds.emplace(fd, length < 0 ? std::string("?") : std::string(target, length));
  }
  ::closedir(dir);
  return fds;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/coring-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

Fd::~Fd() { reset(); }

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Listener make_listener() {
  Listener listener;
  listener.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.fd.get() < 0) throw std::system_error(errno, std::generic_category(), "socket");
  int one = 1;
  ::setsockopt(listener.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  listener.address.sin_family = AF_INET;
  listener.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  listener.address.sin_port = 0;
  if (::bind(listener.fd.get(), reinterpret_cast<sockaddr*>(&listener.address),
             sizeof(listener.address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind");
  }
  if (::listen(listener.fd.get(), 128) != 0) {
    throw std::system_error(errno, std::generic_category(), "listen");
  }
  socklen_t len = sizeof(listener.address);
  ::getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&listener.address), &len);
  return listener;
}

TcpPair make_tcp_pair() {
  Listener listener = make_listener();
  TcpPair pair;
  pair.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(pair.client.get(), reinterpret_cast<sockaddr*>(&listener.address),
                sizeof(listener.address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  pair.server.reset(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (pair.server.get() < 0) throw std::system_error(errno, std::generic_category(), "accept4");
  return pair;
}

Cqe submit_and_get_cqe(Ring& ring) {
  auto submitted = ring.submit();
  if (!submitted) throw std::system_error(submitted.error());
  return ring.copy_cqe().value();
}

}  // namespace coring::ring::test
