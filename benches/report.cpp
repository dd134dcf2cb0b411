// The JSON results of `coring-bench all` and its chart.
//
// The JSON is written by hand (a few dozen lines do it; the project takes no JSON
// library for it): one object with "machine", "options", and "benchmarks", each
// benchmark with its metrics and sides, each side with its per-run values and medians,
// peers with coring's ratio to them (null for a metric where it means nothing: idle's
// bytes per connection), skipped sides with why and the apt-get line that adds them.
// "options" says the backend coring's side ran on ("backend": "io_uring" or "epoll",
// and "backend_note", what chose it), each benchmark the one its coring side ran on
// (its own "backend": "epoll" for echo-epoll-backend and http-epoll-backend).
// The chart is gnuplot's: its script and data go to gnuplot's standard input, so
// nothing but the PNG is left on disk.
#include "report.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "child_process.hpp"

namespace coring::bench {
namespace {

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof(escape), "\\u%04x", static_cast<unsigned>(c));
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A JSON number; JSON has no NaN or infinity, so those are null.
std::string number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

// The first line of `command`'s output, or "" if it fails.
std::string first_line_of(const std::string& command) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  char line[256] = {};
  const bool got = std::fgets(line, sizeof(line), pipe) != nullptr;
  const int status = ::pclose(pipe);
  if (!got || status != 0) return {};
  std::string text = line;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.starts_with("model name")) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

// The commit of the source tree coring-bench was built from, as it is now ("-dirty"
// with uncommitted changes), or "unknown" when that tree is gone or is no git checkout.
std::string commit() {
  const std::string git = "git -C '" CORING_BENCH_SOURCE_DIR "' ";
  const std::string head = first_line_of(git + "rev-parse HEAD 2>/dev/null");
  if (head.empty()) return "unknown";
  const std::string dirty =
      first_line_of(git + "status --porcelain --untracked-files=no 2>/dev/null");
  return dirty.empty() ? head : head + "-dirty";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

void write_machine(std::ostream& out) {
  utsname names{};
  ::uname(&names);
  out << "  \"machine\": {\n"
      << "    \"kernel\": " << quoted(std::string(names.sysname) + " " + names.release) << ",\n"
      << "    \"arch\": " << quoted(names.machine) << ",\n"
      << "    \"cpus\": " << ::sysconf(_SC_NPROCESSORS_ONLN) << ",\n"
      << "    \"cpu_model\": " << quoted(cpu_model()) << ",\n"
      << "    \"compiler\": " << quoted(compiler()) << ",\n"
      << "    \"build_type\": " << quoted(CORING_BENCH_BUILD_TYPE) << ",\n"
      << "    \"commit\": " << quoted(commit()) << ",\n"
      << "    \"date\": " << quoted(utc_now()) << "\n"
      << "  },\n";
}

void write_options(std::ostream& out, const SuiteOptions& options) {
  out << "  \"options\": {\n"
      << "    \"reps\": " << options.reps << ",\n"
      << "    \"measured_s\": " << number(static_cast<double>(options.measured.count()) / 1e3)
      << ",\n"
      << "    \"warmup_s\": " << number(static_cast<double>(options.warmup.count()) / 1e3) << ",\n"
      << "    \"nop_ops\": " << options.nop_ops << ",\n"
      << "    \"idle_conns\": " << options.idle_conns << ",\n"
      << "    \"server_cpu\": " << options.server_cpu << ",\n"
      << "    \"client_cpu\": " << options.client_cpu << ",\n"
      << "    \"backend\": " << quoted(options.backend) << ",\n"
      << "    \"backend_note\": " << quoted(options.backend_note) << "\n"
      << "  },\n";
}

// {"name": [v1, v2, ...], ...} over the metrics, for values or medians.
template <typename Value>
void write_per_metric(std::ostream& out, const BenchResult& result, Value value) {
  out << "{";
  for (std::size_t m = 0; m < result.metrics.size(); ++m) {
    out << (m == 0 ? "" : ", ") << quoted(result.metrics[m].name) << ": " << value(m);
  }
  out << "}";
}

void write_side(std::ostream& out, const BenchResult& result, const Side& side, bool is_coring) {
  out << "        {\"name\": " << quoted(side.name)
      << ", \"coring\": " << (is_coring ? "true" : "false");
  if (!side.ran()) {
    out << ", \"skipped\": true, \"reason\": " << quoted(side.skipped)
        << ", \"install\": " << quoted(side.install) << "}";
    return;
  }
  out << ", \"skipped\": false,\n         \"values\": ";
  write_per_metric(out, result, [&side](std::size_t m) {
    std::string list = "[";
    for (std::size_t i = 0; i < side.values[m].size(); ++i) {
      list += (i == 0 ? "" : ", ") + number(side.values[m][i]);
    }
    return list + "]";
  });
  out << ",\n         \"median\": ";
  write_per_metric(out, result, [&side](std::size_t m) { return number(side.median_of(m)); });
  const Side& coring = result.sides.front();
  if (!is_coring && coring.ran()) {
    out << ",\n         \"ratio_coring_to_this\": ";
    write_per_metric(out, result, [&](std::size_t m) {
      return result.metrics[m].ratio ? number(coring.median_of(m) / side.median_of(m))
                                     : std::string("null");
    });
  }
  out << "}";
}

void write_benchmark(std::ostream& out, const BenchResult& result) {
  out << "    {\n      \"name\": " << quoted(result.name)
      << ",\n      \"params\": " << quoted(result.params)
      << ",\n      \"backend\": " << quoted(result.backend)
      << ",\n      \"error\": " << (result.error.empty() ? "null" : quoted(result.error))
      << ",\n      \"metrics\": [";
  for (std::size_t m = 0; m < result.metrics.size(); ++m) {
    const Metric& metric = result.metrics[m];
    out << (m == 0 ? "" : ", ") << "{\"name\": " << quoted(metric.name)
        << ", \"unit\": " << quoted(metric.unit)
        << ", \"lower_is_better\": " << (metric.lower_is_better ? "true" : "false") << "}";
  }
  out << "],\n      \"sides\": [\n";
  for (std::size_t i = 0; i < result.sides.size(); ++i) {
    write_side(out, result, result.sides[i], i == 0);
    out << (i + 1 < result.sides.size() ? ",\n" : "\n");
  }
  out << "      ]\n    }";
}

// A gnuplot string: in double quotes, where \n is a new line.
std::string gnuplot_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out + "\"";
}

