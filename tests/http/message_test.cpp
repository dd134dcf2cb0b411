// Request, Response, the head a server writes, the Date field, and the Router.
#include "coring/http/message.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "coring/http/error.hpp"
#include "coring/http/router.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::http {
namespace {

TEST(HttpMessage, NamesTheStatuses) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(299), "");
}

TEST(HttpMessage, WritesTheHeadOfAResponse) {
  Response response = Response::text(200, "Hello, World!");
  response.headers.add("X-Extra", "1");
  std::string out;
  serialize_head(response, false, out);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\nDate: ")) << out;
  EXPECT_NE(out.find("\r\nContent-Type: text/plain; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nX-Extra: 1\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nContent-Length: 13\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Connection"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\n\r\n"));
  // The head parses back as a response with that length.
  MessageParser parser(MessageParser::Type::response);
  const std::string whole = out + response.body;
  ASSERT_EQ(parser.parse(whole).kind, ParseEvent::Kind::head);
  EXPECT_EQ(parser.status(), 200);
  EXPECT_EQ(parser.content_length(), 13U);
  const auto date = parser.headers().get("date");
  ASSERT_TRUE(date);
  EXPECT_TRUE(parse_http_date(*date)) << *date;
}

TEST(HttpMessage, ClosingAndBodilessHeads) {
  std::string out;
  serialize_head(Response(404), true, out);
  EXPECT_NE(out.find("\r\nContent-Length: 0\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos);
  for (const int status : {204, 304, 100}) {
    out.clear();
    serialize_head(Response(status), false, out);
    EXPECT_EQ(out.find("Content-Length"), std::string::npos) << status;
  }
  // A length the handler set is kept, not doubled.
  Response head_answer(200);
  head_answer.headers.add("Content-Length", "1234");
  out.clear();
  serialize_head(head_answer, false, out);
  EXPECT_NE(out.find("\r\nContent-Length: 1234\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("Content-Length"), out.rfind("Content-Length")) << out;
}

TEST(HttpMessage, FormatsAndParsesDates) {
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
  EXPECT_FALSE(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"));
  EXPECT_FALSE(parse_http_date("Thu, 31 Feb 1994 08:49:37 GMT"));  // timegm would roll it
  EXPECT_FALSE(parse_http_date(""));
  EXPECT_FALSE(parse_http_date(std::string(100, 'x')));
  EXPECT_EQ(http_date().size(), 29U);
}

// Found by an outside review: an absolute-form target's path kept its scheme and host,
// so no route matched it, and a fragment stayed in the path.
TEST(HttpMessage, SplitsAbsoluteFormTargetsAndDropsFragments) {
  struct Case {
    const char* target;
    const char* path;
    const char* query;
  };
  for (const Case& c : {Case{"http://example.com/a/b?x=1", "/a/b", "x=1"},
                        Case{"HTTP://example.com", "/", ""}, Case{"https://h:8080?q", "/", "q"},
                        Case{"/a#frag", "/a", ""}, Case{"/a?b#frag", "/a", "b"}}) {
    MessageParser parser(MessageParser::Type::request);
    const std::string request = std::string("GET ") + c.target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ(parser.parse(request).kind, ParseEvent::Kind::head) << c.target;
    Request r(parser, BodyReader());
    EXPECT_EQ(r.path(), c.path) << c.target;
    EXPECT_EQ(r.query(), c.query) << c.target;
  }
}

TEST(HttpMessage, SplitsTheTarget) {
  MessageParser parser(MessageParser::Type::request);
  ASSERT_EQ(parser.parse("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n").kind,
            ParseEvent::Kind::head);
  Request request(parser, BodyReader());
  EXPECT_EQ(request.path(), "/a/b");
  EXPECT_EQ(request.query(), "x=1&y");
  EXPECT_EQ(request.header("HOST"), "h");
  EXPECT_TRUE(request.body().done());
}

// A body source that hands out a fixed text in pieces of at most 5 bytes.
class TextSource final : public detail::BodySource {
 public:
  explicit TextSource(std::string text) : text_(std::move(text)) {}
  Task<Result<std::size_t>> read(std::span<std::byte> buffer) override {
    const std::size_t n = std::min({buffer.size(), text_.size() - at_, std::size_t{5}});
    std::memcpy(buffer.data(), text_.data() + at_, n);
    at_ += n;
    co_return n;
  }
  bool done() const noexcept override { return at_ == text_.size(); }

 private:
  std::string text_;
  std::size_t at_ = 0;
};

TEST(HttpMessage, ReadsAWholeBodyWithinItsLimit) {
  EventLoop loop;
  TextSource fits("twelve bytes");
  BodyReader reader(&fits);
  const Result<std::string> body = loop.run(reader.read_all(12));
  ASSERT_TRUE(body) << body.message();
  EXPECT_EQ(*body, "twelve bytes");
  EXPECT_TRUE(reader.done());
  TextSource over("thirteen byte");
  BodyReader long_reader(&over);
  const Result<std::string> refused = loop.run(long_reader.read_all(12));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::body_too_large);
}

Handler answer(int status) {
  return [status](Request&) -> Task<Response> { co_return Response(status); };
}

int answer_of(const Router& router, std::string_view method, std::string_view path) {
  const Router::Match match = router.find(method, path);
  if (match.handler == nullptr) return match.status;
  EventLoop loop;
  MessageParser parser(MessageParser::Type::request);
  (void)parser.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  Request request(parser, BodyReader());
  return loop.run((*match.handler)(request)).status;
}

TEST(HttpRouter, PrefersExactRoutesThenLongerPrefixes) {
  Router router;
  router.get("/", answer(201));
  router.prefix("GET", "/static/", answer(202));
  router.prefix("GET", "/static/deep/", answer(203));
  router.prefix("", "/any/", answer(204));
  router.get("/static/exact", answer(205));
  EXPECT_EQ(answer_of(router, "GET", "/"), 201);
  EXPECT_EQ(answer_of(router, "GET", "/static/a.css"), 202);
  EXPECT_EQ(answer_of(router, "GET", "/static/deep/x"), 203);
  EXPECT_EQ(answer_of(router, "GET", "/static/exact"), 205);
  EXPECT_EQ(answer_of(router, "DELETE", "/any/thing"), 204);
  EXPECT_EQ(answer_of(router, "GET", "/nothing"), 404);
  EXPECT_EQ(answer_of(router, "GET", "/stati"), 404);
}

TEST(HttpRouter, AnswersAWrongMethodWith405AndAllow) {
  Router router;
  router.get("/r", answer(200));
  router.post("/r", answer(201));
  const Router::Match match = router.find("DELETE", "/r");
  EXPECT_EQ(match.handler, nullptr);
  EXPECT_EQ(match.status, 405);
  EXPECT_EQ(match.allow, "GET, HEAD, POST");
  EXPECT_EQ(answer_of(router, "POST", "/r"), 201);
}

TEST(HttpRouter, HeadFallsBackToGetUnlessRouted) {
  Router router;
  router.get("/g", answer(200));
  router.get("/h", answer(200));
  router.route("HEAD", "/h", answer(299));
  EXPECT_EQ(answer_of(router, "HEAD", "/g"), 200);
  EXPECT_EQ(answer_of(router, "HEAD", "/h"), 299);
}

TEST(HttpRouter, AFallbackPrefixServesMethodsAnExactRouteLacks) {
  Router router;
  router.get("/x", answer(200));
  router.prefix("POST", "/", answer(201));
  EXPECT_EQ(answer_of(router, "POST", "/x"), 201);
  EXPECT_EQ(answer_of(router, "PUT", "/x"), 405);
}

}  // namespace
}  // namespace coring::http
