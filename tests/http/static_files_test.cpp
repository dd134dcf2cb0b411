// StaticFiles: each behaviour of the handler on a directory built for the test (files,
// an index, symlinks inside and out, a FIFO and a socket), checked on the Response: its
// status, its fields, and for a file body the bytes of the range read back from the
// File it carries. No test leaves an fd behind (the test main counts them).
#include "coring/http/static_files.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "coring/fs/probe.hpp"
#include "coring/http/router.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/runtime.hpp"
#include "support.hpp"

namespace coring::http {
namespace {

using ring::test::TempDir;

// Every file of the tree has this modification time, so that dates are known.
constexpr std::int64_t file_mtime = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT

// 10000 bytes in which each position has its own value modulo 251, so a wrong offset shows.
std::string pattern_text(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>((i * 7 + 3) % 251);
  return text;
}
const std::string data_bin = pattern_text(10000);

using Fields = std::vector<std::pair<std::string, std::string>>;

// root/ holds hello.txt, data.bin, empty.txt, space name.txt, index.html, dir/index.html,
// dir/page.css, noindex/, dirindex/index.html/ (a directory), "odd dir/", "\evil/",
// link.txt -> hello.txt, out.txt -> ../secret.txt, abs -> <secret's absolute path>, a
// FIFO and a socket; secret.txt lies beside root/.
class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.file("root");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    for (const char* dir :
         {"dir", "noindex", "dirindex", "dirindex/index.html", "odd dir", "\\evil"})
      ASSERT_EQ(::mkdir(in_root(dir).c_str(), 0755), 0) << dir;
    write("hello.txt", "Hello, static files!\n");
    write("data.bin", data_bin);
    write("empty.txt", "");
    write("space name.txt", "spaced");
    write("index.html", "<h1>home</h1>");
    write("dir/index.html", "<h1>dir</h1>");
    write("dir/page.css", "body {}");
    write_at(tmp_.file("secret.txt"), "secret");
    ASSERT_EQ(::symlink("hello.txt", in_root("link.txt").c_str()), 0);
    ASSERT_EQ(::symlink("../secret.txt", in_root("out.txt").c_str()), 0);
    ASSERT_EQ(::symlink(tmp_.file("secret.txt").c_str(), in_root("abs").c_str()), 0);
    ASSERT_EQ(::mkfifo(in_root("fifo").c_str(), 0644), 0);
    make_socket_file(in_root("sock"));
    const bool has_openat2 =
        loop_.run([]() -> Task<bool> { co_return fs::supports(ring::Op::openat2); }());
    if (!has_openat2)
      GTEST_SKIP() << "StaticFiles opens with openat2 (IORING_OP_OPENAT2, Linux 5.6)";
  }

  std::string in_root(const std::string& name) const { return root_ + "/" + name; }

  void write(const std::string& name, const std::string& text) { write_at(in_root(name), text); }

  static void write_at(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    const timespec times[2] = {{file_mtime, 0}, {file_mtime, 0}};
    ASSERT_EQ(::futimens(fd, times), 0);
    ::close(fd);
  }

  static void make_socket_file(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof address.sun_path);
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    ::close(fd);
    ASSERT_EQ(bound, 0) << std::strerror(errno);
  }

  // The handler's answer to `method target` with `fields`, run on this test's loop.
  Response ask(const StaticFiles& files, const std::string& method, const std::string& target,
               const Fields& fields = {}) {
    std::string text = method + " " + target + " HTTP/1.1\r\nHost: h\r\n";
    for (const auto& [name, value] : fields) text += name + ": " + value + "\r\n";
    text += "\r\n";
    MessageParser parser(MessageParser::Type::request);
    const ParseEvent event = parser.parse(text);
    EXPECT_EQ(event.kind, ParseEvent::Kind::head) << text;
    Request request(parser, BodyReader());
    return loop_.run(files(request));
  }
  Response get(const StaticFiles& files, const std::string& target, const Fields& fields = {}) {
    return ask(files, "GET", target, fields);
  }

  TempDir tmp_;
  std::string root_;
  EventLoop loop_;
};

