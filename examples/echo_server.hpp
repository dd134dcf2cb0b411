// coring-echo's connection handler: every byte received is sent back.
#pragma once

#include "server.hpp"
#include <coring/net/stream.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

// The Server handler: echoes until the peer closes (or the server shuts the connection).
Task<void> serve_echo(net::TcpStream stream, Connection& conn);

}  // namespace coring::examples
