// Headers: one string of names and values, and where each field lies in it.
#include "coring/http/headers.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

namespace coring::http {
namespace {

constexpr char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::uint32_t narrow(std::size_t value) {
  // Headers are bounded by the parser's limits long before this; a message built by a
  // program with more than 4 GiB of fields is a bug.
  assert(value <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(value);
}

}  // namespace

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

void Headers::add(std::string_view name, std::string_view value) {
  assert(!name.empty() && name.find_first_of(" \t\r\n:") == std::string_view::npos);
  assert(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
  entries_.push_back({narrow(text_.size()), narrow(name.size()), 0, 0});
  text_.append(name);
  entries_.back().value_at = narrow(text_.size());
  entries_.back().value_size = narrow(value.size());
  text_.append(value);
}

void Headers::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

std::size_t Headers::remove(std::string_view name) noexcept {
  const std::size_t before = entries_.size();
  std::erase_if(entries_, [&](const Entry& entry) {
    return equal_ignoring_case({text_.data() + entry.name_at, entry.name_size}, name);
  });
  return before - entries_.size();
}

Field Headers::at(std::size_t index) const noexcept {
  assert(index < entries_.size());
  const Entry& entry = entries_[index];
  return {{text_.data() + entry.name_at, entry.name_size},
          {text_.data() + entry.value_at, entry.value_size}};
}

std::optional<std::string_view> Headers::get(std::string_view name) const noexcept {
  for (const Field field : *this) {
    if (equal_ignoring_case(field.name, name)) return field.value;
  }
  return std::nullopt;
}

std::size_t Headers::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (const Field field : *this) n += equal_ignoring_case(field.name, name) ? 1 : 0;
  return n;
}

bool Headers::has_token(std::string_view name, std::string_view token) const noexcept {
  for (const Field field : *this) {
    if (!equal_ignoring_case(field.name, name)) continue;
    std::string_view rest = field.value;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      if (equal_ignoring_case(trim(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

void Headers::serialize(std::string& out) const {
  for (const Field field : *this) {
    out.append(field.name);
    out.append(": ");
    out.append(field.value);
    out.append("\r\n");
  }
}

void Headers::begin_field() {
  entries_.push_back({narrow(text_.size()), 0, narrow(text_.size()), 0});
}

void Headers::append_name(std::string_view piece) {
  assert(!entries_.empty());
  text_.append(piece);
  entries_.back().name_size += narrow(piece.size());
  entries_.back().value_at = narrow(text_.size());
}

void Headers::append_value(std::string_view piece) {
  assert(!entries_.empty());
  text_.append(piece);
  entries_.back().value_size += narrow(piece.size());
}

void Headers::end_value() noexcept {
  Entry& entry = entries_.back();
  const std::string_view value = trim({text_.data() + entry.value_at, entry.value_size});
  entry.value_at = narrow(static_cast<std::size_t>(value.data() - text_.data()));
  entry.value_size = narrow(value.size());
}

std::string_view Headers::last_name() const noexcept {
  if (entries_.empty()) return {};
  return {text_.data() + entries_.back().name_at, entries_.back().name_size};
}

}  // namespace coring::http
