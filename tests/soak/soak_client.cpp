// coring-soak-client: holds N connections to an echo server under continuous load for a
// while, checks every reply, and watches the server's memory.
//
//   coring-soak-client --port P --connections N --seconds S [--warmup-seconds W]
//                      [--message-size B] [--server-pid PID] [--max-rss-growth-percent G]
//
// It raises its RLIMIT_NOFILE to the hard limit, then opens the N connections (at most
// 256 connecting at once, so that the listener's backlog never overflows and no SYN has
// to be retried), and runs one coroutine per connection on one loop: send a message,
// read the echo, compare it with what was sent, again, for S seconds from the moment
// the last connect settled. A message
// is numbered by its connection and sequence, so a reply of another connection, a
// stale one or a torn one shows. It takes the server's peak RSS (VmHWM in
// /proc/PID/status, reset through /proc/PID/clear_refs at the start of each window)
// over the first W seconds (the warm-up) and over the rest, while every connection is
// open and loaded; growth is (rest - warm-up) / warm-up. The server's heap breathes with the
// messages in flight (a stream that finds the pool dry receives into a buffer of its own, freed
// once sent), up to a bound of one such buffer per connection that steady load only
// approaches at random: so during the warm-up the client stops the server (SIGSTOP)
// for 100 ms every 600 ms, every connection's message arrives meanwhile, and the
// server meets them all in one batch when it resumes (SIGCONT). The warm-up's peak is
// then that bound, and the rest of the load rises above it only by what it keeps.
//
// Exit status 0 when every connection was opened and held to the end, no error
// happened, and the server's RSS grew by less than G percent (5 by default); 1
// otherwise; 2 for a bad command line. The last line of output is the summary that
// docs/reliability.md quotes.
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <coring/net/address.hpp>
#include <coring/net/stream.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/scope.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>

namespace {

using namespace std::chrono_literals;
using coring::Task;
using coring::net::TcpStream;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::uint32_t connections = 1000;
  std::uint32_t seconds = 10;
  std::uint32_t warmup_seconds = 0;  // 0: half the run
  std::uint32_t message_size = 128;
  long server_pid = 0;  // 0: no RSS check
  double max_rss_growth_percent = 5.0;
};

constexpr char usage[] =
    "usage: coring-soak-client --port P [--host H] [--connections N] [--seconds S]\n"
    "         [--warmup-seconds W] [--message-size B] [--server-pid PID]\n"
    "         [--max-rss-growth-percent G]\n";

[[noreturn]] void bad_usage(const std::string& what) {
  std::fprintf(stderr, "coring-soak-client: %s\n%s", what.c_str(), usage);
  std::exit(2);
}

