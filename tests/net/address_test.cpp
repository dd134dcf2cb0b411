// Address parsing and formatting: every family round-trips; a bad string is an error
// value that names the input.
#include "coring/net/address.hpp"

#include <gtest/gtest.h>

#include <string>

namespace coring::net {
namespace {

TEST(Address, ParsesAndFormatsIpv4) {
  auto a = Address::parse("127.0.0.1:8080");
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ(a->family(), Family::ipv4);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(*a, Address::ipv4_loopback(8080));
}

}  // namespace
}  // namespace coring::net
