// docs/http.md, "Serving": an HTTP/1.1 server with a router, a body read by its handler
// and a streamed answer.
//
//   docs-http_server [ADDRESS]    serves ADDRESS (127.0.0.1:8080) until SIGINT or SIGTERM
//   docs-http_server --self-test  serves on a free port, asks itself with http::Client
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include <coring/http/client.hpp>
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/runtime/event_loop.hpp>

using namespace coring;
using namespace std::chrono_literals;

http::Router make_router() {
  http::Router router;
  router.get("/", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "Hello, World!");
  });
  // Reads the body (up to 64 KiB: more is a 413) and says how long it was.
  router.post("/echo", [](http::Request& request) -> Task<http::Response> {
    Result<std::string> body = co_await request.body().read_all(64 * 1024);
    if (!body) co_return http::Response::text(413, body.message());
    co_return http::Response::text(200, std::to_string(body->size()) + " bytes\n");
  });
  // A body written piece by piece: chunked, since no Content-Length is set.
  router.get("/count", [](http::Request&) -> Task<http::Response> {
    http::Response response(200);
    response.stream = [](http::BodyWriter& out) -> Task<Result<void>> {
      for (int i = 1; i <= 3; ++i) {
        Result<void> sent = co_await out.write(std::to_string(i) + "\n");
        if (!sent) co_return sent;  // the client went away
      }
      co_return Result<void>();
    };
    co_return response;
  });
  return router;
}

// --self-test: three requests on one kept connection.
Task<bool> ask(std::uint16_t port) {
  http::Client client;
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  Result<http::ClientResponse> hello = co_await client.get(base + "/");
  Result<http::ClientResponse> echo = co_await client.post(base + "/echo", "four", "text/plain");
  Result<http::ClientResponse> count = co_await client.get(base + "/count");
  const bool ok = hello && hello->body == "Hello, World!" && echo && echo->body == "4 bytes\n" &&
                  count && count->body == "1\n2\n3\n" && client.idle_connections() == 1;
  co_return ok;
}

int main(int argc, char** argv) {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:8080";
  const bool self_test = arg == "--self-test";
  auto address = net::Address::parse(self_test ? "127.0.0.1:0" : arg);
  if (!address) {
    std::fprintf(stderr, "%s\n", address.message().c_str());
    return 2;
  }
  http::ServerOptions options;
  options.address = *address;
  options.handle_signals = !self_test;
  http::Server server(options, make_router());
  if (!self_test) {
    return server.run([&] { std::printf("serving on port %u\n", server.port()); });
  }
  std::thread serving([&] { server.run(); });
  EventLoop loop;
  const bool ok = loop.run(ask(server.port()));
  server.stop();
  serving.join();
  std::printf("self-test: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