// The bytes of a file response's range, read back from the File it carries.
std::string body_of(const Response& response) {
  if (!response.file_body) return response.body;
  const Response::FileRange& range = *response.file_body;
  std::string bytes(range.length, '\0');
  const ssize_t n =
      ::pread(range.source().fd(), bytes.data(), bytes.size(), static_cast<off_t>(range.offset));
  EXPECT_EQ(n, static_cast<ssize_t>(range.length));
  return bytes;
}

std::string field(const Response& response, std::string_view name) {
  return std::string(response.headers.get(name).value_or("<none>"));
}

TEST_F(StaticFilesTest, ServesAFileWithItsFields) {
  const StaticFiles files(root_);
  const Response response = get(files, "/hello.txt");
  EXPECT_EQ(response.status, 200);
  ASSERT_TRUE(response.file_body);
  EXPECT_EQ(response.file_body->offset, 0U);
  EXPECT_EQ(response.content_length(), 21U);
  EXPECT_EQ(body_of(response), "Hello, static files!\n");
  EXPECT_EQ(field(response, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(field(response, "Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
  EXPECT_EQ(field(response, "ETag"), "W/\"15-6553f100\"");  // size 21, mtime, in hex
  EXPECT_EQ(field(response, "Accept-Ranges"), "bytes");
  EXPECT_FALSE(response.headers.contains("Cache-Control"));
  EXPECT_FALSE(response.headers.contains("Content-Range"));
  // The File is an ordinary read-only one: O_NONBLOCK, used to open it, is gone.
  const int flags = ::fcntl(response.file_body->source().fd(), F_GETFL);
  EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(flags & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(response.file_body->source().fd(), F_GETFD) & FD_CLOEXEC, 0);

  const Response binary = get(files, "/data.bin");
  EXPECT_EQ(binary.status, 200);
  EXPECT_EQ(field(binary, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(body_of(binary), data_bin);
  const Response empty = get(files, "/empty.txt");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.content_length(), 0U);
}

TEST_F(StaticFilesTest, HeadHasTheHeadOfGet) {
  const StaticFiles files(root_);
  for (const char* target : {"/hello.txt", "/", "/nope", "/dir"}) {
    const Response got = get(files, target);
    const Response head = ask(files, "HEAD", target);
    EXPECT_EQ(head.status, got.status) << target;
    EXPECT_EQ(head.content_length(), got.content_length()) << target;
    ASSERT_EQ(head.headers.size(), got.headers.size()) << target;
    for (std::size_t i = 0; i < got.headers.size(); ++i) {
      EXPECT_EQ(head.headers.at(i).name, got.headers.at(i).name) << target;
      EXPECT_EQ(head.headers.at(i).value, got.headers.at(i).value) << target;
    }
  }
}

TEST_F(StaticFilesTest, OtherMethodsAre405WithAllow) {
  const StaticFiles files(root_);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    const Response response = ask(files, method, "/hello.txt");
    EXPECT_EQ(response.status, 405) << method;
    EXPECT_EQ(field(response, "Allow"), "GET, HEAD") << method;
    EXPECT_FALSE(response.file_body) << method;
  }
}

TEST_F(StaticFilesTest, APathEndingInSlashServesTheIndex) {
  const StaticFiles files(root_);
  Response response = get(files, "/");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "<h1>home</h1>");
  EXPECT_EQ(field(response, "Content-Type"), "text/html; charset=utf-8");
  response = get(files, "/dir/");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "<h1>dir</h1>");
  EXPECT_EQ(get(files, "/noindex/").status, 404);    // no listing
  EXPECT_EQ(get(files, "/dirindex/").status, 404);   // the index is a directory
  EXPECT_EQ(get(files, "/hello.txt/").status, 404);  // not a directory (ENOTDIR)
  EXPECT_EQ(get(files, "/dir/page.css").status, 200);

  EXPECT_EQ(get(StaticFiles(root_, {.index = nullptr}), "/").status, 404);
  EXPECT_EQ(get(StaticFiles(root_, {.index = ""}), "/dir/").status, 404);
  const Response custom = get(StaticFiles(root_, {.index = "page.css"}), "/dir/");
  EXPECT_EQ(custom.status, 200);
  EXPECT_EQ(body_of(custom), "body {}");
  EXPECT_EQ(field(custom, "Content-Type"), "text/css; charset=utf-8");
}

TEST_F(StaticFilesTest, ADirectoryWithoutSlashIsRedirected) {
  const StaticFiles files(root_);
  struct Case {
    const char* target;
    const char* location;
  };
  for (const Case& c :
       {Case{"/dir", "/dir/"}, Case{"/dir?x=1&y", "/dir/?x=1&y"}, Case{"/odd%20dir", "/odd%20dir/"},
        Case{"/%5Cevil", "/%5Cevil/"}, Case{"/dir/../noindex", "/dir/../noindex/"}}) {
    const Response response = get(files, c.target);
    EXPECT_EQ(response.status, 301) << c.target;
    EXPECT_EQ(field(response, "Location"), c.location) << c.target;
    EXPECT_FALSE(response.file_body) << c.target;
  }
}

TEST_F(StaticFilesTest, PathsArePercentDecoded) {
  const StaticFiles files(root_);
  Response response = get(files, "/space%20name.txt");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "spaced");
  response = get(files, "/%68%65llo%2Etxt");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "Hello, static files!\n");
  response = get(files, "/dir%2Fpage.css");  // an escaped '/' separates like '/'
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "body {}");
  for (const char* malformed : {"/hello.txt%", "/hello.txt%2", "/%zzhello.txt", "/a%0", "/%00",
                                "/hello.txt%00.png", "/%g0"}) {
    response = get(files, malformed);
    EXPECT_EQ(response.status, 400) << malformed;
    EXPECT_FALSE(response.file_body) << malformed;
  }
}

