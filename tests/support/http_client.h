// A deliberately small HTTP/1.x client for the tests, the HTTP fuzz target and the abuse checks: it sends
// exactly the bytes it is given (garbage, pipelined requests, half a header) and reads back whatever the
// server says, so the checks see the wire, not what a forgiving library makes of it.
// Thread safety: free functions with no shared state; call them from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace ocsp::testing {

struct HttpResponse {
  int major = 1;  // as the status line says (see ParseHttpResponses)
  int minor = 1;
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header of that name (case-insensitive), or nullopt.
  [[nodiscard]] std::optional<std::string> Header(std::string_view name) const;
};

struct ParsedResponses {
  std::vector<HttpResponse> responses;
  // Bytes after the last complete response: a response cut short (the peer reset the connection) or, for a
  // response without Content-Length, nothing (its body runs to the end of the stream).
  std::size_t incomplete_tail = 0;
};

// Splits a byte stream from a server into responses. A response without Content-Length takes the rest of the
// stream as its body (HTTP/1.0 without keep-alive). With `bodiless_allowed` (the requests included HEAD), a
// response whose announced body is absent because another response starts right away is accepted. Refuses
// anything that is not a well-formed status line and header block, with the offset of the fault. The version
// is read, not judged: HTTP/<int>.<int>.
Result<ParsedResponses> ParseHttpResponses(std::string_view stream, bool bodiless_allowed = false);

struct Exchange {
  std::string received;
  bool closed = false;     // the server closed (FIN) or reset the connection
  bool reset = false;      // ECONNRESET / EPIPE on our side
  bool timed_out = false;  // neither a reply nor a close within the timeout
  std::chrono::microseconds elapsed{0};
};

// Connects to 127.0.0.1:port, writes `bytes`, then (with `half_close`) shuts down the sending side, and reads
// until the server closes or `timeout` passes. Fails only when the connection cannot be made.
Result<Exchange> ExchangeBytes(std::uint16_t port, std::string_view bytes, std::chrono::milliseconds timeout,
                               bool half_close = true);

// One POST of an OCSP request (Connection: close); the parsed response.
Result<HttpResponse> PostOcsp(std::uint16_t port, ByteView der,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// A POST request's bytes, for pipelining and keep-alive.
std::string OcspPostRequest(ByteView der, bool keep_alive = true);

// A keep-alive client on one connection: requests are sent and answered one at a time.
class HttpConnection {
 public:
  static Result<HttpConnection> Connect(std::uint16_t port);
  HttpConnection(HttpConnection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  HttpConnection& operator=(HttpConnection&&) = delete;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  ~HttpConnection();

  // Sends `request` and reads exactly one response (Content-Length framed).
  Result<HttpResponse> RoundTrip(std::string_view request, std::chrono::milliseconds timeout);
  [[nodiscard]] int fd() const { return fd_; }

 private:
  explicit HttpConnection(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buffer_;  // bytes read past the last response
};

// Open sockets of this process (/proc/self/fd entries that are sockets), to check that connections are not
// leaked. Sockets only: other descriptors come and go for reasons of their own (a sanitizer's symbolizer
// keeps two pipes open once it has started).
std::size_t OpenSockets();

}  // namespace ocsp::testing