// Bar colours by side, so that a peer has the same colour in every group.
std::string colour_of(std::string_view side) {
  constexpr std::pair<std::string_view, std::string_view> colours[] = {
      {"coring", "0x1f4e79"}, {"coring-ring", "0x5b9bd5"}, {"liburing", "0xed7d31"},
      {"epoll", "0x70ad47"},  {"asio-epoll", "0xffc000"},  {"asio-uring", "0x9e480e"},
      {"nginx", "0x7030a0"},  {"fio", "0xc00000"}};
  for (const auto& [name, colour] : colours) {
    if (name == side) return std::string(colour);
  }
  return "0x808080";
}

std::string ratio_text(double ratio) {
  char text[16];
  std::snprintf(text, sizeof(text), "%.2f", ratio);
  return text;
}

// The chart's word on the backend coring ran on: "coring on io_uring (on epoll in the
// -epoll-backend groups)".
std::string backend_note(const std::vector<BenchResult>& results) {
  std::string main;
  bool epoll_rows = false;
  for (const BenchResult& result : results) {
    if (result.name.ends_with("-epoll-backend")) {
      epoll_rows = true;
    } else if (main.empty()) {
      main = result.backend;
    }
  }
  if (main.empty()) return {};
  return "; coring on " + main + (epoll_rows ? " (on epoll in the -epoll-backend groups)" : "");
}

