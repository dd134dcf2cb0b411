// coring-echo's connection handler: every byte received is sent back.
#pragma once

#include "server.hpp"
#include <coring/net/stream.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

// The Server handler: echoes until the peer closes (or the server shuts the connection).
// With a receive pool (Connection::receive_pool()) it receives with one multishot
// receive into the pool, else with one recv per message into its own buffer.
Task<void> serve_echo(const net::TcpStream& stream, Connection& conn);

}  // namespace coring::examples
