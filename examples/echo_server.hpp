// coring-echo's connection handler: every byte received is sent back.
#pragma once

#include "server.hpp"
#include <coring/net/stream.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

// The Server handler: echoes until the peer closes (or the server shuts the connection).
// With a receive pool (Connection::receive_pool()) it receives with one multishot
// receive into the pool, else with one recv per message into its own buffer.
Task<void> serve_echo(net::TcpStream stream, Connection& conn);

// The receive pool coring-echo gives each loop: 512 buffers of 4 KiB, a whole buffer per
// receive. (Incremental consumption, where small messages share a buffer, is off: with
// several connections on one pool it handed a piece to the wrong connection, see
// NOTES-net-apps.md.)
inline net::BufferPoolOptions echo_receive_pool() {
  net::BufferPoolOptions options;
  options.buffer_size = 4096;
  options.count = 512;
  options.incremental = false;
  return options;
}

}  // namespace coring::examples
