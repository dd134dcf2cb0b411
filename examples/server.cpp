// What the example servers share: the command line and the rest of a short send.
#include "server.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace coring::examples {

Task<bool> send_rest(const net::TcpStream& stream, std::span<const std::byte> data, IoResult put) {
  if (put.res < 0) co_return false;
  if (put.value() == data.size()) co_return true;
  const net::TransferResult rest = co_await stream.send_all(data.subspan(put.value()));
  co_return rest.ok();
}

// --- Command line ------------------------------------------------------------------------

namespace {

[[noreturn]] void usage_error(const char* usage, const std::string& what) {
  std::fprintf(stderr, "%s\n%s", what.c_str(), usage);
  std::exit(2);
}

std::uint64_t parse_number(const char* usage, std::string_view name, std::string_view text,
                           std::uint64_t min, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
    usage_error(usage, std::string(name) + " wants an integer in [" + std::to_string(min) + ", " +
                           std::to_string(max) + "], not '" + std::string(text) + "'");
  }
  return value;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv, const char* usage,
                               const std::vector<ExtraOption>& extra_options,
                               const std::vector<const char*>& text_options) {
  CommandLine line;
  line.text.resize(text_options.size());
  line.extra.resize(extra_options.size());
  for (std::size_t i = 0; i < extra_options.size(); ++i) {
    line.extra[i] = extra_options[i].default_value;
  }
  bool have_port = false;
  const std::span<char* const> words(argv + 1, static_cast<std::size_t>(std::max(argc - 1, 0)));
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (word == "--help" || word == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 == words.size()) usage_error(usage, std::string(word) + " wants a value");
    const std::string_view value = words[++i];
    if (word == "--port") {
      line.port = static_cast<std::uint16_t>(parse_number(usage, word, value, 0, 65535));
      have_port = true;
    } else if (word == "--host") {
      line.host = value;
    } else if (word == "--threads") {
      line.threads = parse_number(usage, word, value, 1, 1024);
    } else if (const auto text = std::find_if(text_options.begin(), text_options.end(),
                                              [word](const char* name) { return word == name; });
               text != text_options.end()) {
      if (value.empty()) usage_error(usage, std::string(word) + " wants a non-empty value");
      line.text[static_cast<std::size_t>(text - text_options.begin())] = value;
    } else {
      const auto extra =
          std::find_if(extra_options.begin(), extra_options.end(),
                       [word](const ExtraOption& option) { return word == option.name; });
      if (extra == extra_options.end()) {
        usage_error(usage, "unknown option '" + std::string(word) + "'");
      }
      line.extra[static_cast<std::size_t>(extra - extra_options.begin())] =
          parse_number(usage, word, value, extra->min, extra->max);
    }
  }
  if (!have_port) usage_error(usage, "--port is required");
  return line;
}

net::Address resolve(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  const std::string text = (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  auto address = net::Address::parse(text);
  if (!address) {
    std::fprintf(stderr, "--host: %s\n", address.message().c_str());
    std::exit(2);
  }
  return *address;
}

}  // namespace coring::examples
