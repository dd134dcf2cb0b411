// The HTTP servers the benchmarks load (http, http-static, fairness): coring's, forked
// from this process, and the peers nginx and h2o, run from configurations generated in a
// temporary prefix. Each runs pinned to the server CPU, in a process of its own, so that
// its CPU time is its own (child_process.hpp).
#pragma once

#include <signal.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"
#include "tls_client.hpp"

namespace coring::bench {

// What the hello servers answer to `GET /`.
inline constexpr std::string_view hello_body = "Hello, World!";

// coring-http's code as `coring-bench http` runs it: http::Server on one loop, with
// coring-http's router (GET / -> 200 "Hello, World!"), receive pool and 30 s idle
// timeout; listening on 127.0.0.1 (reported through `ready_fd`, see
// ChildProcess::fork_server) until SIGINT or SIGTERM (then it returns 0).
int serve_coring_http(int ready_fd);

// http::Server on one loop as above, answering GET (and HEAD) for every path with the
// regular file of that name below `root` (http::StaticFiles, see http_servers.cpp), 404
// for anything else.
int serve_coring_files(const std::filesystem::path& root, int ready_fd);

// coring-http's code as `coring-bench https` runs it: serve_coring_http()'s server with
// HTTPS (ServerOptions::tls) from `files`, ALPN http/1.1, as `coring-http --tls-cert
// --tls-key` serves. Only in a build with coring::tls (CORING_BENCH_TLS).
int serve_coring_https(const TlsFiles& files, int ready_fd);

// A temporary directory <temp>/<name>.XXXXXX, removed with its contents on destruction.
class TempDir {
 public:
  // Throws std::system_error if mkdtemp() fails.
  explicit TempDir(std::string_view name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to a new file at `path` (mode 0644); throws std::system_error.
void write_file(const std::filesystem::path& path, std::string_view bytes);

// Lets everyone list and read `dir` (mode 0755): run as root, nginx's worker and h2o
// serve as an unprivileged user (nobody), who must reach the files they serve.
void make_readable_by_all(const std::filesystem::path& dir);

// A peer server program running from a configuration in a temporary prefix, pinned to a
// CPU, on a free port of 127.0.0.1: what Nginx and H2o share. The prefix is readable by
// everyone (make_readable_by_all()).
class PeerServer {
 public:
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  [[nodiscard]] ChildProcess& process() noexcept { return *process_; }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // "<program>: " and `what`, then what the peer has written to its error log, if it
  // writes one in the prefix.
  [[nodiscard]] std::string failure(std::string_view what) const;

 protected:
  // `name` names the peer in failures and its prefix; `error_log` is the log's file
  // name in the prefix, or "" when it writes its errors to this process's stderr.
  PeerServer(std::string_view name, std::string_view error_log);
  ~PeerServer() = default;

  [[nodiscard]] const std::filesystem::path& prefix() const noexcept { return prefix_.path(); }
  // The error log's path, or "" (see the constructor).
  [[nodiscard]] const std::string& error_log() const noexcept { return error_log_; }
  // Starts argv pinned to `cpu`, its stderr going to the error log if there is one, and
  // waits up to 10 s until it accepts a connection on port(); throws std::runtime_error
  // (failure()'s text) if it does not.
  void start(int cpu, const std::vector<std::string>& argv);
  // Sends `signal`, and SIGKILL if the peer still runs 5 s later; its exit status.
  int stop_with(int signal);

 private:
  std::string name_;
  // Declared in this order: the prefix exists before the peer starts, and is removed
  // only once the process is gone (members are destroyed in reverse).
  TempDir prefix_;
  std::string error_log_;
  std::uint16_t port_;
  std::optional<ChildProcess> process_;
};

struct NginxOptions {
  std::string program;  // nginx's path, from find_program("nginx")
  int cpu = 0;          // nginx is started pinned to it; its worker inherits the affinity
  // Where nginx writes its errors: this process's stderr, or error.log in its prefix,
  // which failure() quotes.
  bool errors_to_stderr = false;
  // Empty: the hello configuration. Otherwise the directory nginx serves as static files.
  std::filesystem::path root{};
  // Set: HTTPS with this certificate and key (TLS 1.2 and 1.3, session tickets on, as
  // nginx's defaults are), on the same port.
  std::optional<TlsFiles> tls{};
};

// nginx configured as coring's peer: one worker process (1024 worker_connections), no
// access log, no limit on the requests per connection (coring's server has none) and a
// 30 s keep-alive timeout (coring-http's idle timeout). Without a root: `return 200
// "Hello, World!"` on / and 404 elsewhere. With one: the files below it, with `sendfile
// on` and an open_file_cache (descriptors and sizes kept open across requests), as
// application/octet-stream.
class Nginx : public PeerServer {
 public:
  // Writes the configuration, starts nginx and waits until it accepts.
  explicit Nginx(const NginxOptions& options);
  // nginx's graceful shutdown: SIGQUIT, then SIGKILL if it still runs 5 s later. Returns
  // its exit status (ChildProcess::stop()).
  int stop() { return stop_with(SIGQUIT); }
};

struct H2oOptions {
  std::string program;  // h2o's path, from find_program("h2o")
  int cpu = 0;          // h2o is started pinned to it
};

// h2o (2.2, Debian's) configured as coring-http's peer: one worker thread (`num-threads:
// 1`), no access log, HTTP/1.1 keep-alive with a 30 s request timeout and no limit on
// the requests per connection (h2o has none), answering GET / with "Hello, World!" from
// a 13-byte file (file.file, without an ETag), its cheapest way to send a fixed body (see
// docs/benchmarks.md); its errors go to error.log in its prefix.
class H2o : public PeerServer {
 public:
  // Writes the configuration and the file, starts h2o and waits until it accepts.
  explicit H2o(const H2oOptions& options);
  int stop() { return stop_with(SIGTERM); }
};

}  // namespace coring::bench
