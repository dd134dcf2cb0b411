// Command-line options of a coring-bench subcommand.
//
// Options are `--name value` or `--name=value`; a flag is `--name` alone (followed by
// another option or by nothing). A subcommand takes the ones it knows
// (take_*), then calls finish(), which rejects whatever is left, so a misspelt option
// fails before a long run instead of being ignored. Bad input throws UsageError.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coring::bench {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // Parses argv[0..] (the words after the subcommand's name).
  explicit Args(std::span<char* const> words);

  // Removes and returns `--name`'s value if present; throws UsageError if the value is
  // not an integer in [min, max].
  std::optional<std::uint64_t> take_u64(std::string_view name, std::uint64_t min,
                                        std::uint64_t max);
  // Like take_u64(), for a comma-separated list such as 1,8,32,128.
  std::optional<std::vector<std::uint64_t>> take_u64_list(std::string_view name, std::uint64_t min,
                                                          std::uint64_t max);
  // Removes `--name`'s value if present, a number of seconds such as 2 or 0.25, in
  // milliseconds; throws UsageError if it is not a number in [min, max].
  std::optional<std::chrono::milliseconds> take_seconds(std::string_view name,
                                                        std::chrono::milliseconds min,
                                                        std::chrono::milliseconds max);
  // Removes `--name`'s value if present, as it was given.
  std::optional<std::string> take_string(std::string_view name);
  // Removes `--name` if present, a flag given without a value.
  bool take_flag(std::string_view name);
  // Removes `--help` or `-h` if present.
  bool take_help();
  // Throws UsageError naming the first option no take_* call consumed.
  void finish() const;

 private:
  std::optional<std::string> take(std::string_view name);

  std::vector<std::pair<std::string, std::string>> options_;  // {"--name", value}
};

}  // namespace coring::bench
