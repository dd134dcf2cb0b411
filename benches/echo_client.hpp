// The load client of `coring-bench echo`: C connections, one message of S bytes in flight
// on each, every byte of every reply checked.
//
// It runs on coring's bare Ring (no coroutines): per message one send and one recv SQE,
// all connections' SQEs leaving in one io_uring_enter(2) per turn, so that the client
// costs less CPU per message than any of the servers it loads and is not what limits
// the rate. The server is on another CPU.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace coring::bench {

struct EchoLoad {
  std::uint32_t conns = 50;
  std::uint32_t size = 64;
};

class EchoClient {
 public:
  // Connects `load.conns` sockets to 127.0.0.1:port (TCP_NODELAY) and starts a message
  // on each. Throws std::system_error if a connection fails.
  EchoClient(std::uint16_t port, EchoLoad load);
  ~EchoClient();
  EchoClient(const EchoClient&) = delete;
  EchoClient& operator=(const EchoClient&) = delete;

  // Drives the load until `deadline`; returns the messages whose reply came back whole
  // meanwhile. Messages in flight at the deadline stay in flight for the next call.
  // Throws std::runtime_error if a reply differs from its message by one byte, or a
  // connection is closed or fails.
  std::uint64_t run_until(std::chrono::steady_clock::time_point deadline);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace coring::bench