// gnuplot's script and data: a bar per side, groups per benchmark separated by a gap,
// heights relative to coring's median CPU per operation in that benchmark.
std::string chart_script(const std::string& path, const std::vector<BenchResult>& results,
                         std::uint64_t reps) {
  std::ostringstream bars;
  std::ostringstream notes;  // labels: groups, coring's absolute figure, skipped sides
  double x = 0;
  for (const BenchResult& result : results) {
    if (!result.error.empty() || result.sides.empty() || !result.sides.front().ran()) continue;
    if (!result.metrics[0].ratio) continue;  // no CPU figure to set beside coring's (idle)
    const double coring = result.sides.front().median_of(0);
    const double first = x;
    for (const Side& side : result.sides) {
      const double value = side.ran() ? side.median_of(0) / coring : 0.0;
      bars << x << ' ' << value << ' ' << colour_of(side.name) << ' ' << gnuplot_string(side.name)
           << ' ' << gnuplot_string(side.ran() ? ratio_text(value) : "skipped") << '\n';
      x += 1;
    }
    notes << "set label "
          << gnuplot_string(result.name + "\n" + result.params +
                            "\ncoring: " + format_figure(coring, result.metrics[0].unit) + "/op")
          << " at " << (first + x - 1) / 2 << ", graph 0.97 center front\n";
    notes << "set arrow from " << x << ", graph 0 to " << x
          << ", graph 1 nohead dt 3 lc rgb '#999999'\n";
    x += 1;  // the gap between groups
  }
  std::ostringstream script;
  script << "set terminal pngcairo size 1400,760 font 'sans,10'\n"
         << "set output " << gnuplot_string(path) << "\n"
         << "set title "
         << gnuplot_string(
                "coring-bench all: CPU per operation relative to coring "
                "(coring = 1, lower is cheaper); medians of " +
                std::to_string(reps) + " interleaved runs" + backend_note(results))
         << " noenhanced\n"
         << "set ylabel 'CPU per operation / coring CPU per operation'\n"
         << "set yrange [0:*]\nset offsets 0, 0, graph 0.22, 0\nset xrange [-1:" << x - 1 << "]\n"
         << "set grid ytics\nset style fill solid 0.85 border -1\nset boxwidth 0.8\n"
         << "set xtics rotate by 35 right nomirror\nset key off\n"
         << "set arrow from -1, 1 to " << x - 1 << ", 1 nohead dt 2 lc rgb '#1f4e79'\n"
         << notes.str() << "$bars << EOD\n"
         << bars.str() << "EOD\n"
         << "plot $bars using 1:2:3:xtic(4) with boxes lc rgb variable, "
            "$bars using 1:2:5 with labels offset 0, 0.8\n";
  return script.str();
}

}  // namespace

void write_json(const std::string& path, const SuiteOptions& options,
                const std::vector<BenchResult>& results, const ReportInfo& info) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << "{\n  \"schema\": \"coring-bench-all/1\",\n";
  write_machine(out);
  write_options(out, options);
  out << "  \"wall_s\": " << number(static_cast<double>(info.wall.count()) / 1e3) << ",\n"
      << "  \"chart\": " << (info.chart.empty() ? "null" : quoted(info.chart)) << ",\n"
      << "  \"chart_note\": " << quoted(info.chart_note) << ",\n"
      << "  \"benchmarks\": [\n";
  for (std::size_t i = 0; i < results.size(); ++i) {
    write_benchmark(out, results[i]);
    out << (i + 1 < results.size() ? ",\n" : "\n");
  }
  out << "  ]\n}\n";
  out.flush();
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string draw_chart(const std::string& path, const std::vector<BenchResult>& results,
                       std::uint64_t reps) {
  const std::string gnuplot = find_program("gnuplot");
  if (gnuplot.empty()) return "gnuplot is not installed (apt-get install -y gnuplot-nox)";
  // gnuplot's messages go to our standard error, not into the table on standard output.
  const std::string command = "'" + gnuplot + "' 1>&2";
  std::FILE* pipe = ::popen(command.c_str(), "w");
  if (pipe == nullptr) return "cannot run gnuplot";
  const std::string script = chart_script(path, results, reps);
  const bool written = std::fwrite(script.data(), 1, script.size(), pipe) == script.size();
  const int status = ::pclose(pipe);
  if (!written || status != 0) return "gnuplot failed (exit status " + std::to_string(status) + ")";
  return {};
}

}  // namespace coring::bench