std::uint64_t number(std::string_view name, std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > max) {
    bad_usage(std::string(name) + " wants a number up to " + std::to_string(max) + ", not '" +
              std::string(text) + "'");
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options options;
  bool have_port = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--help") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 == argc) bad_usage(std::string(word) + " wants a value");
    const std::string_view value = argv[++i];
    if (word == "--port") {
      options.port = static_cast<std::uint16_t>(number(word, value, 65535));
      have_port = true;
    } else if (word == "--host") {
      options.host = value;
    } else if (word == "--connections") {
      options.connections = static_cast<std::uint32_t>(number(word, value, 1'000'000));
    } else if (word == "--seconds") {
      options.seconds = static_cast<std::uint32_t>(number(word, value, 86'400));
    } else if (word == "--warmup-seconds") {
      options.warmup_seconds = static_cast<std::uint32_t>(number(word, value, 86'400));
    } else if (word == "--message-size") {
      options.message_size = static_cast<std::uint32_t>(number(word, value, 1 << 20));
    } else if (word == "--server-pid") {
      options.server_pid = static_cast<long>(number(word, value, 1 << 30));
    } else if (word == "--max-rss-growth-percent") {
      options.max_rss_growth_percent = static_cast<double>(number(word, value, 1000));
    } else {
      bad_usage("unknown option '" + std::string(word) + "'");
    }
  }
  if (!have_port) bad_usage("--port is required");
  if (options.message_size < 16) bad_usage("--message-size must be at least 16");
  if (options.seconds == 0) bad_usage("--seconds must be at least 1");
  if (options.warmup_seconds == 0) options.warmup_seconds = std::max(1U, options.seconds / 2);
  if (options.warmup_seconds >= options.seconds) bad_usage("the warm-up must end before the run");
  return options;
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
rlim_t raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("setrlimit(RLIMIT_NOFILE)");
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

// The field `name` (VmRSS, VmHWM) of /proc/PID/status in KiB, or 0 if it cannot be read.
std::uint64_t status_kib(long pid, std::string_view name) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ':') {
      return std::strtoull(line.c_str() + name.size() + 1, nullptr, 10);
    }
  }
  return 0;
}

// Sets the peak RSS (VmHWM) of `pid` to its present RSS; false if that cannot be done.
bool reset_peak(long pid) {
  std::ofstream clear("/proc/" + std::to_string(pid) + "/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// The message `seq` of connection `conn`: its numbers, then bytes derived from them.
void fill_message(std::span<std::byte> message, std::uint32_t conn, std::uint64_t seq) {
  const std::uint64_t head[2] = {conn, seq};
  std::memcpy(message.data(), head, sizeof(head));
  for (std::size_t i = sizeof(head); i < message.size(); ++i) {
    message[i] = static_cast<std::byte>((conn * 7 + seq * 13 + i) & 0xff);
  }
}

struct Shared {
  const Options* options = nullptr;
  coring::net::Address address;
  std::stop_source stop;         // the run's end
  std::uint32_t connecting = 0;  // connects in flight (at most 256)
  std::uint32_t open = 0;        // connections open now
  std::uint32_t opened = 0;      // connections opened so far
  std::uint32_t settled = 0;     // connects that succeeded or failed
  std::uint64_t messages = 0;    // replies that came back whole and right
  std::uint64_t bytes = 0;       // their bytes
  std::uint64_t errors = 0;
  int errors_printed = 0;

  void error(std::uint32_t conn, const std::string& what) {
    ++errors;
    if (errors_printed++ < 20) {
      std::fprintf(stderr, "coring-soak-client: connection %u: %s\n", conn, what.c_str());
    }
  }
};

// Counted in shared.connecting by its spawner.
Task<void> run_connection(std::uint32_t index, Shared& shared) {
  auto stream = co_await TcpStream::connect(shared.address, {.timeout = 30s});
  --shared.connecting;
  ++shared.settled;
  if (!stream) {
    shared.error(index, "connect: " + stream.error().message());
    co_return;
  }
  (void)stream->set_nodelay(true);
  ++shared.open;
  ++shared.opened;
  std::vector<std::byte> message(shared.options->message_size);
  std::vector<std::byte> reply(message.size());
  for (std::uint64_t seq = 0; !shared.stop.stop_requested(); ++seq) {
    fill_message(message, index, seq);
    const auto sent = co_await stream->send_all(message).with_deadline(30s);
    if (!sent) {
      shared.error(index, "send: " + sent.message());
      break;
    }
    const auto got = co_await stream->recv_exact(reply).with_deadline(30s);
    if (!got) {
      shared.error(index, "recv: " + got.message());
      break;
    }
    if (reply != message) {
      shared.error(index, "reply " + std::to_string(seq) + " differs from its message");
      break;
    }
    ++shared.messages;
    shared.bytes += reply.size();
  }
  --shared.open;
  (void)co_await stream->close();
}

struct Samples {
  std::uint32_t open_at_end = 0;
  std::uint64_t rss_warm_kib = 0;  // the server's peak RSS over the warm-up
  std::uint64_t rss_end_kib = 0;   // and over the rest of the load
  bool rss_unreadable = false;
  std::uint64_t messages_warm = 0;
  double loaded_seconds = 0;  // from the last connect to the stop
};

// Starts a window of the server's peak RSS; false (and a message) if it cannot.
bool start_peak(const Options& options) {
  if (reset_peak(options.server_pid)) return true;
  std::fprintf(stderr, "coring-soak-client: cannot reset the peak RSS of pid %ld (%s)\n",
               options.server_pid, "/proc/PID/clear_refs");
  return false;
}

// Waits for every connect to settle, then for the warm-up and the rest of the run,
// keeping the server's peak RSS over each; then stops the connections.
Task<void> clock(Shared& shared, Samples& samples) {
  const Options& options = *shared.options;
  const bool watch = options.server_pid != 0;
  while (shared.settled < options.connections) co_await coring::sleep_for(10ms);
  const auto start = std::chrono::steady_clock::now();
  std::printf("coring-soak-client: %u connections open\n", shared.open);
  std::fflush(stdout);
  if (watch && !start_peak(options)) samples.rss_unreadable = true;
  const auto warm_end = start + std::chrono::seconds(options.warmup_seconds);
  while (std::chrono::steady_clock::now() + 600ms < warm_end) {
    co_await coring::sleep_for(500ms);
    if (!watch) continue;
    // Every connection's message arrives while the server is stopped, and it meets
    // them in one batch when it resumes. Without the stalls the warm-up's peak proves
    // nothing: a failed stop fails the run.
    if (::kill(static_cast<pid_t>(options.server_pid), SIGSTOP) != 0) {
      std::fprintf(stderr, "coring-soak-client: cannot stop pid %ld: %s\n", options.server_pid,
                   std::strerror(errno));
      samples.rss_unreadable = true;
      continue;
    }
    co_await coring::sleep_for(100ms);
    (void)::kill(static_cast<pid_t>(options.server_pid), SIGCONT);
  }
  co_await coring::sleep_until(warm_end);
  if (watch) {
    samples.rss_warm_kib = status_kib(options.server_pid, "VmHWM");
    if (!start_peak(options)) samples.rss_unreadable = true;
  }
  samples.messages_warm = shared.messages;
  std::printf(
      "coring-soak-client: warm-up over: %u connections open, %llu messages, server peak "
      "RSS %llu KiB\n",
      shared.open, static_cast<unsigned long long>(shared.messages),
      static_cast<unsigned long long>(samples.rss_warm_kib));
  std::fflush(stdout);
  co_await coring::sleep_until(start + std::chrono::seconds(options.seconds));
  if (watch) samples.rss_end_kib = status_kib(options.server_pid, "VmHWM");
  samples.open_at_end = shared.open;
  samples.loaded_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  shared.stop.request_stop();
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  const rlim_t fd_limit = raise_fd_limit();
  if (fd_limit < options.connections + 64) {
    std::fprintf(stderr, "coring-soak-client: RLIMIT_NOFILE is %llu, too low for %u connections\n",
                 static_cast<unsigned long long>(fd_limit), options.connections);
    return 1;
  }
  auto address = coring::net::Address::parse(options.host + ":" + std::to_string(options.port));
  if (!address) bad_usage("--host: " + address.message());

  Shared shared;
  shared.options = &options;
  shared.address = *address;
  Samples samples;
  // Every connection keeps one operation in flight while it waits for its echo: the
  // CQ must hold them all (65,536 CQEs, the kernel's maximum).
  coring::LoopOptions loop_options;
  loop_options.entries = 4096;
  loop_options.cq_entries = 65536;
  coring::EventLoop loop(loop_options);
  auto body = [&]() -> Task<void> {
    coring::TaskScope scope;
    scope.spawn(clock(shared, samples));
    for (std::uint32_t i = 0; i < options.connections; ++i) {
      // At most 256 connecting at once: the listener's backlog never overflows.
      while (shared.connecting >= 256) co_await coring::sleep_for(1ms);
      ++shared.connecting;
      scope.spawn(run_connection(i, shared));
    }
    co_await scope.join();
  };
  loop.run(body());

  const double growth = samples.rss_warm_kib == 0
                            ? 0.0
                            : 100.0 *
                                  (static_cast<double>(samples.rss_end_kib) -
                                   static_cast<double>(samples.rss_warm_kib)) /
                                  static_cast<double>(samples.rss_warm_kib);
  bool ok = shared.errors == 0 && shared.opened == options.connections &&
            samples.open_at_end == options.connections;
  if (options.server_pid != 0) {
    if (samples.rss_unreadable || samples.rss_warm_kib == 0 || samples.rss_end_kib == 0) {
      std::fprintf(stderr, "coring-soak-client: could not read the peak RSS of pid %ld\n",
                   options.server_pid);
      ok = false;
    } else if (growth >= options.max_rss_growth_percent) {
      std::fprintf(stderr, "coring-soak-client: server peak RSS grew by %.2f%% (limit %.2f%%)\n",
                   growth, options.max_rss_growth_percent);
      ok = false;
    }
  }
  std::printf(
      "soak: %s: connections %u opened, %u held to the end; %.1f s of load; messages %llu (%llu "
      "after warm-up); bytes verified %llu; errors %llu; server peak RSS warm-up %llu KiB, after "
      "%llu KiB, growth %.2f%%\n",
      ok ? "ok" : "FAILED", shared.opened, samples.open_at_end, samples.loaded_seconds,
      static_cast<unsigned long long>(shared.messages),
      static_cast<unsigned long long>(shared.messages - samples.messages_warm),
      static_cast<unsigned long long>(shared.bytes), static_cast<unsigned long long>(shared.errors),
      static_cast<unsigned long long>(samples.rss_warm_kib),
      static_cast<unsigned long long>(samples.rss_end_kib), growth);
  return ok ? 0 : 1;
}
