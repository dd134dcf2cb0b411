// The TLS side of the https rows that is the benchmark's own, not the servers': a
// certificate made for the run, and one request over TLS to check a server's answer.
// OpenSSL is used directly here (a blocking client), so that the check does not go
// through the coring code it checks. Built only with coring::tls (CORING_BENCH_TLS).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace coring::bench {

// A certificate and its private key, PEM files.
struct TlsFiles {
  std::filesystem::path certificate;
  std::filesystem::path key;
};

// Makes a P-256 key and a self-signed certificate for the address 127.0.0.1 (its
// subjectAltName), valid for a day, as cert.pem and key.pem in `dir`. The same pair
// serves coring and nginx: the handshakes cost the same signatures. Throws
// std::runtime_error with OpenSSL's reason.
TlsFiles make_tls_files(const std::filesystem::path& dir);

// What a server answered over TLS, and what the handshake agreed on.
struct TlsAnswer {
  std::string bytes;    // everything read until the server's end
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
};

// Connects to 127.0.0.1:port, runs a TLS handshake that verifies the server's
// certificate against `trusted` (for the address 127.0.0.1), sends `request` and reads
// until the connection ends (10 s at most per read). Throws std::runtime_error saying
// what failed.
TlsAnswer tls_exchange(std::uint16_t port, const std::filesystem::path& trusted,
                       std::string_view request);

}  // namespace coring::bench
