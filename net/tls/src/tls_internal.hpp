// What context.cpp and stream.cpp share inside coring::tls.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

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

  // A server's further certificates for SNI: each name its certificate lists (a DNS
  // SAN, lower case, "*.example.com" for a wildcard) and the SSL_CTX that presents it.
  std::vector<SSL_CTX*> sni_contexts;
  std::vector<std::pair<std::string, SSL_CTX*>> sni_names;
  // The SSL_CTX for the name a client sent (case aside, a final dot aside), or null for
  // the main certificate.
  [[nodiscard]] SSL_CTX* context_for(std::string_view name) const noexcept;

  // A client's sessions to resume: the newest one per server (name and port), from every
  // stream of the context, on any thread; at most max_sessions servers, expired sessions
  // dropped.
  struct KeptSession {
    SSL_SESSION* session;
    std::uint64_t stamp;  // when it was kept, in sessions_clock's ticks
  };
  bool resume_sessions = false;
  std::size_t max_sessions = 0;
  mutable std::mutex sessions_mutex;
  mutable std::unordered_map<std::string, KeptSession> sessions;
  mutable std::uint64_t sessions_clock = 0;
  // Keeps `session` (its reference is taken) as the one to resume for `key`.
  void keep_session(std::string key, SSL_SESSION* session) const;
  // A copy of the session to resume for `key` (the caller's to free), or null.
  [[nodiscard]] SSL_SESSION* session_for(const std::string& key) const;
};

namespace detail {
// The first error of the thread's OpenSSL queue as a code (openssl_category(), or the
// system category for an errno OpenSSL recorded), and the queue emptied.
std::error_code take_openssl_error() noexcept;
// The ex_data slots: an SSL_CTX's Shared (a client that resumes sessions), and an SSL's
// server name (the client's, for the sessions it gets).
int shared_index() noexcept;
int name_index() noexcept;
}  // namespace detail

}  // namespace coring::net
