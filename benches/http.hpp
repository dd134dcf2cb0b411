// coring-bench http: coring-http against nginx under wrk; and those two servers, which
// fairness runs as well.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "child_process.hpp"
#include "cli.hpp"

namespace coring::bench {

int http_main(Args& args);

// coring-http's code as `coring-bench http` runs it: one loop, coring-http's receive
// pool, a 30 s idle timeout; listening on 127.0.0.1 (reported through `ready_fd`, see
// ChildProcess::fork_server) until SIGINT or SIGTERM (then it returns 0).
int serve_coring_http(int ready_fd);

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

struct NginxOptions {
  std::string program;  // nginx's path, from find_program("nginx")
  int cpu = 0;          // nginx is started pinned to it; its worker inherits the affinity
  // Where nginx writes its errors: this process's stderr, or error.log in its prefix,
  // which Nginx::failure() quotes.
  bool errors_to_stderr = false;
};

// nginx configured as coring-http's peer: one worker process (1024 worker_connections),
// no access log, `return 200 "Hello, World!"` on / and 404 elsewhere, no limit on the
// requests per connection (coring-http has none) and a 30 s keep-alive timeout
// (coring-http's idle timeout), listening on a free port of 127.0.0.1. Its configuration
// and temporary files live in a temporary prefix, removed with it.
class Nginx {
 public:
  // Writes the configuration, starts nginx and waits up to 10 s until it accepts a
  // connection; throws std::runtime_error (failure()'s text) if it does not.
  explicit Nginx(const NginxOptions& options);

  [[nodiscard]] ChildProcess& process() noexcept { return process_; }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // "nginx: " and `what`, then what nginx has written to its error.log if it writes one.
  [[nodiscard]] std::string failure(std::string_view what) const;
  // nginx's graceful shutdown: SIGQUIT, then SIGKILL if it still runs 5 s later. Returns
  // its exit status (ChildProcess::stop()).
  int stop();

 private:
  ChildProcess start(const NginxOptions& options) const;

  // Declared in this order: the prefix exists before nginx starts, and is removed only
  // once the process is gone (members are destroyed in reverse).
  TempDir prefix_;
  std::string error_log_;  // nginx's -e: error.log's path, or "stderr" (nginx's own word)
  std::uint16_t port_;
  ChildProcess process_;
};

}  // namespace coring::bench
