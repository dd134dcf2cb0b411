// TlsContext and the error categories of coring::tls.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "coring/net/tls.hpp"
#include "tls_internal.hpp"

namespace coring::net {

namespace {

class TlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coring.tls"; }
  std::string message(int value) const override {
    switch (static_cast<TlsErrc>(value)) {
      case TlsErrc::truncated:
        return "the peer ended the TLS connection without close_notify (truncated)";
      case TlsErrc::handshake_required:
        return "the TLS handshake has not completed";
      case TlsErrc::handshake_eof:
        return "the peer closed the connection during the TLS handshake";
      case TlsErrc::busy:
        return "another read or write of this TLS stream is in flight";
      case TlsErrc::broken:
        return "an earlier failure ended this TLS session (TlsStream::failure() says which)";
      case TlsErrc::no_reason:
        return "OpenSSL failed without giving a reason";
      case TlsErrc::invalid_alpn:
        return "an ALPN protocol name must be 1 to 255 bytes";
      case TlsErrc::no_certificate:
        return "a TLS server needs a certificate chain file and a private key file";
    }
    return "unknown coring.tls error";
  }
};

class OpensslCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "openssl"; }
  std::string message(int value) const override {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(value));
    if (reason != nullptr) return reason;
    char text[64];
    std::snprintf(text, sizeof text, "OpenSSL error %#x", static_cast<unsigned>(value));
    return text;
  }
};

class X509Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "x509"; }
  std::string message(int value) const override { return X509_verify_cert_error_string(value); }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}
const std::error_category& openssl_category() noexcept {
  static const OpensslCategory category;
  return category;
}
const std::error_category& x509_category() noexcept {
  static const X509Category category;
  return category;
}

void throw_error(const TlsError& error) { throw std::system_error(error.code, error.text); }

namespace detail {

std::error_code take_openssl_error() noexcept {
  // The first error is the cause; what follows it explains where it surfaced.
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return make_error_code(TlsErrc::no_reason);
  if (ERR_SYSTEM_ERROR(first)) {
    return {static_cast<int>(first & static_cast<unsigned long>(INT_MAX)), std::system_category()};
  }
  // OpenSSL 3 packs library and reason into 31 bits: the code fits an int.
  return {static_cast<int>(first & static_cast<unsigned long>(INT_MAX)), openssl_category()};
}

}  // namespace detail

// --- TlsContext -------------------------------------------------------------------------------

TlsContext::Shared::~Shared() {
  for (auto& [key, kept] : sessions) SSL_SESSION_free(kept.session);
  for (SSL_CTX* other : sni_contexts) SSL_CTX_free(other);
  if (ctx != nullptr) SSL_CTX_free(ctx);
}

namespace {

// ASCII case folding, whatever the locale: host names are ASCII (IDNA's A-labels).
char fold(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool same_name(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

}  // namespace

SSL_CTX* TlsContext::Shared::context_for(std::string_view name) const noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // "example.com."
  // An exact name first, then a wildcard for the first label ("*.example.com" names
  // "a.example.com", not "example.com" nor "a.b.example.com"). Nothing is allocated:
  // this runs inside OpenSSL's callback.
  for (const auto& [listed, other] : sni_names) {
    if (same_name(listed, name)) return other;
  }
  const std::size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  const std::string_view parent = name.substr(dot);
  for (const auto& [listed, other] : sni_names) {
    if (listed.size() == parent.size() + 1 && listed[0] == '*' &&
        same_name(std::string_view(listed).substr(1), parent)) {
      return other;
    }
  }
  return nullptr;
}

namespace {

bool expired(const SSL_SESSION* session, std::int64_t now) noexcept {
  return SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) <= now;
}

}  // namespace

void TlsContext::Shared::keep_session(std::string key, SSL_SESSION* session) const {
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  std::lock_guard lock(sessions_mutex);
  const std::uint64_t stamp = ++sessions_clock;
  if (const auto found = sessions.find(key); found != sessions.end()) {
    SSL_SESSION_free(found->second.session);
    found->second = {session, stamp};
    return;
  }
  if (sessions.size() >= max_sessions) {
    // Full: the expired entries go, else the least recently kept one.
    for (auto it = sessions.begin(); it != sessions.end();) {
      if (expired(it->second.session, now)) {
        SSL_SESSION_free(it->second.session);
        it = sessions.erase(it);
      } else {
        ++it;
      }
    }
    if (sessions.size() >= max_sessions) {
      auto oldest = sessions.begin();
      for (auto it = sessions.begin(); it != sessions.end(); ++it) {
        if (it->second.stamp < oldest->second.stamp) oldest = it;
      }
      SSL_SESSION_free(oldest->second.session);
      sessions.erase(oldest);
    }
  }
  sessions.emplace(std::move(key), KeptSession{session, stamp});
}

