// The HTTP servers of the benchmarks: coring's on http::Server, nginx and h2o.
#include "http_servers.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <coring/fs/file.hpp>
#include <coring/http/message.hpp>
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/http/static_files.hpp>
#include <coring/net/address.hpp>
#include <coring/runtime/task.hpp>
#ifdef CORING_BENCH_TLS
#include <coring/net/tls.hpp>
#endif

namespace coring::bench {
namespace {

constexpr std::chrono::milliseconds start_patience{10'000};
constexpr std::chrono::milliseconds stop_grace{5'000};

// Options as coring-http (examples/coring_http.cpp) runs with its defaults: one loop,
// the receive pool, a 30 s idle timeout.
http::ServerOptions coring_http_options() {
  http::ServerOptions options;
  options.address = net::Address::ipv4_loopback(0);
  options.threads = 1;
  options.idle_timeout = std::chrono::seconds(30);
  return options;
}

Task<http::Response> hello(http::Request&) {
  co_return http::Response::text(200, std::string(hello_body));
}

// Serves `router` until SIGINT or SIGTERM, reporting the port once the loop serves.
int serve_router(http::Router router, int ready_fd) {
  http::Server server(coring_http_options(), std::move(router));
  return server.run([&server, ready_fd] { report_listening(ready_fd, server.port()); });
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// nginx's configuration (see Nginx in http_servers.hpp), its temporary files in
// `prefix`, its errors to `error_log` (a path, or "stderr").
std::string nginx_config(const std::filesystem::path& prefix, std::uint16_t port,
                         const std::string& error_log, const std::filesystem::path& root,
                         const std::optional<TlsFiles>& tls) {
  std::string conf = "worker_processes 1;\ndaemon off;\npid " + (prefix / "nginx.pid").string() +
                     ";\nerror_log " + error_log +
                     " warn;\nevents { worker_connections 1024; }\n"
                     "http {\n  access_log off;\n  keepalive_requests 1000000000;\n"
                     "  keepalive_timeout 30s;\n";
  for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    conf += "  " + std::string(kind) + "_temp_path " + (prefix / kind).string() + ";\n";
  }
  conf += "  server {\n    listen 127.0.0.1:" + std::to_string(port);
  if (tls) {
    conf += " ssl;\n    ssl_certificate " + tls->certificate.string() +
            ";\n    ssl_certificate_key " + tls->key.string() +
            ";\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_tickets on";
  }
  conf += ";\n";
  if (root.empty()) {
    conf += "    location = / { default_type text/plain; return 200 \"" + std::string(hello_body) +
            "\"; }\n"
            "    location / { return 404; }\n";
  } else {
    // tcp_nopush stays off (nginx's default): on, it corks and uncorks every keep-alive
    // response, two setsockopt calls more per request.
    conf += "    root " + root.string() +
            ";\n    default_type application/octet-stream;\n    sendfile on;\n"
            "    open_file_cache max=1000 inactive=60s;\n    open_file_cache_valid 60s;\n";
  }
  conf += "  }\n}\n";
  return conf;
}

// h2o's configuration (see H2o in http_servers.hpp), serving `file` on /.
std::string h2o_config(std::uint16_t port, const std::filesystem::path& file) {
  return "num-threads: 1\n"
         "http1-request-timeout: 30\n"
         "listen:\n  host: 127.0.0.1\n  port: " +
         std::to_string(port) +
         "\n"
         "hosts:\n  default:\n    paths:\n      \"/\":\n"
         "        file.file: " +
         file.string() + "\n        file.etag: OFF\n";
}

}  // namespace

int serve_coring_http(int ready_fd) {
  http::Router router;
  router.get("/", &hello);
  return serve_router(std::move(router), ready_fd);
}

int serve_coring_files(const std::filesystem::path& root, int ready_fd) {
  http::Router router;
  router.prefix("GET", "/", http::StaticFiles(root, {.open_file_cache_ms = 1000}));
  return serve_router(std::move(router), ready_fd);
}

#ifdef CORING_BENCH_TLS
int serve_coring_https(const TlsFiles& files, int ready_fd) {
  const Result<net::TlsContext, net::TlsError> context =
      net::TlsContext::server({.certificate_chain_file = files.certificate.string(),
                               .private_key_file = files.key.string(),
                               .alpn = {"http/1.1"}});
  if (!context) {
    std::fprintf(stderr, "coring-bench: %s\n", context.error().message().c_str());
    return 1;
  }
  http::ServerOptions options = coring_http_options();
  options.tls = &*context;
  http::Router router;
  router.get("/", &hello);
  http::Server server(options, std::move(router));
  return server.run([&server, ready_fd] { report_listening(ready_fd, server.port()); });
}
#endif

TempDir::TempDir(std::string_view name) {
  std::string pattern = (std::filesystem::temp_directory_path() / name).string() + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::system_category(), "mkdtemp " + pattern);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  // A destructor has no one to report a failure to: what is left stays in the temporary
  // directory.
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "open " + path.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      const int error = errno;
      ::close(fd);
      throw std::system_error(error, std::system_category(), "write " + path.string());
    }
    done += static_cast<std::size_t>(put);
  }
  ::close(fd);
}

void make_readable_by_all(const std::filesystem::path& dir) {
  std::filesystem::permissions(
      dir, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);
}

PeerServer::PeerServer(std::string_view name, std::string_view error_log)
    : name_(name),
      prefix_("coring-bench-" + name_),
      error_log_(error_log.empty() ? std::string() : (prefix_.path() / error_log).string()),
      port_(free_loopback_port()) {
  make_readable_by_all(prefix_.path());
}

void PeerServer::start(int cpu, const std::vector<std::string>& argv) {
  int errors = -1;
  if (!error_log_.empty()) {
    errors = ::open(error_log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (errors < 0) throw std::system_error(errno, std::system_category(), "open " + error_log_);
  }
  process_.emplace(ChildProcess::exec(cpu, argv, -1, errors));
  if (errors >= 0) ::close(errors);
  try {
    ::close(connect_loopback(port_, start_patience));
  } catch (const std::exception& e) {
    throw std::runtime_error(failure(e.what()));
  }
}

std::string PeerServer::failure(std::string_view what) const {
  std::string text = name_ + ": " + std::string(what);
  if (!error_log_.empty()) {
    std::ifstream log(error_log_);
    // Appended piece by piece: g++ 12 warns (-Wrestrict) on a chain of + here.
    text += '\n';
    text += std::filesystem::path(error_log_).filename().string();
    text += ":\n";
    text.append(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>());
  }
  return text;
}

int PeerServer::stop_with(int signal) { return process_->stop(signal, stop_grace); }

Nginx::Nginx(const NginxOptions& options)
    : PeerServer("nginx", options.errors_to_stderr ? "" : "error.log") {
  const std::string log = error_log().empty() ? "stderr" : error_log();
  const std::filesystem::path conf = prefix() / "nginx.conf";
  write_text(conf, nginx_config(prefix(), port(), log, options.root, options.tls));
  start(options.cpu, {options.program, "-p", prefix().string(), "-c", conf.string(), "-e", log});
}

H2o::H2o(const H2oOptions& options) : PeerServer("h2o", "error.log") {
  const std::filesystem::path body = prefix() / "hello.txt";
  write_file(body, hello_body);
  const std::filesystem::path conf = prefix() / "h2o.conf";
  write_text(conf, h2o_config(port(), body));
  start(options.cpu, {options.program, "-c", conf.string()});
}

}  // namespace coring::bench
