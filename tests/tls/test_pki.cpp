#include "test_pki.hpp"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace coring::test {
namespace {

namespace fs = std::filesystem;

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;

constexpr long kDay = 24 * 60 * 60;

// Throws for `step` with every error OpenSSL queued, which empties the thread's queue.
[[noreturn]] void fail(std::string_view step) {
  std::string errors;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    errors += errors.empty() ? "" : "; ";
    errors += text;
  }
  throw std::runtime_error("make_test_pki: " + std::string(step) + ": " +
                           (errors.empty() ? "no OpenSSL error queued" : errors));
}

// OpenSSL's two failure conventions: a null pointer, or an int result <= 0.
template <typename T>
T* check(T* result, std::string_view step) {
  if (result == nullptr) fail(step);
  return result;
}
void check_ok(int result, std::string_view step) {
  if (result <= 0) fail(step);
}

KeyPtr make_key() {
  return KeyPtr(check(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "generate P-256 key"));
}

struct CertSpec {
  const char* common_name;
  bool is_ca = false;
  const char* extended_key_usage = nullptr;  // e.g. "serverAuth"; none if null
  const char* subject_alt_name = nullptr;    // e.g. "DNS:localhost"; none if null
  long not_before_days = -1;                 // relative to now; a day back absorbs clock skew
  long not_after_days = 30;
};

// The issuer of a certificate: its certificate and the key that signs with it.
struct Issuer {
  X509* cert;
  EVP_PKEY* key;
};

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  const std::string step = std::string("extension ") + OBJ_nid2sn(nid) + " = " + value;
  const ExtensionPtr extension(check(X509V3_EXT_conf_nid(nullptr, ctx, nid, value), step));
  check_ok(X509_add_ext(cert, extension.get(), -1), step);  // adds a copy
}

// A certificate for the public half of `key` as `spec` describes, signed by `issuer`, or by
// `key` itself (self-signed) if `issuer` is null.
X509Ptr make_cert(const CertSpec& spec, EVP_PKEY* key, const Issuer* issuer) {
  X509Ptr cert(check(X509_new(), "X509_new"));
  check_ok(X509_set_version(cert.get(), X509_VERSION_3), "set version");

  // 128 bits with the top one set: positive, nonzero and at most 17 DER octets (limit 20).
  const BignumPtr serial(check(BN_new(), "BN_new"));
  check_ok(BN_rand(serial.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), "random serial");
  check(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())), "set serial");

  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_days * kDay),
        "set notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_days * kDay),
        "set notAfter");

  X509_NAME* subject = X509_get_subject_name(cert.get());  // owned by cert
  check_ok(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(spec.common_name), -1,
                                      -1, 0),
           "set subject CN");
  X509* const issuer_cert = issuer != nullptr ? issuer->cert : cert.get();
  check_ok(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)), "set issuer");
  check_ok(X509_set_pubkey(cert.get(), key), "set public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer_cert, cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_basic_constraints,
                spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, NID_key_usage,
                spec.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (spec.extended_key_usage != nullptr) {
    add_extension(cert.get(), &ctx, NID_ext_key_usage, spec.extended_key_usage);
  }
  if (spec.subject_alt_name != nullptr) {
    add_extension(cert.get(), &ctx, NID_subject_alt_name, spec.subject_alt_name);
  }
  // The subject key identifier comes first: a self-signed certificate's authority key
  // identifier is copied from it (an issuer's, from the issuer's).
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");

  check_ok(X509_sign(cert.get(), issuer != nullptr ? issuer->key : key, EVP_sha256()),
           "sign certificate");
  return cert;
}

// Writes `contents` to `path` with permissions `mode`. The file is created with `mode` so a key
// is never readable by others, even briefly; fchmod() covers a file that already existed.
void write_file(const fs::path& path, std::string_view contents, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  int error = fd < 0 ? errno : 0;
  if (error == 0 && ::fchmod(fd, mode) != 0) error = errno;
  for (size_t done = 0; error == 0 && done < contents.size();) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      error = errno;
    }
  }
  if (fd >= 0 && ::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    throw std::system_error(error, std::generic_category(),
                            "make_test_pki: write " + path.string());
  }
}

