// Headers: the header fields of one HTTP/1.1 message, in the order they came or were
// added, with lookups that ignore the case of names (RFC 9110, section 5.1).
//
//   http::Headers headers;
//   headers.add("Content-Type", "text/plain");
//   std::optional<std::string_view> type = headers.get("content-type");  // "text/plain"
//   for (const http::Field& field : headers) use(field.name, field.value);
//
// One string holds every name and value, and a vector where each field lies in it, so a
// message's fields cost two allocations however many there are, and none once a
// connection's first message has grown them (clear() keeps the capacity). Views returned
// by get() and the iterators stay valid until the next add() or clear().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coring::http {

// Whether two names are equal ignoring ASCII case.
[[nodiscard]] bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept;

struct Field {
  std::string_view name;
  std::string_view value;
};

class Headers {
  struct Entry {
    std::uint32_t name_at;
    std::uint32_t name_size;
    std::uint32_t value_at;
    std::uint32_t value_size;
  };

 public:
  class Iterator {
   public:
    using value_type = Field;
    using difference_type = std::ptrdiff_t;
    Iterator() noexcept = default;
    Iterator(const Headers* headers, std::size_t index) noexcept
        : headers_(headers), index_(index) {}
    Field operator*() const noexcept { return headers_->at(index_); }
    Iterator& operator++() noexcept {
      ++index_;
      return *this;
    }
    Iterator operator++(int) noexcept {
      Iterator before = *this;
      ++index_;
      return before;
    }
    bool operator==(const Iterator& other) const noexcept { return index_ == other.index_; }

   private:
    const Headers* headers_ = nullptr;
    std::size_t index_ = 0;
  };

  Headers() = default;

  // Appends a field. The name must be a token and the value free of CR, LF and NUL
  // (an assert: what is sent must not split into other fields).
  void add(std::string_view name, std::string_view value);
  // Replaces every field named `name` by one with `value` (appended if there was none).
  void set(std::string_view name, std::string_view value);
  // Removes every field named `name`; returns how many there were.
  std::size_t remove(std::string_view name) noexcept;
  void clear() noexcept {
    text_.clear();
    entries_.clear();
  }
  // Empties the fields and frees their storage (clear() keeps it for the next message).
  void release() noexcept {
    std::string().swap(text_);
    std::vector<Entry>().swap(entries_);
  }
  // The bytes of storage held, used or not (an empty string's inline room included).
  [[nodiscard]] std::size_t storage_bytes() const noexcept {
    return text_.capacity() + entries_.capacity() * sizeof(Entry);
  }

  // The value of the first field named `name`, if any.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const noexcept;
  [[nodiscard]] bool contains(std::string_view name) const noexcept {
    return get(name).has_value();
  }
  // How many fields are named `name`.
  [[nodiscard]] std::size_t count(std::string_view name) const noexcept;
  // Whether the comma-separated list of every field named `name` holds `token`, ignoring
  // case (`Connection: keep-alive, Upgrade` has "upgrade").
  [[nodiscard]] bool has_token(std::string_view name, std::string_view token) const noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] Field at(std::size_t index) const noexcept;
  [[nodiscard]] Iterator begin() const noexcept { return {this, 0}; }
  [[nodiscard]] Iterator end() const noexcept { return {this, entries_.size()}; }

  // The bytes of the fields, each as `name: value\r\n`, appended to `out`.
  void serialize(std::string& out) const;

 private:
  friend class MessageParser;
  // The parser's incremental interface: a field's name and value arrive in pieces.
  void begin_field();
  void append_name(std::string_view piece);
  void append_value(std::string_view piece);
  // Strips the optional whitespace at both ends of the value being appended.
  void end_value() noexcept;
  [[nodiscard]] std::string_view last_name() const noexcept;

  std::string text_;
  std::vector<Entry> entries_;
};

}  // namespace coring::http
