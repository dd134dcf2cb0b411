// coring-bench http and http-static: coring's HTTP server against nginx and h2o under
// wrk. The servers themselves, which fairness runs as well, are in http_servers.hpp.
#pragma once

#include "cli.hpp"
#include "http_servers.hpp"

namespace coring::bench {

// `GET /` -> "Hello, World!": coring-http's code against nginx and h2o.
int http_main(Args& args);

// `GET /file.bin`, a file of --bytes N: coring's static files against nginx's.
int http_static_main(Args& args);

// `GET /` over HTTPS: coring-http against nginx, keep-alive, or with --handshake a new
// connection (a full TLS 1.3 handshake) per request.
int https_main(Args& args);

}  // namespace coring::bench
