// http::Server against real clients: curl, python's http.client, ab, h2load and wrk, each
// run as a child process against a server in this process. Downloads are compared byte
// for byte with their files; the load tools must report no failed request and no
// connection error. A tool that is not installed skips its test, saying which package
// installs it (scripts/install-deps.sh installs them all).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "coring/fs/file.hpp"
#include "coring/http/server.hpp"
#include "coring/http/static_files.hpp"
#include "programs.hpp"

namespace coring::http {
namespace {

namespace stdfs = std::filesystem;

using test::Ran;

Ran run(const std::string& command) { return test::run_command(command); }

std::string read_file(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Task<Response> hello(Request&) { co_return Response::text(200, "Hello, World!"); }

Task<Response> echo_body(Request& request) {
  Result<std::string> body = co_await request.body().read_all(16 << 20);
  if (!body) co_return Response::text(400, body.message());
  co_return Response::text(200, std::move(*body), "application/octet-stream");
}

class ClientsTest : public testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/coring-http-clients.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    std::string bytes;
    for (std::size_t i = 0; i < (5u << 20) + 3; ++i) {
      bytes.push_back(static_cast<char>((i * 2654435761u) >> 13));
    }
    std::ofstream(dir_ / "big.bin", std::ios::binary)
        .write(bytes.data(), static_cast<long>(bytes.size()));
    big_ = bytes;

    Router router;
    router.get("/", &hello);
    router.post("/echo", &echo_body);
    const stdfs::path big = dir_ / "big.bin";
    router.get("/big.bin", [big](Request&) -> Task<Response> {
      auto file = co_await fs::File::open(big, O_RDONLY);
      if (!file) co_return Response::text(404, "gone");
      const auto size = static_cast<std::uint64_t>(stdfs::file_size(big));
      co_return Response::file(200, std::move(*file), 0, size, "application/octet-stream");
    });
    router.prefix("GET", "/files/", StaticFiles(dir_).mount("/files/"));
    ServerOptions options;
    options.handle_signals = false;
    options.limits.max_body_bytes = 16 << 20;
    server_ = std::make_unique<Server>(options, std::move(router));
    thread_ = std::thread([this] { status_ = server_->run(); });
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
    EXPECT_EQ(status_, 0);
    stdfs::remove_all(dir_);
  }