SSL_SESSION* TlsContext::Shared::session_for(const std::string& key) const {
  std::lock_guard lock(sessions_mutex);
  const auto found = sessions.find(key);
  if (found == sessions.end()) return nullptr;
  if (expired(found->second.session, static_cast<std::int64_t>(std::time(nullptr)))) {
    SSL_SESSION_free(found->second.session);
    sessions.erase(found);
    return nullptr;
  }
  // A copy of its own for each stream: OpenSSL marks a stream's session unusable when the
  // stream fails or ends without close_notify, which must not spoil it for the others.
  return SSL_SESSION_dup(found->second.session);
}

namespace {

TlsError config_error(std::string what) {
  const std::error_code code = detail::take_openssl_error();
  return TlsError{code, what + ": " + code.message()};
}

// ALPN's wire format: each name preceded by its length.
Result<std::string> alpn_wire(const std::vector<std::string>& names) {
  std::string wire;
  for (const std::string& name : names) {
    if (name.empty() || name.size() > 255) return fail(make_error_code(TlsErrc::invalid_alpn));
    wire.push_back(static_cast<char>(name.size()));
    wire += name;
  }
  return wire;
}

int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void* arg) {
  const auto* shared = static_cast<const TlsContext::Shared*>(arg);
  unsigned char* chosen = nullptr;
  // The server's preference decides; SSL_select_next_proto does not write to either list.
  const int found = SSL_select_next_proto(
      &chosen, out_length, reinterpret_cast<const unsigned char*>(shared->alpn.data()),
      static_cast<unsigned int>(shared->alpn.size()), offered, offered_length);
  if (found != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

Result<std::shared_ptr<TlsContext::Shared>, TlsError> new_context(
    const SSL_METHOD* method, TlsVersion min_version, const std::vector<std::string>& alpn,
    bool server) {
  ERR_clear_error();
  auto shared = std::make_shared<TlsContext::Shared>();
  shared->server = server;
  shared->ctx = SSL_CTX_new(method);
  if (shared->ctx == nullptr) return config_error("creating an SSL_CTX");
  const int version = min_version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(shared->ctx, version) != 1) {
    return config_error("setting the minimum TLS version");
  }
  // Renegotiation (TLS 1.2) is refused: a peer asking for it gets an alert.
  SSL_CTX_set_options(shared->ctx, SSL_OP_NO_RENEGOTIATION);
  // An idle connection keeps no record buffers (about 34 KiB each).
  SSL_CTX_set_mode(shared->ctx, SSL_MODE_RELEASE_BUFFERS);
  auto wire = alpn_wire(alpn);
  if (!wire) return TlsError{wire.error(), wire.message()};
  shared->alpn = std::move(*wire);
  return shared;
}

// Loads a certificate chain and its key into a server's `ctx`.
Result<void, TlsError> load_certificate(SSL_CTX* ctx, const std::string& chain,
                                        const std::string& key) {
  if (chain.empty() || key.empty()) {
    const std::error_code code = make_error_code(TlsErrc::no_certificate);
    return TlsError{code, code.message()};
  }
  // An encrypted key fails to load (naming the file) rather than have OpenSSL ask for a
  // passphrase on the terminal, which would block the thread.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx, chain.c_str()) != 1) {
    return config_error("loading the certificate chain " + chain);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL checks the pair as it loads the key; its reason alone ("key values
    // mismatch") would not say which files.
    if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
      return config_error("the private key " + key + " does not match the certificate " + chain);
    }
    return config_error("loading the private key " + key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return config_error("the private key " + key + " does not match the certificate " + chain);
  }
  return Result<void, TlsError>();
}

// The DNS names a certificate lists (subjectAltName), lower case.
std::vector<std::string> dns_names(X509* certificate) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* entry = sk_GENERAL_NAME_value(sans, i);
    if (entry->type != GEN_DNS) continue;
    const ASN1_IA5STRING* text = entry->d.dNSName;
    std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                     static_cast<std::size_t>(ASN1_STRING_length(text)));
    for (char& c : name) c = fold(c);
    names.push_back(std::move(name));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

// The server's choice of certificate by the name the client sent (SNI).
int select_certificate(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* shared = static_cast<const TlsContext::Shared*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the main certificate
  if (SSL_CTX* other = shared->context_for(name)) SSL_set_SSL_CTX(ssl, other);
  return SSL_TLSEXT_ERR_OK;  // an unknown name gets the main certificate too
}

