// docs/http.md, "Static files": a site served from a directory, with a route of its own.
//
//   docs-http_static DIR [ADDRESS]  serves DIR on ADDRESS (127.0.0.1:8080) until SIGINT
//   docs-http_static --self-test    serves a temporary directory and fetches from it
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

#include <coring/http/client.hpp>
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/http/static_files.hpp>
#include <coring/runtime/event_loop.hpp>

using namespace coring;

http::Router make_router(const std::filesystem::path& root) {
  http::Router router;
  router.get("/health", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "ok\n");
  });
  // Everything else is a file below root: /about.html is root/about.html, / is
  // root/index.html; a path out of root, or to something not a regular file, is a 404.
  router.prefix("GET", "/", http::StaticFiles(root, {.max_age = 60}));
  return router;
}

// --self-test: the index, a range of a page, and a conditional GET.
Task<bool> fetch(std::uint16_t port) {
  http::Client client;
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  Result<http::ClientResponse> index = co_await client.get(base + "/");
  if (!index || index->status != 200 || index->body != "<h1>home</h1>\n") co_return false;
  http::ClientRequest part("GET", base + "/index.html");
  part.headers.add("Range", "bytes=1-2");
  Result<http::ClientResponse> range = co_await client.request(std::move(part));
  if (!range || range->status != 206 || range->body != "h1") co_return false;
  http::ClientRequest again("GET", base + "/index.html");
  again.headers.add("If-Modified-Since", *index->headers.get("last-modified"));
  Result<http::ClientResponse> same = co_await client.request(std::move(again));
  if (!same || same->status != 304) co_return false;
  Result<http::ClientResponse> out = co_await client.get(base + "/../etc/passwd");
  co_return out && out->status == 404;
}

int main(int argc, char** argv) {
  const std::string_view first = argc > 1 ? argv[1] : "";
  const bool self_test = first == "--self-test";
  std::filesystem::path root = first;
  if (self_test) {
    char dir[] = "/tmp/docs-http-static.XXXXXX";
    if (::mkdtemp(dir) == nullptr) return 1;
    root = dir;
    std::ofstream(root / "index.html") << "<h1>home</h1>\n";
  } else if (root.empty()) {
    std::fprintf(stderr, "usage: docs-http_static DIR [ADDRESS] | --self-test\n");
    return 2;
  }
  auto address = net::Address::parse(self_test  ? "127.0.0.1:0"
                                     : argc > 2 ? argv[2]
                                                : "127.0.0.1:8080");
  if (!address) {
    std::fprintf(stderr, "%s\n", address.message().c_str());
    return 2;
  }
  http::ServerOptions options;
  options.address = *address;
  options.handle_signals = !self_test;
  http::Server server(options, make_router(root));  // throws if root is not a directory
  if (!self_test) return server.run();
  std::thread serving([&] { server.run(); });
  EventLoop loop;
  const bool ok = loop.run(fetch(server.port()));
  server.stop();
  serving.join();
  std::filesystem::remove_all(root);
  std::printf("self-test: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