  stdfs::path dir_;
  std::string big_;
  std::string base_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int status_ = -1;
};

TEST_F(ClientsTest, CurlGetsHelloAndAFileByteForByteOnOneConnection) {
  REQUIRE_PROGRAM("curl", "curl");
  const stdfs::path got = dir_ / "got.bin";
  const Ran curl =
      run("curl -sS -v -o /dev/null " + base_ + "/ -o " + got.string() + " " + base_ + "/big.bin");
  ASSERT_EQ(curl.status, 0) << curl.output;
  EXPECT_NE(curl.output.find("Re-using existing connection"), std::string::npos) << curl.output;
  EXPECT_TRUE(read_file(got) == big_);
  EXPECT_EQ(run("curl -sS " + base_ + "/").output, "Hello, World!");
}

TEST_F(ClientsTest, CurlHeadSaysTheLengthWithoutABody) {
  REQUIRE_PROGRAM("curl", "curl");
  const Ran curl = run("curl -sS -I " + base_ + "/big.bin");
  ASSERT_EQ(curl.status, 0) << curl.output;
  EXPECT_NE(curl.output.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(curl.output.find("Content-Length: " + std::to_string(big_.size())), std::string::npos);
}

TEST_F(ClientsTest, CurlUploadsWithLengthChunkedAndExpectContinue) {
  REQUIRE_PROGRAM("curl", "curl");
  const stdfs::path file = dir_ / "big.bin";
  for (const char* extra : {"", "-H 'Transfer-Encoding: chunked'", "-H 'Expect: 100-continue'"}) {
    const stdfs::path got = dir_ / "echoed.bin";
    const Ran curl = run("curl -sS -v --data-binary @" + file.string() + " " + extra + " -o " +
                         got.string() + " " + base_ + "/echo");
    ASSERT_EQ(curl.status, 0) << curl.output;
    EXPECT_TRUE(read_file(got) == big_) << extra;
    if (std::string_view(extra).find("Expect") != std::string_view::npos) {
      EXPECT_NE(curl.output.find("HTTP/1.1 100 Continue"), std::string::npos) << curl.output;
    }
  }
}

TEST_F(ClientsTest, CurlGetsStaticFilesWholeInRangesAndConditionally) {
  REQUIRE_PROGRAM("curl", "curl");
  const std::string url = base_ + "/files/big.bin";
  const stdfs::path got = dir_ / "got.bin";
  Ran curl = run("curl -sS -o " + got.string() + " -w '%{http_code}' " + url);
  EXPECT_EQ(curl.output, "200");
  EXPECT_TRUE(read_file(got) == big_);
  // Ranges: a middle, a suffix, an open end, and one past the end.
  const struct {
    std::string range;
    std::size_t at;
    std::size_t size;
  } ranges[] = {{"100-199", 100, 100},
                {"-10", big_.size() - 10, 10},
                {std::to_string(big_.size() - 5) + "-", big_.size() - 5, 5}};
  for (const auto& r : ranges) {
    curl = run("curl -sS -r " + r.range + " -o " + got.string() + " -w '%{http_code}' " + url);
    EXPECT_EQ(curl.output, "206") << r.range;
    EXPECT_TRUE(read_file(got) == big_.substr(r.at, r.size)) << r.range;
  }
  curl =
      run("curl -sS -r " + std::to_string(big_.size()) + "- -o /dev/null -w '%{http_code}' " + url);
  EXPECT_EQ(curl.output, "416");
  // If-Modified-Since: curl -z sends the file's own time, then one before it.
  curl =
      run("curl -sS -z " + (dir_ / "big.bin").string() + " -o /dev/null -w '%{http_code}' " + url);
  EXPECT_EQ(curl.output, "304");
  curl = run("curl -sS -z 'Sat, 01 Jan 2000 00:00:00 GMT' -o /dev/null -w '%{http_code}' " + url);
  EXPECT_EQ(curl.output, "200");
  curl = run("curl -sS -I " + url);
  EXPECT_NE(curl.output.find("Content-Length: " + std::to_string(big_.size())), std::string::npos)
      << curl.output;
  EXPECT_NE(curl.output.find("Last-Modified: "), std::string::npos) << curl.output;
  curl = run("curl -sS --path-as-is -o /dev/null -w '%{http_code}' " + base_ + "/files/../big.bin");
  EXPECT_EQ(curl.output, "404");
}

TEST_F(ClientsTest, PythonHttpClientKeepsAliveAndSendsChunked) {
  REQUIRE_PROGRAM("python3", "python3");
  const std::string script = R"PY(
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(3):
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!", i
sock = c.sock
c.request("HEAD", "/big.bin")
r = c.getresponse(); r.read()
assert r.status == 200 and int(r.getheader("Content-Length")) == int(sys.argv[2])
c.request("POST", "/echo", body=iter([b"abc", b"defg"]), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
assert r.status == 200 and r.read() == b"abcdefg"
assert c.sock is sock, "the connection was not kept"
print("ok")
)PY";
  const stdfs::path path = dir_ / "client.py";
  std::ofstream(path) << script;
  const Ran python = run("python3 " + path.string() + " " + std::to_string(server_->port()) + " " +
                         std::to_string(big_.size()));
  EXPECT_EQ(python.status, 0) << python.output;
  EXPECT_EQ(python.output, "ok\n");
}

TEST_F(ClientsTest, AbWithKeepAliveHasNoFailures) {
  REQUIRE_PROGRAM("ab", "apache2-utils");
  const Ran ab = run("ab -q -k -s 10 -n 2000 -c 10 " + base_ + "/");
  ASSERT_EQ(ab.status, 0) << ab.output;
  EXPECT_NE(ab.output.find("Complete requests:      2000"), std::string::npos) << ab.output;
  EXPECT_NE(ab.output.find("Failed requests:        0"), std::string::npos) << ab.output;
  EXPECT_NE(ab.output.find("Keep-Alive requests:    2000"), std::string::npos) << ab.output;
}

TEST_F(ClientsTest, H2loadOverHttp11HasNoFailures) {
  REQUIRE_PROGRAM("h2load", "nghttp2-client");
  const Ran h2load = run("h2load --h1 -n 2000 -c 10 -m 4 " + base_ + "/");
  ASSERT_EQ(h2load.status, 0) << h2load.output;
  EXPECT_NE(h2load.output.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos)
      << h2load.output;
  EXPECT_NE(h2load.output.find("status codes: 2000 2xx"), std::string::npos) << h2load.output;
}

TEST_F(ClientsTest, WrkHasNoErrorsAndNoOtherStatus) {
  REQUIRE_PROGRAM("wrk", "wrk");
  const Ran wrk = run("wrk -t1 -c50 -d1s " + base_ + "/");
  ASSERT_EQ(wrk.status, 0) << wrk.output;
  EXPECT_EQ(wrk.output.find("Socket errors"), std::string::npos) << wrk.output;
  EXPECT_EQ(wrk.output.find("Non-2xx"), std::string::npos) << wrk.output;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(wrk.output, match, std::regex("([0-9]+) requests in")));
  EXPECT_GT(std::stoul(match[1]), 100U);
}

}  // namespace
}  // namespace coring::http
