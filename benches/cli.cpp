#include "cli.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace coring::bench {
namespace {

bool is_help(std::string_view word) { return word == "--help" || word == "-h"; }

std::uint64_t parse_u64(std::string_view name, std::string_view text, std::uint64_t min,
                        std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
    throw UsageError(std::string(name) + " wants an integer in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "], not '" + std::string(text) + "'");
  }
  return value;
}

}  // namespace

Args::Args(std::span<char* const> words) {
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (is_help(word)) {
      options_.emplace_back("--help", "");
      continue;
    }
    if (!word.starts_with("--"))
      throw UsageError("unexpected argument '" + std::string(word) + "'");
    if (const auto eq = word.find('='); eq != std::string_view::npos) {
      options_.emplace_back(word.substr(0, eq), word.substr(eq + 1));
      continue;
    }
    // A flag: nothing follows, or another option does. take_u64() rejects its empty value.
    if (i + 1 == words.size() || std::string_view(words[i + 1]).starts_with("--")) {
      options_.emplace_back(word, "");
      continue;
    }
    options_.emplace_back(word, words[++i]);
  }
}

std::optional<std::string> Args::take(std::string_view name) {
  const auto it = std::find_if(options_.begin(), options_.end(),
                               [name](const auto& option) { return option.first == name; });
  if (it == options_.end()) return std::nullopt;
  std::string value = std::move(it->second);
  options_.erase(it);
  if (std::any_of(options_.begin(), options_.end(),
                  [name](const auto& option) { return option.first == name; })) {
    throw UsageError(std::string(name) + " given twice");
  }
  return value;
}

std::optional<std::uint64_t> Args::take_u64(std::string_view name, std::uint64_t min,
                                            std::uint64_t max) {
  auto text = take(name);
  if (!text) return std::nullopt;
  return parse_u64(name, *text, min, max);
}

std::optional<std::chrono::milliseconds> Args::take_seconds(std::string_view name,
                                                            std::chrono::milliseconds min,
                                                            std::chrono::milliseconds max) {
  auto text = take(name);
  if (!text) return std::nullopt;
  double seconds = 0;
  const char* end = text->data() + text->size();
  const auto [stop, ec] = std::from_chars(text->data(), end, seconds);
  const double ms = seconds * 1000.0;
  // The comparisons are false for NaN, so it is rejected too.
  if (ec != std::errc{} || stop != end ||
      !(ms >= static_cast<double>(min.count()) && ms <= static_cast<double>(max.count()))) {
    throw UsageError(std::string(name) + " wants seconds in [" + std::to_string(min.count()) +
                     " ms, " + std::to_string(max.count()) + " ms], not '" + *text + "'");
  }
  return std::chrono::milliseconds(std::llround(ms));
}

std::optional<std::string> Args::take_string(std::string_view name) {
  auto text = take(name);
  if (text && text->empty()) throw UsageError(std::string(name) + " wants a value");
  return text;
}

bool Args::take_flag(std::string_view name) {
  auto text = take(name);
  if (text && !text->empty()) throw UsageError(std::string(name) + " takes no value");
  return text.has_value();
}

std::optional<std::vector<std::uint64_t>> Args::take_u64_list(std::string_view name,
                                                              std::uint64_t min,
                                                              std::uint64_t max) {
  auto text = take(name);
  if (!text) return std::nullopt;
  std::vector<std::uint64_t> values;
  std::string_view rest = *text;
  for (;;) {
    const auto comma = rest.find(',');
    values.push_back(parse_u64(name, rest.substr(0, comma), min, max));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return values;
}

bool Args::take_help() {
  const auto it = std::find_if(options_.begin(), options_.end(),
                               [](const auto& option) { return is_help(option.first); });
  if (it == options_.end()) return false;
  options_.erase(it);
  return true;
}

void Args::finish() const {
  if (!options_.empty()) throw UsageError("unknown option " + options_.front().first);
}

}  // namespace coring::bench
