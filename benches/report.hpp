// What `coring-bench all` leaves behind besides its table: the results as JSON, and a
// chart of CPU per operation drawn by gnuplot.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "suite.hpp"

namespace coring::bench {

struct ReportInfo {
  std::chrono::milliseconds wall{0};  // of the whole suite
  std::string chart;                  // the chart's path, or "" if there is none
  std::string chart_note;             // why there is none
};

// Writes the options, the machine (kernel, CPUs, compiler, commit), and every
// benchmark's metrics, per-run values, medians, ratios and skipped sides as JSON to
// `path`. Throws std::runtime_error if the file cannot be written.
void write_json(const std::string& path, const SuiteOptions& options,
                const std::vector<BenchResult>& results, const ReportInfo& info);

// Draws a grouped bar chart of each side's median CPU per operation, relative to
// coring's in the same benchmark, into the PNG `path` with gnuplot. Returns "" when
// it did, or why it did not (gnuplot is not installed, or it failed); never throws
// for that, since the chart is an extra.
std::string draw_chart(const std::string& path, const std::vector<BenchResult>& results,
                       std::uint64_t reps);

}  // namespace coring::bench
