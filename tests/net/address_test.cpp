// Address parsing and formatting: every family round-trips; a bad string is an error
// value that names the input; resolve() runs getaddrinfo off the loop.
#include "coring/net/address.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <string>
#include <vector>

#include "coring/net/resolve.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::net {
namespace {

TEST(Address, ParsesAndFormatsIpv4) {
  auto a = Address::parse("127.0.0.1:8080");
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ(a->family(), Family::ipv4);
  EXPECT_EQ(a->domain(), AF_INET);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->size(), sizeof(sockaddr_in));
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(*a, Address::ipv4_loopback(8080));
  EXPECT_EQ(a->with_port(1).to_string(), "127.0.0.1:1");
  EXPECT_EQ(Address::parse("0.0.0.0:0")->to_string(), Address::ipv4_any().to_string());
}

TEST(Address, ParsesAndFormatsIpv6) {
  auto a = Address::parse("[::1]:443");
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ(a->family(), Family::ipv6);
  EXPECT_EQ(a->port(), 443);
  EXPECT_EQ(a->to_string(), "[::1]:443");
  EXPECT_EQ(*a, Address::ipv6_loopback(443));
  auto full = Address::parse("[2001:db8::8:800:200c:417a]:65535");
  ASSERT_TRUE(full) << full.message();
  EXPECT_EQ(full->to_string(), "[2001:db8::8:800:200c:417a]:65535");
  auto scoped = Address::parse("[fe80::1%1]:22");
  ASSERT_TRUE(scoped) << scoped.message();
  EXPECT_EQ(scoped->to_string(), "[fe80::1%1]:22");
}

TEST(Address, ParsesAndFormatsUnixPathAndAbstract) {
  auto path = Address::parse("unix:/run/coring.sock");
  ASSERT_TRUE(path) << path.message();
  EXPECT_EQ(path->family(), Family::unix_socket);
  EXPECT_EQ(path->port(), 0);
  EXPECT_EQ(path->to_string(), "unix:/run/coring.sock");
  EXPECT_EQ(*path, *Address::unix_path("/run/coring.sock"));
  auto abstract = Address::parse("unix:@coring");
  ASSERT_TRUE(abstract) << abstract.message();
  EXPECT_EQ(abstract->to_string(), "unix:@coring");
  EXPECT_EQ(abstract->size(), offsetof(sockaddr_un, sun_path) + 1 + 6);  // no trailing NUL
  EXPECT_NE(*abstract, *Address::unix_path("coring"));
}

TEST(Address, BadStringsAreErrorValuesNamingTheInput) {
  const std::vector<std::string> bad = {"",
                                        "127.0.0.1",
                                        "127.0.0.1:",
                                        "127.0.0.1:65536",
                                        "127.0.0.1:-1",
                                        "127.0.0.1:80x",
                                        "127.0.0.1: 80",
                                        "256.0.0.1:80",
                                        "localhost:80",
                                        "::1:443",
                                        "[::1]443",
                                        "[::1]:",
                                        "[::g]:1",
                                        "[::1:80",
                                        "unix:"};
  for (const std::string& text : bad) {
    auto parsed = Address::parse(text);
    EXPECT_FALSE(parsed) << '"' << text << "\" parsed as " << parsed->to_string();
    if (parsed) continue;
    EXPECT_EQ(parsed.input(), text);
    EXPECT_NE(parsed.message().find('"' + text + '"'), std::string::npos) << parsed.message();
    EXPECT_EQ(parsed.error(), std::errc::invalid_argument) << parsed.error().message();
    EXPECT_THROW((void)parsed.value(), std::system_error);
  }
}

TEST(Address, PortAndPathErrorsSayWhichPartIsWrong) {
  EXPECT_EQ(Address::parse("1.2.3.4:99999").error(), Errc::invalid_port);
  EXPECT_EQ(Address::parse("[::1]:x").error(), Errc::invalid_port);
  EXPECT_EQ(Address::parse("nonsense:1").error(), Errc::invalid_address);
  const std::string long_path = "unix:/" + std::string(200, 'p');
  auto parsed = Address::parse(long_path);
  EXPECT_EQ(parsed.error(), Errc::path_too_long);
  EXPECT_NE(parsed.message().find(long_path), std::string::npos);
  EXPECT_EQ(Address::unix_abstract(std::string(200, 'a')).error(), Errc::path_too_long);
}

TEST(Address, FromSockaddrChecksFamilyAndLength) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  EXPECT_TRUE(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof(sin)));
  EXPECT_FALSE(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), 4));
  sin.sin_family = AF_PACKET;
  EXPECT_EQ(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof(sin)).error(),
            Errc::unsupported_family);
}

TEST(Resolve, NumericAndLocalhostOnTheBlockingPool) {
  EventLoop loop;
  auto numeric = loop.run(resolve("127.0.0.1", 80, {.numeric_host = true}));
  ASSERT_TRUE(numeric) << numeric.error().message();
  ASSERT_EQ(numeric->size(), 1U);
  EXPECT_EQ(numeric->front(), Address::ipv4_loopback(80));

  auto local = loop.run(resolve("localhost", 8080, {.family = AF_INET}));
  ASSERT_TRUE(local) << local.error().message();
  EXPECT_EQ(local->front(), Address::ipv4_loopback(8080));

  auto bad = loop.run(resolve("not an address", 1, {.numeric_host = true}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), Errc::host_not_found) << bad.error().message();
}

}  // namespace
}  // namespace coring::net
