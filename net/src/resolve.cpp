// resolve(): getaddrinfo on the blocking pool. Duplicates (one entry per socket type
// when the caller asks for none) are removed, keeping getaddrinfo's order.
#include "coring/net/resolve.hpp"

#include <netdb.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "coring/runtime/blocking.hpp"

namespace coring::net {

Result<std::vector<Address>> resolve_blocking(const std::string& host, std::uint16_t port,
                                              const ResolveOptions& options) {
  addrinfo hints{};
  hints.ai_family = options.family;
  hints.ai_socktype = options.socket_type;
  hints.ai_flags = AI_ADDRCONFIG | (options.numeric_host ? AI_NUMERICHOST : 0);
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc == EAI_SYSTEM) return fail(std::error_code(errno, std::system_category()));
  if (rc == EAI_NONAME || rc == EAI_NODATA) return fail(Errc::host_not_found);
  if (rc != 0) return fail(Errc::resolve_failed);
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);
  std::vector<Address> found;
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    auto address = Address::from_sockaddr(entry->ai_addr, entry->ai_addrlen);
    if (address && std::find(found.begin(), found.end(), *address) == found.end()) {
      found.push_back(*address);
    }
  }
  if (found.empty()) return fail(Errc::host_not_found);
  return found;
}

Task<Result<std::vector<Address>>> resolve(std::string host, std::uint16_t port,
                                           ResolveOptions options) {
  co_return co_await spawn_blocking([&] { return resolve_blocking(host, port, options); });
}

}  // namespace coring::net
