// docs/http.md, "Client": GET and POST with http::Client, errors as values.
//
//   docs-http_client URL           GETs URL and prints the status and the body's size
//   docs-http_client --self-test   runs a small server and talks to it
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

Task<int> get(std::string url) {
  http::Client client({.request_timeout = 5s});
  Result<http::ClientResponse> response = co_await client.get(std::move(url));
  if (!response) {
    std::fprintf(stderr, "%s\n", response.message().c_str());  // timed out, refused, ...
    co_return 1;
  }
  std::printf("%d %s, %zu bytes\n", response->status, response->reason.c_str(),
              response->body.size());
  co_return 0;
}

// --self-test: a GET, a POST with a JSON body, a chunked PUT, and a refused connection.
Task<bool> exchange(std::uint16_t port) {
  http::Client client({.request_timeout = 5s});
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  Result<http::ClientResponse> page = co_await client.get(base + "/items");
  Result<http::ClientResponse> created =
      co_await client.post(base + "/items", "{\"n\": 1}", "application/json");
  http::ClientRequest put("PUT", base + "/items", "{\"n\": 7}");
  put.headers.add("Content-Type", "application/json");
  put.chunked = true;
  Result<http::ClientResponse> replaced = co_await client.request(std::move(put));
  Result<http::ClientResponse> refused = co_await client.get("http://127.0.0.1:1/");
  co_return page && page->body == "GET" && created && created->body == "POST {\"n\": 1}" &&
      replaced && replaced->body == "PUT {\"n\": 7}" && !refused &&
      refused.error() == std::errc::connection_refused;
}

int main(int argc, char** argv) {
  const std::string_view arg = argc > 1 ? argv[1] : "";
  EventLoop loop;
  if (arg != "--self-test") {
    if (arg.empty()) {
      std::fprintf(stderr, "usage: docs-http_client URL | --self-test\n");
      return 2;
    }
    return loop.run(get(std::string(arg)));
  }
  http::ServerOptions options;
  options.handle_signals = false;
  // Answers with the method and the body it got.
  http::Server server(options, http::Handler([](http::Request& request) -> Task<http::Response> {
                        Result<std::string> body = co_await request.body().read_all(4096);
                        std::string text(request.method_name());
                        if (body && !body->empty()) text += " " + *body;
                        co_return http::Response::text(200, std::move(text));
                      }));
  std::thread serving([&] { server.run(); });
  const bool ok = loop.run(exchange(server.port()));
  server.stop();
  serving.join();
  std::printf("self-test: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
