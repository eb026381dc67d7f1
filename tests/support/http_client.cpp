#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <strings.h>

namespace ocsp::testing {
namespace {

using Steady = std::chrono::steady_clock;

// Owns a socket for the length of one function.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<int> ConnectLoopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrorCode::kIo, std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    int error = errno;
    // A signal (libFuzzer's timer) interrupted it: the connection goes on; wait for it and read its outcome.
    if (error == EINTR) {
      pollfd poll_fd{fd, POLLOUT, 0};
      while (::poll(&poll_fd, 1, 10000) < 0 && errno == EINTR) {
      }
      socklen_t length = sizeof error;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    }
    if (error != 0) {
      ::close(fd);
      return Fail(ErrorCode::kIo, std::string("connect: ") + std::strerror(error));
    }
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Writes everything unless the peer goes away; false on EPIPE/ECONNRESET.
bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool ParseInt(std::string_view text, int& out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return std::from_chars(text.data(), text.data() + text.size(), out).ec == std::errc{};
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (IEquals(key, name)) return value;
  }
  return std::nullopt;
}

Result<ParsedResponses> ParseHttpResponses(std::string_view stream, bool bodiless_allowed) {
  ParsedResponses parsed;
  std::size_t at = 0;
  auto fault = [&](std::size_t offset, const std::string& what) {
    return Fail(ErrorCode::kInvalidArgument, "at offset " + std::to_string(offset) + ": " + what);
  };
  while (at < stream.size()) {
    const std::size_t start = at;
    const std::size_t end_of_head = stream.find("\r\n\r\n", at);
    if (end_of_head == std::string_view::npos) {
      // A head cut short can only be a prefix of a status line and headers.
      if (!stream.substr(at).starts_with(std::string_view("HTTP/").substr(0, std::min<std::size_t>(5, stream.size() - at)))) {
        return fault(at, "bytes that do not start a response");
      }
      parsed.incomplete_tail = stream.size() - at;
      return parsed;
    }
    const std::string_view head = stream.substr(at, end_of_head - at);
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    // "HTTP/" major "." minor SP 3DIGIT [SP reason]. The version is checked by the caller: libevent echoes
    // the request's own (HTTP/0.9, HTTP/-1.5) in the errors it sends before the responder sees a request.
    HttpResponse response;
    const std::size_t space = status_line.find(' ');
    const std::string_view version =
        status_line.starts_with("HTTP/") && space != std::string_view::npos ? status_line.substr(5, space - 5)
                                                                            : std::string_view();
    const std::size_t dot = version.find('.');
    auto signed_int = [](std::string_view text, int& out) {
      const bool negative = text.starts_with('-');
      if (!ParseInt(negative ? text.substr(1) : text, out)) return false;
      if (negative) out = -out;
      return true;
    };
    if (dot == std::string_view::npos || !signed_int(version.substr(0, dot), response.major) ||
        !signed_int(version.substr(dot + 1), response.minor)) {
      return fault(at, "not a status line: " + std::string(status_line.substr(0, 80)));
    }
    const std::string_view after = status_line.substr(space + 1);
    if (after.size() < 3 || (after.size() > 3 && after[3] != ' ') || !ParseInt(after.substr(0, 3), response.status) ||
        response.status < 100 || response.status > 599) {
      return fault(at, "bad status code: " + std::string(status_line.substr(0, 80)));
    }
    response.reason = std::string(after.size() > 4 ? after.substr(4) : std::string_view());
    for (char c : response.reason) {
      if (c == '\r' || c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t')) {
        return fault(at, "control character in the reason phrase");
      }
    }
    std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!rest.empty()) {
      const std::size_t eol = rest.find("\r\n");
      const std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) return fault(at, "header line without a name");
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      for (char c : line) {
        if (c == '\r' || c == '\n' || c == '\0') return fault(at, "control character in a header");
      }
      response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    at = end_of_head + 4;
    const auto length_text = response.Header("Content-Length");
    if (!length_text) {
      if (response.Header("Transfer-Encoding")) return fault(at, "chunked replies are not expected from this server");
      // Delimited by the end of the stream.
      response.body = std::string(stream.substr(at));
      at = stream.size();
      parsed.responses.push_back(std::move(response));
      break;
    }
    int length = 0;
    if (!ParseInt(*length_text, length)) return fault(at, "bad Content-Length: " + *length_text);
    // A HEAD answer carries GET's Content-Length and no body: the next response follows at once, or the stream
    // ends there (found by http_fuzzer once HEAD was answered).
    if (bodiless_allowed && length > 0 && (at == stream.size() || stream.substr(at).starts_with("HTTP/1."))) {
      length = 0;
    }
    if (stream.size() - at < static_cast<std::size_t>(length)) {
      parsed.incomplete_tail = stream.size() - start;
      return parsed;
    }
    response.body = std::string(stream.substr(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
    parsed.responses.push_back(std::move(response));
  }
  return parsed;
}

Result<Exchange> ExchangeBytes(std::uint16_t port, std::string_view bytes, std::chrono::milliseconds timeout,
                               bool half_close) {
  const auto started = Steady::now();
  auto connected = ConnectLoopback(port);
  if (!connected) return std::unexpected(connected.error());
  Fd socket{*connected};
  Exchange exchange;
  if (!WriteAll(socket.fd, bytes)) exchange.reset = true;
  if (half_close) ::shutdown(socket.fd, SHUT_WR);
  const auto deadline = started + timeout;
  char buffer[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) {
      exchange.timed_out = true;
      break;
    }
    pollfd poll_fd{socket.fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the deadline check above ends the loop
    const ssize_t got = ::recv(socket.fd, buffer, sizeof buffer, 0);
    if (got > 0) {
      exchange.received.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    exchange.closed = true;
    if (got < 0) exchange.reset = true;
    break;
  }
  exchange.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - started);
  return exchange;
}

std::string OcspPostRequest(ByteView der, bool keep_alive) {
  std::string request = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n";
  if (!keep_alive) request += "Connection: close\r\n";
  request += "Content-Length: " + std::to_string(der.size()) + "\r\n\r\n";
  request.append(reinterpret_cast<const char*>(der.data()), der.size());
  return request;
}

Result<HttpResponse> PostOcsp(std::uint16_t port, ByteView der, std::chrono::milliseconds timeout) {
  auto exchange = ExchangeBytes(port, OcspPostRequest(der, /*keep_alive=*/false), timeout, /*half_close=*/false);
  if (!exchange) return std::unexpected(exchange.error());
  if (exchange->timed_out) return Fail(ErrorCode::kUnavailable, "no complete reply within the timeout");
  auto parsed = ParseHttpResponses(exchange->received);
  if (!parsed) return std::unexpected(parsed.error());
  if (parsed->responses.size() != 1 || parsed->incomplete_tail != 0) {
    return Fail(ErrorCode::kInvalidArgument, "expected one response, got " +
                                                 std::to_string(parsed->responses.size()) + " and " +
                                                 std::to_string(parsed->incomplete_tail) + " bytes more");
  }
  return std::move(parsed->responses[0]);
}

Result<HttpConnection> HttpConnection::Connect(std::uint16_t port) {
  auto fd = ConnectLoopback(port);
  if (!fd) return std::unexpected(fd.error());
  return HttpConnection(*fd);
}

HttpConnection::~HttpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<HttpResponse> HttpConnection::RoundTrip(std::string_view request, std::chrono::milliseconds timeout) {
  if (!WriteAll(fd_, request)) return Fail(ErrorCode::kIo, "the server closed the connection");
  const auto deadline = Steady::now() + timeout;
  char buffer[16384];
  for (;;) {
    // One whole response in the buffer? (Only Content-Length framing: this server's keep-alive replies.)
    const std::size_t end_of_head = buffer_.find("\r\n\r\n");
    if (end_of_head != std::string::npos) {
      // Content-Length, found by hand: the head alone does not parse as a whole response.
      std::string head = buffer_.substr(0, end_of_head + 2);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::size_t field = head.find("\r\ncontent-length:");
      if (field == std::string::npos) return Fail(ErrorCode::kInvalidArgument, "a keep-alive reply without Content-Length");
      const std::size_t value = head.find_first_not_of(" \t", field + 17);
      std::size_t length = 0;
      std::from_chars(head.data() + value, head.data() + head.size(), length);
      const std::size_t total = end_of_head + 4 + length;
      if (buffer_.size() >= total) {
        auto parsed = ParseHttpResponses(std::string_view(buffer_).substr(0, total));
        if (!parsed) return std::unexpected(parsed.error());
        buffer_.erase(0, total);
        return std::move(parsed->responses.at(0));
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) return Fail(ErrorCode::kUnavailable, "no complete reply within the timeout");
    pollfd poll_fd{fd_, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Fail(ErrorCode::kIo, "the server closed the connection before replying");
    buffer_.append(buffer, static_cast<std::size_t>(got));
  }
}

std::size_t OpenSockets() {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path(), error).string().starts_with("socket:")) ++count;
  }
  return count;
}

}  // namespace ocsp::testing