TEST_F(StaticFilesTest, NothingOutsideTheRootIsReached) {
  const StaticFiles files(root_);
  for (const char* target :
       {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/dir/../../secret.txt",
        "/dir/%2e%2e/%2e%2e/secret.txt", "//etc/passwd", "/%2Fetc%2Fpasswd", "/out.txt", "/abs",
        "/..", "/../"}) {
    const Response response = get(files, target);
    EXPECT_EQ(response.status, 404) << target;
    EXPECT_FALSE(response.file_body) << target;
    EXPECT_EQ(response.body, "Not Found\n") << target;
  }
}

TEST_F(StaticFilesTest, SymlinksInsideAreFollowedUnlessRefused) {
  const Response response = get(StaticFiles(root_), "/link.txt");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "Hello, static files!\n");
  const StaticFiles strict(root_, {.follow_symlinks = false});
  EXPECT_EQ(get(strict, "/link.txt").status, 404);
  EXPECT_EQ(get(strict, "/out.txt").status, 404);
  EXPECT_EQ(get(strict, "/hello.txt").status, 200);
}

TEST_F(StaticFilesTest, MissingNamesAre404) {
  const StaticFiles files(root_);
  for (const char* target : {"/nope.txt", "/hello.txt/more", "/nodir/x", "/dir/nope"}) {
    const Response response = get(files, target);
    EXPECT_EQ(response.status, 404) << target;
    EXPECT_EQ(field(response, "Content-Type"), "text/plain; charset=utf-8") << target;
  }
  EXPECT_EQ(get(files, "/" + std::string(300, 'x')).status, 404);  // ENAMETOOLONG
}

