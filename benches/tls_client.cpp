// See tls_client.hpp.
#include "tls_client.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "child_process.hpp"

namespace coring::bench {
namespace {

// Owners of OpenSSL's objects, freed however the function leaves.
struct FreeKey {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct FreeCert {
  void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct FreeExtension {
  void operator()(X509_EXTENSION* extension) const noexcept { X509_EXTENSION_free(extension); }
};
struct FreeBio {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct FreeContext {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
struct FreeSsl {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
struct CloseFd {
  void operator()(const int* fd) const noexcept { ::close(*fd); }
};

// Throws `what` with the reason at the head of OpenSSL's error queue (which it empties).
[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  std::string text = what;
  if (code != 0) {
    std::array<char, 256> reason{};
    ERR_error_string_n(code, reason.data(), reason.size());
    text += ": ";
    text += reason.data();
  }
  throw std::runtime_error(text);
}

void write_pem(const std::filesystem::path& path, bool (*write)(BIO*, void*), void* object) {
  const std::unique_ptr<BIO, FreeBio> out(BIO_new_file(path.c_str(), "w"));
  if (!out || !write(out.get(), object)) fail("writing " + path.string());
}

}  // namespace

TlsFiles make_tls_files(const std::filesystem::path& dir) {
  const std::unique_ptr<EVP_PKEY, FreeKey> key(EVP_EC_gen("P-256"));
  if (!key) fail("making a P-256 key");
  const std::unique_ptr<X509, FreeCert> cert(X509_new());
  if (!cert) fail("making a certificate");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* common_name = reinterpret_cast<const unsigned char*>("127.0.0.1");
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::unique_ptr<X509_EXTENSION, FreeExtension> address(
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1"));
  const bool made =
      X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
      ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1 &&
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600) != nullptr &&
      X509_set_pubkey(cert.get(), key.get()) == 1 &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, common_name, -1, -1, 0) == 1 &&
      X509_set_issuer_name(cert.get(), name) == 1 && address &&
      X509_add_ext(cert.get(), address.get(), -1) == 1 &&
      X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  if (!made) fail("making a certificate");
  TlsFiles files{dir / "cert.pem", dir / "key.pem"};
  write_pem(
      files.certificate,
      [](BIO* out, void* object) {
        return PEM_write_bio_X509(out, static_cast<X509*>(object)) == 1;
      },
      cert.get());
  write_pem(
      files.key,
      [](BIO* out, void* object) {
        return PEM_write_bio_PrivateKey(out, static_cast<EVP_PKEY*>(object), nullptr, nullptr, 0,
                                        nullptr, nullptr) == 1;
      },
      key.get());
  return files;
}

TlsAnswer tls_exchange(std::uint16_t port, const std::filesystem::path& trusted,
                       std::string_view request) {
  const std::unique_ptr<SSL_CTX, FreeContext> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) fail("SSL_CTX_new");
  if (SSL_CTX_load_verify_locations(ctx.get(), trusted.c_str(), nullptr) != 1) {
    fail("loading " + trusted.string());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx.get()), "127.0.0.1");

  const int fd = connect_loopback(port, std::chrono::milliseconds(1000));
  const std::unique_ptr<const int, CloseFd> closer(&fd);
  const timeval patience{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
  const std::unique_ptr<SSL, FreeSsl> ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) fail("SSL_new");
  if (SSL_connect(ssl.get()) != 1) fail("the TLS handshake");
  std::size_t written = 0;
  if (SSL_write_ex(ssl.get(), request.data(), request.size(), &written) != 1 ||
      written != request.size()) {
    fail("sending the request over TLS");
  }
  TlsAnswer answer;
  answer.version = SSL_get_version(ssl.get());
  answer.cipher = SSL_get_cipher_name(ssl.get());
  std::array<char, 16384> chunk;
  for (;;) {
    std::size_t got = 0;
    if (SSL_read_ex(ssl.get(), chunk.data(), chunk.size(), &got) == 1) {
      answer.bytes.append(chunk.data(), got);
      continue;
    }
    // The end: close_notify, or the connection's end without it (the answer's check says
    // whether the bytes are whole).
    const int error = SSL_get_error(ssl.get(), 0);
    ERR_clear_error();
    if (error != SSL_ERROR_ZERO_RETURN && error != SSL_ERROR_SYSCALL && error != SSL_ERROR_SSL) {
      throw std::runtime_error("reading over TLS: SSL error " + std::to_string(error));
    }
    break;
  }
  return answer;
}

}  // namespace coring::bench
