// coring-bench: coring's benchmarks, one subcommand each, with their comparison peers.
//
//   coring-bench SUBCOMMAND [OPTIONS] [--cpu C]
//
// Every subcommand that runs coring code takes --backend io_uring|epoll, the ring its
// coring side runs on (backend.hpp); without it, CORING_BACKEND decides, as for any coring
// program.
//
// A benchmark joins by adding its row to `subcommands` below. Single-run subcommands
// print one `name=value` line on stdout (errors go to stderr), so that scripts can
// read them; *-compare subcommands print a table. Exit status: 0 done (or skipped
// because a peer is not built), 1 the run failed, 2 bad usage.
#include <sched.h>

#include <array>
#include <cstdio>
#include <exception>
#include <span>
#include <string_view>

#include "cli.hpp"
#include "echo.hpp"
#include "fairness.hpp"
#include "file_randread.hpp"
#include "http.hpp"
#include "idle.hpp"
#include "measure.hpp"
#include "ring_nop.hpp"
#include "runtime_nop.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

struct Subcommand {
  std::string_view name;
  std::string_view options;  // its own options; --cpu is common to all
  std::string_view summary;
  int (*run)(Args& args);
};

constexpr std::array subcommands{
    Subcommand{"all",
               "[--json FILE] [--reps R] [--seconds S] [--ops N] [--file F] [--file-mib M] "
               "[--idle-conns N] [--fairness-clients N] [--fairness-probes P] [--server-cpu A] "
               "[--client-cpu B] [--backend io_uring|epoll]",
               "every benchmark against its peers, R runs each (3) interleaved; one table of "
               "medians; on io_uring, echo and http rows on the epoll backend too",
               all_main},
    Subcommand{"ring-nop", "--batch B [--ops N] [--backend io_uring|epoll]",
               "NOPs through coring's Ring: B per submit_and_wait, N in all (2000000)",
               ring_nop_main},
    Subcommand{"ring-nop-liburing", "--batch B [--ops N]", "the same loop on liburing (the peer)",
               ring_nop_liburing_main},
    Subcommand{
        "ring-nop-compare", "--batches B1,B2,... [--ops N] [--reps R] [--backend io_uring|epoll]",
        "both, interleaved R times (5) per batch size; a table of medians", ring_nop_compare_main},
    Subcommand{"runtime-nop", "--inflight K [--ops N] [--backend io_uring|epoll]",
               "K coroutines awaiting NOPs on one EventLoop, N in all (2000000)", runtime_nop_main},
    Subcommand{"runtime-nop-compare",
               "--inflight K1,K2,... [--ops N] [--reps R] [--backend io_uring|epoll]",
               "ring-nop --batch K and runtime-nop --inflight K, interleaved R times (5)",
               runtime_nop_compare_main},
    Subcommand{"file-randread",
               "--file F [--qd Q] [--seconds T] [--direct] [--backend io_uring|epoll]",
               "4 KiB random reads of F through coring's fs layer, Q in flight (32), T s (5)",
               file_randread_main},
    Subcommand{"file-randread-compare",
               "--file F [--qd Q] [--seconds T] [--reps R] [--direct] [--backend io_uring|epoll]",
               "file-randread and fio's io_uring engine, interleaved R times (3); medians",
               file_randread_compare_main},
    Subcommand{"echo",
               "--conns C --size S --seconds T [--reps R] [--server-cpu A] [--client-cpu B] "
               "[--diagnostic 1] [--backend io_uring|epoll]",
               "server CPU per message: coring's echo server vs epoll, liburing and Asio ones "
               "(3 reps); with --backend, coring's on the other backend too, for reference",
               echo_main},
    Subcommand{"echo-load", "--port P [--conns C] [--size S] [--seconds T]",
               "echo's load client alone, against a server on 127.0.0.1:P", echo_load_main},
    Subcommand{"echo-server", "[--server N] [--server-cpu A] [--backend io_uring|epoll]",
               "one of echo's servers alone: 0 coring, 1 epoll, 2 liburing, 3 asio-epoll, "
               "4 asio-uring, 5 coring-recv, 6 coring-rt",
               echo_server_main},
    Subcommand{"http",
               "[--seconds T] [--conns C] [--reps R] [--server-cpu A] [--client-cpu B] "
               "[--backend io_uring|epoll]",
               "server CPU per request: coring-http vs nginx and h2o under wrk -t1 -c64 (3 "
               "reps); with --backend, coring-http on the other backend too, for reference",
               http_main},
    Subcommand{"http-static",
               "[--bytes N] [--seconds T] [--conns C] [--reps R] [--server-cpu A] "
               "[--client-cpu B] [--backend io_uring|epoll]",
               "server CPU per request: coring's static files vs nginx's (sendfile, "
               "open_file_cache), GET of an N-byte file (1024) under wrk -t1 -c50 (3 reps)",
               http_static_main},
    Subcommand{"https",
               "[--handshake] [--seconds T] [--conns C] [--reps R] [--server-cpu A] "
               "[--client-cpu B] [--backend io_uring|epoll]",
               "server CPU per request: coring-http vs nginx over HTTPS (TLS 1.3), GET / under "
               "wrk -t1 -c64, keep-alive; --handshake: a new connection and handshake per "
               "request, -c8 (3 reps)",
               https_main},
    Subcommand{"idle",
               "[--conns N] [--reps R] [--server-cpu A] [--client-cpu B] "
               "[--backend io_uring|epoll]",
               "server RSS per idle connection: coring-echo vs the epoll echo server, N "
               "connections (10000) each echoing once",
               idle_main},
    Subcommand{"fairness",
               "[--clients N] [--probes P] [--gap-ms G] [--reps R] [--server-cpu A] "
               "[--client-cpu B] [--backend io_uring|epoll]",
               "probe latency while N clients (50) send without reading: coring-echo vs epoll, "
               "coring-http vs nginx; P probes (100), every G ms (50); all bytes checked",
               fairness_main},
};

