// What context.cpp and stream.cpp share inside coring::tls.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <system_error>

#include "coring/net/tls.hpp"

namespace coring::net {

struct TlsContext::Shared {
  Shared() = default;
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared();

  SSL_CTX* ctx = nullptr;
  bool server = false;
  bool verify_peer = false;  // a client that checks the server's certificate and name
  std::string alpn;          // ALPN's wire format: each name after its length byte
};

namespace detail {
// The first error of the thread's OpenSSL queue as a code (openssl_category(), or the
// system category for an errno OpenSSL recorded), and the queue emptied.
std::error_code take_openssl_error() noexcept;
}  // namespace detail

}  // namespace coring::net
