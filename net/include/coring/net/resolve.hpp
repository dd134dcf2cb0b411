// resolve(host, port): getaddrinfo(3) on the runtime's blocking pool, so that a slow
// DNS server stalls no coroutine of the loop.
//
//   Result<std::vector<Address>> found = co_await resolve("localhost", 8080);
//
// Addresses come in getaddrinfo's order (RFC 6724 preference). A name that does not
// exist is Errc::host_not_found; other getaddrinfo failures are Errc::resolve_failed
// (EAI_SYSTEM: its errno in the system category).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coring/net/address.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

struct ResolveOptions {
  int family = 0;             // AF_UNSPEC (0), AF_INET or AF_INET6
  int socket_type = 0;        // SOCK_STREAM, SOCK_DGRAM, or 0 for both (one entry per address)
  bool numeric_host = false;  // AI_NUMERICHOST: no DNS, only a literal address
};

Task<Result<std::vector<Address>>> resolve(std::string host, std::uint16_t port,
                                           ResolveOptions options = {});

// The same, synchronously, on the calling thread (it blocks: not for a loop's thread).
Result<std::vector<Address>> resolve_blocking(const std::string& host, std::uint16_t port,
                                              const ResolveOptions& options = {});

}  // namespace coring::net
