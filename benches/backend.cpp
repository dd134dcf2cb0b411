#include "backend.hpp"

#include <stdlib.h>

#include <stdexcept>
#include <string_view>
#include <utility>

namespace coring::bench {
namespace {

constexpr const char* env_name = "CORING_BACKEND";

void set_env(ring::Backend backend) {
  if (::setenv(env_name, ring::to_string(backend), 1) != 0) {
    throw std::runtime_error("cannot set CORING_BACKEND");
  }
}

// A small ring on `backend`, as a loop would set it up; its backend, or the error's text.
Result<ring::Ring> probe(ring::Backend backend) {
  ring::Params params{};
  return ring::Ring::create(2, params, backend);
}

}  // namespace

std::string CoringBackend::describe() const {
  std::string text = name();
  if (requested) return text + " (--backend " + ring::to_string(*requested) + ")";
  const char* env = std::getenv(env_name);
  if (env != nullptr && *env != '\0') return text + " (" + env_name + "=" + env + ")";
  text += " (CORING_BACKEND unset";
  if (backend == ring::Backend::epoll) text += "; io_uring is blocked here";
  return text + ")";
}

CoringBackend take_backend(Args& args) {
  CoringBackend result;
  if (const auto text = args.take_string("--backend")) {
    if (*text == "io_uring") {
      result.requested = ring::Backend::io_uring;
    } else if (*text == "epoll") {
      result.requested = ring::Backend::epoll;
    } else {
      throw UsageError("--backend wants io_uring or epoll, not '" + *text + "'");
    }
    set_env(*result.requested);
  }
  auto ring = probe(ring::Backend::automatic);
  if (!ring) {
    const char* env = std::getenv(env_name);
    throw std::runtime_error("cannot set up a ring (" +
                             (env != nullptr && *env != '\0'
                                  ? std::string(env_name) + "=" + env
                                  : std::string("CORING_BACKEND unset")) +
                             "): " + ring.message());
  }
  result.backend = ring->backend();
  return result;
}

ring::Backend other_backend(ring::Backend backend) noexcept {
  return backend == ring::Backend::epoll ? ring::Backend::io_uring : ring::Backend::epoll;
}

std::string backend_unavailable(ring::Backend backend) {
  auto ring = probe(backend);
  if (ring) return {};
  return std::string("no ring on the ") + ring::to_string(backend) +
         " backend here: " + ring.message();
}

std::function<int(int ready_fd)> serve_on(ring::Backend backend, int (*serve)(int ready_fd)) {
  return [backend, serve](int ready_fd) {
    set_env(backend);
    return serve(ready_fd);
  };
}

}  // namespace coring::bench
