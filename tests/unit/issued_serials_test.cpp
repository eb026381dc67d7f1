#include <doctest/doctest.h>

#include "responder/issued_serials.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::responder;
using ocsp::testing::Serial;

TEST_CASE("issued serials: single serials and inclusive ranges, in any order, hex with or without 0x") {
  auto list = IssuedSerials::Parse("# issued by the 2023 key\n0x2000-0x2fff\n1001\n  1A2b  # a comment\n\n");
  REQUIRE(list.has_value());
  CHECK(list->Contains(Serial(0x1001)));
  CHECK(list->Contains(Serial(0x1a2b)));
  CHECK(list->Contains(Serial(0x2000)));
  CHECK(list->Contains(Serial(0x2abc)));
  CHECK(list->Contains(Serial(0x2fff)));
  CHECK_FALSE(list->Contains(Serial(0x1000)));
  CHECK_FALSE(list->Contains(Serial(0x1002)));
  CHECK_FALSE(list->Contains(Serial(0x3000)));
  CHECK_FALSE(list->Contains(Serial(0x1fff)));
}

TEST_CASE("issued serials: overlapping and adjacent entries merge, and order is numeric, not textual") {
  auto list = IssuedSerials::Parse("10-1f\n20-2f\n18-22\nff\n100\n");
  REQUIRE(list.has_value());
  CHECK(list->range_count() == 2);  // 10-2f and ff-100
  CHECK(list->Contains(Serial(0x2f)));
  CHECK(list->Contains(Serial(0xff)));
  CHECK(list->Contains(Serial(0x100)));
  CHECK_FALSE(list->Contains(Serial(0x30)));
  CHECK_FALSE(list->Contains(Serial(0x101)));
  // A range across a length boundary: 0xff < 0x0100 < 0xffff.
  auto wide = IssuedSerials::Parse("f0-1000\n");
  REQUIRE(wide.has_value());
  CHECK(wide->Contains(Serial(0xff)));
  CHECK(wide->Contains(Serial(0x0abc)));
  CHECK_FALSE(wide->Contains(Serial(0x1001)));
  CHECK_FALSE(wide->Contains(Serial(0xef)));
}

TEST_CASE("issued serials: 20-octet serials are served, longer ones and bad lines are refused with the line") {
  const std::string twenty(40, 'f');
  auto list = IssuedSerials::Parse(twenty + "\n");
  REQUIRE(list.has_value());
  CHECK(list->Contains(Bytes(20, 0xff)));
  CHECK_FALSE(list->Contains(Bytes(21, 0xff)));
  auto too_long = IssuedSerials::Parse("1\n" + std::string(42, 'f') + "\n");
  REQUIRE_FALSE(too_long.has_value());
  CHECK(too_long.error().message.find("line 2") != std::string::npos);
  CHECK_FALSE(IssuedSerials::Parse("12g4\n").has_value());
  CHECK_FALSE(IssuedSerials::Parse("20-10\n").has_value());
  CHECK_FALSE(IssuedSerials::Parse("-10\n").has_value());
}

TEST_CASE("issued serials: an empty list holds nothing") {
  auto list = IssuedSerials::Parse("# nothing issued yet\n");
  REQUIRE(list.has_value());
  CHECK_FALSE(list->Contains(Serial(1)));
}
