// What the example servers coring-echo and coring-http share besides the
// library's server frame (coring/net/server.hpp): their command line, and the rest of a
// short send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <coring/net/address.hpp>
#include <coring/net/server.hpp>
#include <coring/net/stream.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

using net::Connection;
using net::ConnectionHandler;
using net::default_receive_pool;
using net::Server;
using net::ServerOptions;

// After a send of `data` that moved put.res bytes: sends the rest, if any. Returns false
// if the connection failed. A coroutine of its own — a frame allocated — that handlers
// call only on the rare short send, so that the common path allocates nothing.
Task<bool> send_rest(const net::TcpStream& stream, std::span<const std::byte> data, IoResult put);

// Parses a server's command line: --port P (required), --host H (127.0.0.1), --threads N
// (1), the extra integer options the server names, and its text options (a file name,
// say; empty when not given). Prints the usage and exits with status 2 on bad input, 0 on
// --help.
struct CommandLine {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t threads = 1;
  std::vector<std::uint64_t> extra;  // the values of `extra_options`, in their order
  std::vector<std::string> text;     // the values of `text_options`, in their order
};
struct ExtraOption {
  const char* name;  // "--idle-timeout-ms"
  std::uint64_t min;
  std::uint64_t max;
  std::uint64_t default_value;
};
CommandLine parse_command_line(int argc, char** argv, const char* usage,
                               const std::vector<ExtraOption>& extra_options = {},
                               const std::vector<const char*>& text_options = {});

// "host:port" for net::Address::parse, with brackets around an IPv6 host.
net::Address resolve(const std::string& host, std::uint16_t port);

}  // namespace coring::examples