// A client's new session (a TLS 1.3 ticket, or a TLS 1.2 session): kept for the next
// connection to the same name.
int keep_new_session(SSL* ssl, SSL_SESSION* session) noexcept {
  const auto* shared = static_cast<const TlsContext::Shared*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), detail::shared_index()));
  const char* key = static_cast<const char*>(SSL_get_ex_data(ssl, detail::name_index()));
  if (shared == nullptr || key == nullptr || SSL_SESSION_is_resumable(session) != 1) return 0;
  // A copy: the session itself stays the stream's, whose failure OpenSSL marks on it.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  try {
    shared->keep_session(key, copy);
  } catch (...) {  // no memory for the entry: nothing is kept; OpenSSL is C, nothing unwinds
    SSL_SESSION_free(copy);
  }
  return 0;  // OpenSSL keeps its reference to `session`
}

}  // namespace

namespace detail {

int shared_index() noexcept {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int name_index() noexcept {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace detail

Result<TlsContext, TlsError> TlsContext::server(const TlsServerConfig& config) {
  auto made = new_context(TLS_server_method(), config.min_version, config.alpn, true);
  if (!made) return made.failure();
  std::shared_ptr<Shared> shared = std::move(*made);
  SSL_CTX* ctx = shared->ctx;
  if (auto loaded = load_certificate(ctx, config.certificate_chain_file, config.private_key_file);
      !loaded) {
    return loaded.failure();
  }
  if (!shared->alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, shared.get());
  for (const TlsCertificateFiles& more : config.sni_certificates) {
    auto other = new_context(TLS_server_method(), config.min_version, {}, true);
    if (!other) return other.failure();
    // The context is the main one's now; `other`'s Shared would free it.
    SSL_CTX* alt = std::exchange((*other)->ctx, nullptr);
    shared->sni_contexts.push_back(alt);
    if (auto loaded = load_certificate(alt, more.certificate_chain_file, more.private_key_file);
        !loaded) {
      return loaded.failure();
    }
    // After the switch, OpenSSL asks the new context for ALPN.
    if (!shared->alpn.empty()) SSL_CTX_set_alpn_select_cb(alt, select_alpn, shared.get());
    const std::vector<std::string> names = dns_names(SSL_CTX_get0_certificate(alt));
    if (names.empty()) {
      const std::error_code code = make_error_code(TlsErrc::no_certificate);
      return TlsError{code, "the certificate " + more.certificate_chain_file +
                                " lists no DNS name (subjectAltName) for SNI to select it by"};
    }
    for (const std::string& name : names) {
      for (const auto& [listed, owner] : shared->sni_names) {
        if (listed == name) {
          const std::error_code code = std::make_error_code(std::errc::invalid_argument);
          return TlsError{code, "two certificates for SNI list the name " + name +
                                    " (the second: " + more.certificate_chain_file + ")"};
        }
      }
      shared->sni_names.emplace_back(name, alt);
    }
  }
  if (!shared->sni_names.empty()) {
    SSL_CTX_set_tlsext_servername_callback(ctx, select_certificate);
    SSL_CTX_set_tlsext_servername_arg(ctx, shared.get());
  }
  ERR_clear_error();
  return TlsContext(std::move(shared));
}

Result<TlsContext, TlsError> TlsContext::client(const TlsClientConfig& config) {
  auto made = new_context(TLS_client_method(), config.min_version, config.alpn, false);
  if (!made) return made.failure();
  std::shared_ptr<Shared> shared = std::move(*made);
  SSL_CTX* ctx = shared->ctx;
  if (config.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return config_error("loading the system's trust store");
    }
  } else if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
    return config_error("loading the CA file " + config.ca_file);
  }
  SSL_CTX_set_verify(ctx, config.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  shared->verify_peer = config.verify_peer;
  if (config.resume_sessions && config.max_resumable_servers > 0) {
    // OpenSSL's own client cache is not looked up by name: the sessions are kept here.
    shared->resume_sessions = true;
    shared->max_sessions = config.max_resumable_servers;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_new_session);
    SSL_CTX_set_ex_data(ctx, detail::shared_index(), shared.get());
  }
  // SSL_CTX_set_alpn_protos returns 0 on success, unlike the rest of OpenSSL.
  if (!shared->alpn.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(shared->alpn.data()),
                              static_cast<unsigned int>(shared->alpn.size())) != 0) {
    return config_error("setting the ALPN protocols");
  }
  ERR_clear_error();
  return TlsContext(std::move(shared));
}

bool TlsContext::is_server() const noexcept { return shared_ && shared_->server; }
ssl_ctx_st* TlsContext::native_handle() const noexcept { return shared_ ? shared_->ctx : nullptr; }

}  // namespace coring::net
