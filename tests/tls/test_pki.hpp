// Certificates and keys for the TLS tests, generated at test time with OpenSSL so that no
// private key is ever committed. Every file is PEM; keys are unencrypted PKCS#8, mode 0600.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

#include "support.hpp"

namespace coring::test {

// The PEM files make_test_pki() writes into `dir`. Every leaf's key is EC P-256, and every
// chain file holds the leaf first, then the certificate of the CA that signed it (a
// self-signed leaf has no CA, so its chain file holds the leaf alone).
struct TestPki {
  std::filesystem::path dir;
  // The self-signed "coring test CA": the trust anchor the tests pass as CA file.
  std::filesystem::path ca_cert;
  // CN=localhost with DNS:localhost, DNS:alt.localhost, IP:127.0.0.1 and IP:::1, signed by ca.
  std::filesystem::path server_chain, server_key;
  // A second leaf signed by ca, for DNS:other.localhost only (for SNI tests).
  std::filesystem::path alt_chain, alt_key;
  // Like server but its validity ended yesterday (notBefore 30 days ago, notAfter 1 day ago).
  std::filesystem::path expired_chain, expired_key;
  // Self-signed leaf for localhost: neither a CA nor signed by ca.
  std::filesystem::path self_signed_chain, self_signed_key;
  // Leaf for localhost signed by a second CA, which is not in ca_cert.
  std::filesystem::path unknown_ca_chain, unknown_ca_key;
  // CN=coring test client with extendedKeyUsage clientAuth, signed by ca.
  std::filesystem::path client_chain, client_key;
  // A file of plain text, not PEM at all.
  std::filesystem::path garbage_pem;
};

// Generates everything in TestPki into `dir`, creating it if missing and overwriting what is
// there: EC P-256 keys, SHA-256 signatures, X.509 v3 certificates with random 128-bit serial
// numbers. Throws std::runtime_error naming the failed step (with OpenSSL's error string, or
// as std::system_error for file I/O); OpenSSL's thread error queue is left empty either way.
TestPki make_test_pki(const std::filesystem::path& dir);

// A test suite whose tests share one TestPki, made in a temporary directory before the
// suite's first test and removed after its last.
class PkiSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  static ring::test::TempDir* dir_;
  static TestPki* pki_;
};

}  // namespace coring::test