// Runs `write` (a PEM_write_bio_* call) into memory and returns the text.
template <typename Write>
std::string to_pem(Write write) {
  const BioPtr bio(check(BIO_new(BIO_s_mem()), "BIO_new"));
  check_ok(write(bio.get()), "PEM encode");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

void write_certs(const fs::path& path, std::initializer_list<X509*> certs) {
  std::string pem;
  for (X509* cert : certs) pem += to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
  write_file(path, pem, 0644);
}

// Makes a fresh key and a certificate for it signed by `issuer` (self-signed if null), and
// writes the key to `key_path` and the chain (leaf, then issuer) to `chain_path`.
void write_leaf(const CertSpec& spec, const Issuer* issuer, const fs::path& chain_path,
                const fs::path& key_path) {
  const KeyPtr key = make_key();
  const X509Ptr cert = make_cert(spec, key.get(), issuer);
  write_file(key_path, to_pem([&](BIO* bio) {
               return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr,
                                               nullptr);
             }),
             0600);
  if (issuer != nullptr) {
    write_certs(chain_path, {cert.get(), issuer->cert});
  } else {
    write_certs(chain_path, {cert.get()});
  }
}

}  // namespace

TestPki make_test_pki(const fs::path& dir) {
  fs::create_directories(dir);
  TestPki pki;
  pki.dir = dir;
  pki.ca_cert = dir / "ca.pem";
  pki.server_chain = dir / "server.pem";
  pki.server_key = dir / "server.key";
  pki.alt_chain = dir / "alt.pem";
  pki.alt_key = dir / "alt.key";
  pki.expired_chain = dir / "expired.pem";
  pki.expired_key = dir / "expired.key";
  pki.self_signed_chain = dir / "self_signed.pem";
  pki.self_signed_key = dir / "self_signed.key";
  pki.unknown_ca_chain = dir / "unknown_ca.pem";
  pki.unknown_ca_key = dir / "unknown_ca.key";
  pki.client_chain = dir / "client.pem";
  pki.client_key = dir / "client.key";
  pki.garbage_pem = dir / "garbage.pem";

  const KeyPtr ca_key = make_key();
  const X509Ptr ca_cert =
      make_cert({.common_name = "coring test CA", .is_ca = true}, ca_key.get(), nullptr);
  write_certs(pki.ca_cert, {ca_cert.get()});
  const Issuer ca{ca_cert.get(), ca_key.get()};

  // The unknown CA's own key and certificate are used only to sign, never written alone.
  const KeyPtr other_ca_key = make_key();
  const X509Ptr other_ca_cert = make_cert(
      {.common_name = "coring untrusted test CA", .is_ca = true}, other_ca_key.get(), nullptr);
  const Issuer other_ca{other_ca_cert.get(), other_ca_key.get()};

  const CertSpec localhost{
      .common_name = "localhost",
      .extended_key_usage = "serverAuth",
      .subject_alt_name = "DNS:localhost,DNS:alt.localhost,IP:127.0.0.1,IP:::1",
  };
  CertSpec expired = localhost;
  expired.not_before_days = -30;
  expired.not_after_days = -1;
  const CertSpec other{.common_name = "other.localhost",
                       .extended_key_usage = "serverAuth",
                       .subject_alt_name = "DNS:other.localhost"};
  const CertSpec client{.common_name = "coring test client", .extended_key_usage = "clientAuth"};

  write_leaf(localhost, &ca, pki.server_chain, pki.server_key);
  write_leaf(other, &ca, pki.alt_chain, pki.alt_key);
  write_leaf(expired, &ca, pki.expired_chain, pki.expired_key);
  write_leaf(localhost, nullptr, pki.self_signed_chain, pki.self_signed_key);
  write_leaf(localhost, &other_ca, pki.unknown_ca_chain, pki.unknown_ca_key);
  write_leaf(client, &ca, pki.client_chain, pki.client_key);
  write_file(pki.garbage_pem, "This is not a PEM file: no BEGIN line, no base64, just text.\n",
             0644);
  return pki;
}

ring::test::TempDir* PkiSuite::dir_ = nullptr;
TestPki* PkiSuite::pki_ = nullptr;

void PkiSuite::SetUpTestSuite() {
  dir_ = new ring::test::TempDir();
  pki_ = new TestPki(make_test_pki(dir_->path()));
}

void PkiSuite::TearDownTestSuite() {
  delete pki_;
  pki_ = nullptr;
  delete dir_;
  dir_ = nullptr;
}

}  // namespace coring::test