void print_usage(std::FILE* out, const Subcommand& sub) {
  std::fprintf(out, "usage: coring-bench %.*s %.*s [--cpu C]\n  %.*s\n",
               static_cast<int>(sub.name.size()), sub.name.data(),
               static_cast<int>(sub.options.size()), sub.options.data(),
               static_cast<int>(sub.summary.size()), sub.summary.data());
}

void print_help(std::FILE* out) {
  std::fprintf(out,
               "usage: coring-bench SUBCOMMAND [OPTIONS] [--cpu C]\n"
               "       coring-bench SUBCOMMAND --help\n\n"
               "  --cpu C  pin the benchmark to CPU C first (sched_setaffinity)\n"
               "  --backend io_uring|epoll  (subcommands that run coring code) the ring coring "
               "runs on;\n"
               "           CORING_BACKEND's choice without it\n\n"
               "subcommands:\n");
  for (const Subcommand& sub : subcommands) {
    std::fprintf(out, "  %-20.*s %.*s\n", static_cast<int>(sub.name.size()), sub.name.data(),
                 static_cast<int>(sub.summary.size()), sub.summary.data());
  }
}

const Subcommand* find(std::string_view name) {
  for (const Subcommand& sub : subcommands) {
    if (sub.name == name) return &sub;
  }
  return nullptr;
}

int run(const Subcommand& sub, std::span<char* const> words) {
  try {
    Args args(words);
    if (args.take_help()) {
      print_usage(stdout, sub);
      return 0;
    }
    if (auto cpu = args.take_u64("--cpu", 0, CPU_SETSIZE - 1)) pin_to_cpu(static_cast<int>(*cpu));
    return sub.run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coring-bench %.*s: %s\n", static_cast<int>(sub.name.size()),
                 sub.name.data(), e.what());
    print_usage(stderr, sub);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-bench %.*s: %s\n", static_cast<int>(sub.name.size()),
                 sub.name.data(), e.what());
    return 1;
  }
}

}  // namespace
}  // namespace coring::bench

int main(int argc, char** argv) {
  using namespace coring::bench;
  const std::span<char* const> words(argv, static_cast<std::size_t>(argc));
  if (words.size() < 2) {
    print_help(stderr);
    return 2;
  }
  const std::string_view name = words[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help(stdout);
    return 0;
  }
  const Subcommand* sub = find(name);
  if (sub == nullptr) {
    std::fprintf(stderr, "coring-bench: unknown subcommand '%.*s'\n\n",
                 static_cast<int>(name.size()), name.data());
    print_help(stderr);
    return 2;
  }
  return run(*sub, words.subspan(2));
}
