// docs/net.md, "Addresses" and "Datagrams": parsing and formatting addresses, a bad
// string reported as a value that names it, a UDP round trip with the sender's address,
// and resolve() running getaddrinfo off the loop.
#include <array>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>

#include <coring/net/resolve.hpp>
#include <coring/net/udp.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>

using coring::IoResult;
using coring::Task;
using coring::net::Address;
using coring::net::RecvFromResult;
using coring::net::UdpSocket;

Task<std::string> ping(UdpSocket& client, UdpSocket& server) {
  const Address to = *server.local_address();
  IoResult sent = co_await client.send_to(std::as_bytes(std::span("ping", 4)), to);
  if (!sent) co_return "send_to: " + sent.error().message();

  std::array<std::byte, 64> buffer{};
  RecvFromResult got = co_await server.recv_from(buffer);
  if (!got) co_return "recv_from: " + got.io.error().message();
  co_return std::string(reinterpret_cast<const char*>(buffer.data()), got.io.value()) + " from " +
      got.from.to_string();
}

int main() {
  for (const char* text : {"127.0.0.1:8080", "[::1]:443", "unix:/run/app.sock", "unix:@name",
                           "localhost:80", "10.0.0.1:99999"}) {
    auto parsed = Address::parse(text);
    if (parsed) {
      std::printf("%-20s -> %s\n", text, parsed->to_string().c_str());
    } else {
      std::printf("%-20s -> %s\n", text, parsed.message().c_str());
    }
  }

  coring::EventLoop loop;
  auto found = loop.run(coring::net::resolve("localhost", 8080, {.family = AF_INET}));
  if (found) std::printf("localhost:8080 resolves to %s\n", found->front().to_string().c_str());

  auto server = UdpSocket::bind(Address::ipv4_loopback());
  auto client = UdpSocket::bind(Address::ipv4_loopback());
  if (!server || !client) return 1;
  const std::string line = loop.run(ping(*client, *server));
  std::printf("%s\n", line.c_str());
  return line.rfind("ping from 127.0.0.1:", 0) == 0 ? 0 : 1;
}