// A FIFO without a writer would hold an open without O_NONBLOCK forever: the answer
// coming back at all is the check, and the test's timeout the failure. (The kernel's ring
// tries an open with O_NONBLOCK itself first, so it is the epoll backend, whose worker
// calls openat2 with the flags given, that hangs without it.)
TEST_F(StaticFilesTest, FifosSocketsAndDevicesAre404WithoutBlocking) {
  const StaticFiles files(root_);
  EXPECT_EQ(get(files, "/fifo").status, 404);
  EXPECT_EQ(ask(files, "HEAD", "/fifo").status, 404);
  EXPECT_EQ(get(files, "/sock").status, 404);
  // A character device (/dev/null's numbers), where the process may make one and the file
  // system lets it be opened (not mounted nodev).
  if (::mknod(in_root("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    const int fd = ::open(in_root("null").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      EXPECT_EQ(get(files, "/null").status, 404);
    }
  }
}

TEST_F(StaticFilesTest, AFileThatMayNotBeReadIs403) {
  write("private.txt", "private");
  ASSERT_EQ(::chmod(in_root("private.txt").c_str(), 0600), 0);
  const StaticFiles files(root_);
  // Root reads any file: the check runs as nobody in a child process when we are root.
  auto status_as_user = [&]() -> int {
    EventLoop loop;
    MessageParser parser(MessageParser::Type::request);
    (void)parser.parse("GET /private.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    Request request(parser, BodyReader());
    return loop.run(files(request)).status;
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(status_as_user(), 403);
    return;
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(1);
    _exit(status_as_user() == 403 ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(StaticFilesTest, OneRangeOfEachFormIsServedAsPartialContent) {
  const StaticFiles files(root_);
  struct Case {
    const char* range;
    std::uint64_t first;
    std::uint64_t last;
  };
  for (const Case& c :
       {Case{"bytes=0-99", 0, 99}, Case{"bytes=9990-", 9990, 9999}, Case{"bytes=-5", 9995, 9999},
        Case{"bytes=9000-20000", 9000, 9999}, Case{"bytes=-20000", 0, 9999},
        Case{"bytes=123-123", 123, 123}, Case{"Bytes=0-0", 0, 0}, Case{"bytes= 5-9 ", 5, 9},
        Case{"bytes=0-99999999999999999999999", 0, 9999}}) {
    const Response response = get(files, "/data.bin", {{"Range", c.range}});
    EXPECT_EQ(response.status, 206) << c.range;
    ASSERT_TRUE(response.file_body) << c.range;
    EXPECT_EQ(response.file_body->offset, c.first) << c.range;
    EXPECT_EQ(response.content_length(), c.last - c.first + 1) << c.range;
    EXPECT_EQ(field(response, "Content-Range"),
              "bytes " + std::to_string(c.first) + "-" + std::to_string(c.last) + "/10000")
        << c.range;
    EXPECT_EQ(field(response, "Content-Type"), "application/octet-stream") << c.range;
    EXPECT_EQ(body_of(response), data_bin.substr(c.first, c.last - c.first + 1)) << c.range;
  }
}

TEST_F(StaticFilesTest, ARangeStartingPastTheEndIs416) {
  const StaticFiles files(root_);
  for (const char* range :
       {"bytes=10000-", "bytes=10000-10005", "bytes=-0", "bytes=99999999999999999999999-"}) {
    const Response response = get(files, "/data.bin", {{"Range", range}});
    EXPECT_EQ(response.status, 416) << range;
    EXPECT_EQ(field(response, "Content-Range"), "bytes */10000") << range;
    EXPECT_FALSE(response.file_body) << range;
  }
  for (const char* range : {"bytes=0-", "bytes=-1", "bytes=0-0"}) {
    const Response response = get(files, "/empty.txt", {{"Range", range}});
    EXPECT_EQ(response.status, 416) << range;
    EXPECT_EQ(field(response, "Content-Range"), "bytes */0") << range;
  }
}

TEST_F(StaticFilesTest, RangesItCannotServeAloneAreIgnored) {
  const StaticFiles files(root_);
  const std::string date = format_http_date(file_mtime);
  const std::vector<Fields> requests = {
      {{"Range", "bytes=0-1,5-6"}},  // several ranges
      {{"Range", "bytes=0-1, 5-6"}},
      {{"Range", "bytes=abc"}},  // malformed
      {{"Range", "bytes=5-1"}},
      {{"Range", "bytes=1-2-3"}},
      {{"Range", "bytes="}},
      {{"Range", "bytes=-"}},
      {{"Range", "bytes=x-5"}},
      {{"Range", "items=0-1"}},  // another unit
      {{"Range", "0-1"}},
      {{"Range", "bytes=0-1"}, {"Range", "bytes=2-3"}},                          // two fields
      {{"Range", "bytes=0-1"}, {"If-Range", format_http_date(file_mtime - 1)}},  // changed since
      {{"Range", "bytes=0-1"}, {"If-Range", "W/\"2710-6553f100\""}},             // an entity tag
      {{"Range", "bytes=0-1"}, {"If-Range", "garbage"}},
  };
  for (const Fields& fields : requests) {
    const Response response = get(files, "/data.bin", fields);
    EXPECT_EQ(response.status, 200) << fields[0].second << " " << fields.back().second;
    EXPECT_FALSE(response.headers.contains("Content-Range"));
    EXPECT_EQ(response.content_length(), 10000U);
    EXPECT_EQ(body_of(response), data_bin);
  }
  // If-Range with the file's own date keeps the range.
  const Response kept = get(files, "/data.bin", {{"Range", "bytes=0-1"}, {"If-Range", date}});
  EXPECT_EQ(kept.status, 206);
  EXPECT_EQ(body_of(kept), data_bin.substr(0, 2));
  // Range is defined for GET only: a HEAD gets the whole file's head.
  const Response head = ask(files, "HEAD", "/data.bin", {{"Range", "bytes=0-1"}});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.content_length(), 10000U);
}

TEST_F(StaticFilesTest, IfModifiedSinceAnswers304UnlessTheFileIsNewer) {
  const StaticFiles files(root_);
  struct Case {
    std::string since;
    int status;
  };
  for (const Case& c :
       {Case{format_http_date(file_mtime), 304}, Case{format_http_date(file_mtime + 3600), 304},
        Case{"Tuesday, 14-Nov-23 22:13:20 GMT", 304},  // RFC 850's form
        Case{format_http_date(file_mtime - 1), 200}, Case{"garbage", 200}}) {
    const Response response = get(files, "/hello.txt", {{"If-Modified-Since", c.since}});
    EXPECT_EQ(response.status, c.status) << c.since;
    EXPECT_EQ(field(response, "Last-Modified"), format_http_date(file_mtime)) << c.since;
    EXPECT_EQ(field(response, "ETag"), "W/\"15-6553f100\"") << c.since;
    if (c.status == 304) {
      EXPECT_FALSE(response.file_body) << c.since;
      EXPECT_EQ(response.content_length(), 0U) << c.since;
      EXPECT_FALSE(response.headers.contains("Content-Type")) << c.since;
    } else {
      EXPECT_EQ(body_of(response), "Hello, static files!\n") << c.since;
    }
  }
  // A HEAD is answered alike.
  EXPECT_EQ(ask(files, "HEAD", "/hello.txt", {{"If-Modified-Since", format_http_date(file_mtime)}})
                .status,
            304);
}

TEST_F(StaticFilesTest, IfNoneMatchComparesWeaklyAndOverridesIfModifiedSince) {
  const StaticFiles files(root_);
  const std::string etag = "W/\"15-6553f100\"";
  struct Case {
    Fields fields;
    int status;
  };
  const std::vector<Case> cases = {
      {{{"If-None-Match", etag}}, 304},
      {{{"If-None-Match", "\"15-6553f100\""}}, 304},  // weak comparison ignores W/
      {{{"If-None-Match", "*"}}, 304},
      {{{"If-None-Match", "\"a,b\", W/\"other\" ," + etag}}, 304},
      {{{"If-None-Match", "\"other\""}}, 200},
      {{{"If-None-Match", "15-6553f100"}}, 200},  // not a quoted tag
      {{{"If-None-Match", "\"other\""}, {"If-Modified-Since", format_http_date(file_mtime)}}, 200},
      {{{"If-None-Match", etag}, {"If-Modified-Since", format_http_date(file_mtime - 1)}}, 304},
  };
  for (const Case& c : cases) {
    const Response response = get(files, "/hello.txt", c.fields);
    EXPECT_EQ(response.status, c.status) << c.fields[0].second;
  }
}

TEST_F(StaticFilesTest, MaxAgeSetsCacheControl) {
  const StaticFiles files(root_, {.max_age = 3600});
  EXPECT_EQ(field(get(files, "/hello.txt"), "Cache-Control"), "max-age=3600");
  EXPECT_EQ(field(get(files, "/hello.txt", {{"If-Modified-Since", format_http_date(file_mtime)}}),
                  "Cache-Control"),
            "max-age=3600");
  EXPECT_FALSE(get(files, "/nope").headers.contains("Cache-Control"));
}

TEST_F(StaticFilesTest, AMountServesBelowItsPrefix) {
  const StaticFiles files = StaticFiles(root_).mount("/static/");
  EXPECT_EQ(body_of(get(files, "/static/hello.txt")), "Hello, static files!\n");
  EXPECT_EQ(body_of(get(files, "/static/")), "<h1>home</h1>");
  EXPECT_EQ(body_of(get(files, "/static/dir/")), "<h1>dir</h1>");
  const Response bare = get(files, "/static?v=2");
  EXPECT_EQ(bare.status, 301);
  EXPECT_EQ(field(bare, "Location"), "/static/?v=2");
  const Response dir = get(files, "/static/dir");
  EXPECT_EQ(dir.status, 301);
  EXPECT_EQ(field(dir, "Location"), "/static/dir/");
  EXPECT_EQ(get(files, "/staticx/hello.txt").status, 404);
  EXPECT_EQ(get(files, "/hello.txt").status, 404);
  EXPECT_EQ(get(files, "/static/../secret.txt").status, 404);
  // The same without the trailing '/', and nested prefixes.
  EXPECT_EQ(get(StaticFiles(root_).mount("/static"), "/static/hello.txt").status, 200);
  EXPECT_EQ(get(StaticFiles(root_).mount("/a/b/"), "/a/b/dir/page.css").status, 200);
  EXPECT_EQ(get(StaticFiles(root_).mount("/"), "/hello.txt").status, 200);
  EXPECT_THROW((void)StaticFiles(root_).mount("static/"), std::invalid_argument);
}

TEST_F(StaticFilesTest, ServesThroughARouter) {
  Router router;
  router.prefix("GET", "/static/", StaticFiles(root_, {.max_age = 3600}).mount("/static/"));
  const Router::Match match = router.find("GET", "/static/dir/page.css");
  ASSERT_NE(match.handler, nullptr);
  MessageParser parser(MessageParser::Type::request);
  ASSERT_EQ(parser.parse("GET /static/dir/page.css HTTP/1.1\r\nHost: h\r\n\r\n").kind,
            ParseEvent::Kind::head);
  Request request(parser, BodyReader());
  const Response response = loop_.run((*match.handler)(request));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "body {}");
  EXPECT_EQ(field(response, "Cache-Control"), "max-age=3600");
}

TEST_F(StaticFilesTest, TheRootMustBeADirectory) {
  try {
    StaticFiles files(tmp_.file("nope"));
    ADD_FAILURE() << "a missing root was accepted";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(error.what()).find(tmp_.file("nope")), std::string::npos) << error.what();
  }
  try {
    StaticFiles files(in_root("hello.txt"));
    ADD_FAILURE() << "a file was accepted as the root";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::not_a_directory);
  }
}

// One StaticFiles, in one Handler, serves two loops' threads at once.
TEST_F(StaticFilesTest, ServesSeveralLoopsAtOnce) {
  const Handler handler = StaticFiles(root_);
  RuntimeOptions options;
  options.threads = 2;
  Runtime runtime(options);
  std::atomic<int> served{0};
  runtime.run_on_each([&](EventLoop&, std::size_t) -> Task<void> {
    for (std::size_t i = 0; i < 100; ++i) {
      const bool ranged = i % 2 == 0;
      const std::string head =
          ranged ? "GET /data.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=" + std::to_string(i) + "-" +
                       std::to_string(i + 9) + "\r\n\r\n"
                 : "GET /dir/ HTTP/1.1\r\nHost: h\r\n\r\n";
      MessageParser parser(MessageParser::Type::request);
      (void)parser.parse(head);
      Request request(parser, BodyReader());
      const Response response = co_await handler(request);
      const bool right = ranged
                             ? response.status == 206 && body_of(response) == data_bin.substr(i, 10)
                             : response.status == 200 && body_of(response) == "<h1>dir</h1>";
      if (right) served.fetch_add(1);
    }
  });
  EXPECT_EQ(served.load(), 200);
}

TEST(HttpContentType, ByExtensionIgnoringCase) {
  EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type_for("a/b/INDEX.HTM"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type_for("site.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type_for("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type_for("data.json"), "application/json");
  EXPECT_EQ(content_type_for("notes.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(content_type_for("logo.PNG"), "image/png");
  EXPECT_EQ(content_type_for("photo.jpg"), "image/jpeg");
  EXPECT_EQ(content_type_for("photo.jpeg"), "image/jpeg");
  EXPECT_EQ(content_type_for("anim.gif"), "image/gif");
  EXPECT_EQ(content_type_for("icon.svg"), "image/svg+xml");
  EXPECT_EQ(content_type_for("pic.webp"), "image/webp");
  EXPECT_EQ(content_type_for("favicon.ico"), "image/x-icon");
  EXPECT_EQ(content_type_for("mod.wasm"), "application/wasm");
  EXPECT_EQ(content_type_for("doc.pdf"), "application/pdf");
  EXPECT_EQ(content_type_for("feed.xml"), "application/xml");
  EXPECT_EQ(content_type_for("clip.mp4"), "video/mp4");
  EXPECT_EQ(content_type_for("font.woff2"), "font/woff2");
  EXPECT_EQ(content_type_for("archive.tar.gz"), "application/gzip");
  EXPECT_EQ(content_type_for("README"), "application/octet-stream");
  EXPECT_EQ(content_type_for("dir.d/README"), "application/octet-stream");
  EXPECT_EQ(content_type_for("file."), "application/octet-stream");
  EXPECT_EQ(content_type_for("x.unknown"), "application/octet-stream");
  EXPECT_EQ(content_type_for(""), "application/octet-stream");
}

TEST_F(StaticFilesTest, WithoutTheCacheEveryResponseOwnsItsFile) {
  const StaticFiles files(root_);
  const Response response = get(files, "/hello.txt");
  ASSERT_TRUE(response.file_body);
  EXPECT_FALSE(response.file_body->shared);
}

TEST_F(StaticFilesTest, TheOpenFileCacheSharesAFileUntilItsEntryExpires) {
  // A lifetime far longer than the steps before the sleep take, even on a loaded machine.
  const StaticFiles files(root_, {.open_file_cache_ms = 1'000});
  const Response first = get(files, "/hello.txt");
  const Response second = get(files, "/hello.txt");
  ASSERT_TRUE(first.file_body && second.file_body);
  ASSERT_TRUE(first.file_body->shared);
  EXPECT_EQ(first.file_body->shared, second.file_body->shared);  // one open file, no lookup
  // Replaced by a rename: the entry keeps serving the old file, with its own fields.
  write("hello.new", "A new greeting, longer than the first.\n");
  ASSERT_EQ(::rename(in_root("hello.new").c_str(), in_root("hello.txt").c_str()), 0);
  const Response cached = get(files, "/hello.txt");
  EXPECT_EQ(body_of(cached), "Hello, static files!\n");
  EXPECT_EQ(field(cached, "Content-Length"), "<none>");  // the server adds it from the range
  EXPECT_EQ(cached.file_body->length, 21U);
  // Once it expires, the name is looked up again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1'100));
  const Response fresh = get(files, "/hello.txt");
  EXPECT_NE(fresh.file_body->shared, first.file_body->shared);
  EXPECT_EQ(body_of(fresh), "A new greeting, longer than the first.\n");
  // Ranges and conditions apply to a hit as to a lookup.
  const Response part = get(files, "/hello.txt", {{"Range", "bytes=2-4"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(body_of(part), "new");
}

TEST_F(StaticFilesTest, TheOpenFileCacheKeepsNoFailure) {
  const StaticFiles files(root_, {.open_file_cache_ms = 60'000});
  EXPECT_EQ(get(files, "/late.txt").status, 404);
  write("late.txt", "here now");
  const Response response = get(files, "/late.txt");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body_of(response), "here now");
  EXPECT_EQ(get(files, "/dir").status, 301);  // a directory is not kept either
  EXPECT_EQ(get(files, "/fifo").status, 404);
}

// How many fds of this process refer to files of the root whose names start with `stem`.
int files_open(const std::string& root, const std::string& stem) {
  int count = 0;
  for (const auto& [fd, link] : ring::test::open_fds()) {
    if (link.rfind(root + "/" + stem, 0) == 0) ++count;
  }
  return count;
}

TEST_F(StaticFilesTest, TheOpenFileCacheClosesTheFilesOfExpiredEntries) {
  constexpr int names = 20;
  for (int i = 0; i < names; ++i) write("many" + std::to_string(i), std::to_string(i));
  // A lifetime far longer than the lookups and the count take, even on a loaded machine.
  const StaticFiles files(root_, {.open_file_cache_ms = 1'000});
  for (int i = 0; i < names; ++i) {
    ASSERT_EQ(get(files, "/many" + std::to_string(i)).status, 200) << i;
  }
  EXPECT_EQ(files_open(root_, "many"), names);  // kept while fresh
  std::this_thread::sleep_for(std::chrono::milliseconds(1'150));
  // The next lookup of any name closes every expired entry, not only its own.
  EXPECT_EQ(get(files, "/hello.txt").status, 200);
  EXPECT_EQ(files_open(root_, "many"), 0);
  // So does a hit on an expired name, for that name.
  EXPECT_EQ(get(files, "/many0").status, 200);
  EXPECT_EQ(files_open(root_, "many"), 1);
}

// The cache holds at most a quarter of the fd limit: a server that serves many files
// with the cache on still has fds to accept and to open with.
TEST_F(StaticFilesTest, TheOpenFileCacheLeavesDescriptorsUnderALowLimit) {
  constexpr int names = 200;
  for (int i = 0; i < names; ++i) write("many" + std::to_string(i), std::to_string(i));
  ::rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  ::rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(ring::test::count_open_fds() + 40);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  int failed = 0;
  const StaticFiles files(root_, {.open_file_cache_ms = 60'000});
  for (int i = 0; i < names; ++i) {
    if (get(files, "/many" + std::to_string(i)).status != 200) ++failed;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);  // before counting: that opens a dir
  EXPECT_EQ(failed, 0);
  EXPECT_LE(files_open(root_, "many"), 16);
}

// A limit lowered after the cache filled: an open that finds no fd empties the cache
// and is tried again, rather than answering 500 while the cache holds the fds.
TEST_F(StaticFilesTest, AnOpenWithoutDescriptorsEmptiesTheCacheAndTriesAgain) {
  constexpr int kept = 30;
  constexpr int later = 10;
  for (int i = 0; i < kept + later; ++i) write("many" + std::to_string(i), std::to_string(i));
  const StaticFiles files(root_, {.open_file_cache_ms = 60'000});
  // Every path the test takes once before the limit is tight, a failed open included:
  // a sanitizer's first look at a type needs a pipe of its own (see server_test.cpp).
  EXPECT_EQ(get(files, "/missing").status, 404);
  for (int i = 0; i < kept; ++i) {
    ASSERT_EQ(get(files, "/many" + std::to_string(i)).status, 200) << i;
  }
  ASSERT_EQ(files_open(root_, "many"), kept);
  ::rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  ::rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(ring::test::count_open_fds() + 4);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  int failed = 0;
  for (int i = kept; i < kept + later; ++i) {
    if (get(files, "/many" + std::to_string(i)).status != 200) ++failed;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);  // before counting: that opens a dir
  EXPECT_EQ(failed, 0);
  EXPECT_LT(files_open(root_, "many"), kept);  // the cache was emptied
}

}  // namespace
}  // namespace coring::http
