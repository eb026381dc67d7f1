// The HTTP/1.x request parser of the front end (responder/http1.h): what it takes, and what it refuses with
// which status, before any handler sees a request.
#include <doctest/doctest.h>

#include <string>

#include "responder/http1.h"

using ocsp::responder::HttpLimits;
using ocsp::responder::HttpMethod;
using ocsp::responder::ParseHttpRequest;
using ocsp::responder::ParseOutcome;
using ocsp::responder::ParseState;

namespace {

const HttpLimits kLimits{.max_head_bytes = 1024, .max_body_bytes = 64};

int RefusedWith(const std::string& input) {
  ParseState state;
  const ParseOutcome outcome = ParseHttpRequest(input, kLimits, state);
  return outcome == ParseOutcome::kError ? state.error_status : 0;
}

}  // namespace

TEST_CASE("http1: a GET with Host, leading empty lines and bare LF line ends is one complete request") {
  ParseState state;
  const std::string input = "\r\nGET /abc%2F HTTP/1.1\nHost: ocsp\nIf-None-Match: W/\"1\"\n\nGET /next";
  REQUIRE(ParseHttpRequest(input, kLimits, state) == ParseOutcome::kComplete);
  CHECK(state.request.method == HttpMethod::kGet);
  CHECK(state.request.target == "/abc%2F");
  CHECK(state.request.minor_version == 1);
  CHECK(state.request.keep_alive);
  REQUIRE(state.request.if_none_match.has_value());
  CHECK(*state.request.if_none_match == "W/\"1\"");
  CHECK(input.substr(state.consumed) == "GET /next");
}

TEST_CASE("http1: a POST body is taken by Content-Length, and waited for until it is all here") {
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\ncontent-type: application/ocsp-request\r\n"
                           "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n";
  ParseState state;
  CHECK(ParseHttpRequest(head + "ab", kLimits, state) == ParseOutcome::kIncomplete);
  CHECK(state.expects_continue);  // the front end says 100 Continue once
  state = {};
  const std::string whole = head + "abcdeGET";  // the request's views point into it
  REQUIRE(ParseHttpRequest(whole, kLimits, state) == ParseOutcome::kComplete);
  CHECK(state.request.method == HttpMethod::kPost);
  REQUIRE(state.request.content_type.has_value());
  CHECK(*state.request.content_type == "application/ocsp-request");
  CHECK(state.request.body.size() == 5);
  CHECK(state.consumed == head.size() + 5);
  // The same length twice is one length; two lengths are a smuggling attempt.
  state = {};
  CHECK(ParseHttpRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", kLimits,
                         state) == ParseOutcome::kComplete);
  CHECK(RefusedWith("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy") == 400);
  CHECK(RefusedWith("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx") == 400);
  CHECK(RefusedWith("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n") == 400);
}

TEST_CASE("http1: keep-alive follows the version and the Connection field") {
  auto keeps = [](const std::string& input) {
    ParseState state;
    REQUIRE(ParseHttpRequest(input, kLimits, state) == ParseOutcome::kComplete);
    return state.request.keep_alive;
  };
  CHECK(keeps("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK_FALSE(keeps("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n"));
  CHECK_FALSE(keeps("GET / HTTP/1.0\r\n\r\n"));
  CHECK(keeps("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  CHECK(keeps("GET / HTTP/1.7\r\nHost: a\r\n\r\n"));  // a higher minor version is 1.1
}

TEST_CASE("http1: each malformed or oversized request is refused with its own status") {
  CHECK(RefusedWith("GET / HTTP/1.1\r\n\r\n") == 400);                              // no Host (RFC 9112 3.2)
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);        // two Hosts
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n") == 400);  // obs-fold
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == 400);                  // space before the colon
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n") == 400);                // bare CR
  CHECK(RefusedWith("GET  / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);                  // empty target
  CHECK(RefusedWith("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n") == 400);
  CHECK(RefusedWith("G(T / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);                  // not a token
  CHECK(RefusedWith("GET / HTTP/-1.5\r\nHost: a\r\n\r\n") == 400);
  CHECK(RefusedWith("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505);
  CHECK(RefusedWith("GET / HTTP/0.9\r\n\r\n") == 505);
  CHECK(RefusedWith("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 411);
  CHECK(RefusedWith("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n") == 413);
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n") == 417);
  CHECK(RefusedWith("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n") == 431);  // no end of head in sight
  CHECK(RefusedWith("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1100, 'a') + "\r\n\r\n") == 431);
  CHECK(RefusedWith(std::string(2000, '\n')) == 431);  // empty lines count too
  // A request-line that cannot become valid is refused before its end arrives (garbage gets its 400 at once).
  CHECK(RefusedWith(std::string("\x16\x03\x01\x02\x00", 5)) == 400);  // a TLS ClientHello's start
  CHECK(RefusedWith("GE\x01") == 400);
  CHECK(RefusedWith(" GET") == 400);
  CHECK(RefusedWith("GET  ") == 400);
  CHECK(RefusedWith("GET /a\rb") == 400);
  CHECK(RefusedWith("GET /a HTTQ") == 400);
  CHECK(RefusedWith("GET /a HTTP/1.1x") == 400);
  CHECK(RefusedWith("GET /a HTTP/1.1\r\nHost: a\r\n") == 0);  // the line is whole and fine: headers to come
  for (const std::string prefix : {"G", "GET", "GET ", "GET /a", "GET /a ", "GET /a HTTP/", "GET /a HTTP/1.", "GET /a HTTP/1.1",
                                   "GET /a HTTP/1.1\r", "GET /a HTTP/2.0\r", "\r\nPOST"}) {
    CAPTURE(prefix);
    CHECK(RefusedWith(prefix) == 0);
  }
  // Not refused yet: more may come.
  ParseState state;
  CHECK(ParseHttpRequest("GET / HTTP/1.1\r\nHost: a\r\n", kLimits, state) == ParseOutcome::kIncomplete);
  CHECK(ParseHttpRequest("", kLimits, state) == ParseOutcome::kIncomplete);
}

TEST_CASE("http1: methods other than GET, HEAD and POST reach the handler as kOther, by their exact name") {
  ParseState state;
  REQUIRE(ParseHttpRequest("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", kLimits, state) == ParseOutcome::kComplete);
  CHECK(state.request.method == HttpMethod::kOther);
  CHECK(state.request.method_name == "OPTIONS");
  state = {};
  REQUIRE(ParseHttpRequest("get / HTTP/1.1\r\nHost: a\r\n\r\n", kLimits, state) == ParseOutcome::kComplete);
  CHECK(state.request.method == HttpMethod::kOther);  // method names are case-sensitive (RFC 9110 9.1)
  state = {};
  REQUIRE(ParseHttpRequest("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", kLimits, state) == ParseOutcome::kComplete);
  CHECK(state.request.method == HttpMethod::kHead);
}
