#include "responder/http1.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <span>

#include "common/log.h"
#include "responder/connection_balancer.h"
#include "responder/http_cache.h"
#include "responder/verifiers.h"

namespace ocsp::responder {
namespace {

using Steady = std::chrono::steady_clock;

// Written straight to a connection that is refused at accept: nothing else is known of it yet.
constexpr std::string_view kServiceUnavailable =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
    "Cache-Control: max-age=0, no-cache\r\nRetry-After: 1\r\n\r\n";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::size_t kMinInput = 4096;
// Past this much unsent output a connection reads no more requests until its peer catches up.
constexpr std::size_t kOutputHighWater = 256 * 1024;
// A buffer grown for a large request is given back once it is empty.
constexpr std::size_t kKeepCapacity = 16384;
// After a closing reply, what the peer still sends is read and dropped for a while (RFC 9112 9.6): closing a
// socket with unread input sends a reset, which can destroy our reply (a 413 or 431 most of all) in the
// peer's receive buffer before it is read. Bounded in time, in silence and in bytes; the connection keeps
// its slot under the caps meanwhile. 64 KiB covers a client's honest mistake (an OCSP request is a few
// hundred bytes); past it the peer is sending on regardless, and reading its megabytes only to drop them cost
// the abuse bench's oversize attack a full core (with 4 MiB) for no one's benefit: it gets the reset.
constexpr auto kLingerTotal = std::chrono::seconds(2);
constexpr timeval kLingerSilence{0, 500'000};
constexpr std::size_t kLingerBytes = 64 << 10;
// At the overall connection cap, a new connection takes the place of the longest-idle keep-alive connection
// among a sample of this many, if that one has been idle at least kEvictableIdle: connections that only sit
// there are the cheapest way to lock verifiers out, and a client whose idle connection closes reconnects.
// 250 ms: a client that has just connected has sent its request well within it, and a verifier connecting
// during a flood of idle connections gets in on its first try.
constexpr std::size_t kEvictionSample = 32;
constexpr auto kEvictableIdle = std::chrono::milliseconds(250);
// How long after an accept the balancer looks at the shares: clients open their connections in a burst, and
// a share looked at in mid-burst would move connections that the rest of the burst evens out anyway.
constexpr timeval kBalanceDelay{0, 200'000};
// One look moves at most this many connections and asks for the CPU of at most kLocalitySample (from a rotating
// cursor), so that even at tens of thousands of connections a look holds the loop for well under a millisecond;
// a look that had more to do than it did is followed by another after kBalanceDelay.
constexpr std::size_t kBalanceBatch = 64;
constexpr std::size_t kLocalitySample = 256;

// The CPU that processed the socket's latest incoming packet (SO_INCOMING_CPU), or -1.
int IncomingCpu(int fd) {
  int cpu = -1;
  socklen_t length = sizeof cpu;
  if (::getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &length) != 0) return -1;
  return cpu;
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view TrimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Calls `token(text)` for each comma-separated element of a field value.
template <typename F>
void ForEachToken(std::string_view value, F&& token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    token(TrimWhitespace(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// Whether `prefix`, the start of a request-line not yet ended by LF, can still become one the parser below
// takes: so that garbage (a TLS ClientHello, random bytes) is answered 400 at once instead of waiting for a
// line end that never comes, and that a client that half-closes after it still gets the answer. Accepts
// exactly the prefixes of `token SP target SP HTTP/d.d [CR]`.
bool CouldBeRequestLine(std::string_view prefix) {
  if (const auto cr = prefix.find('\r'); cr != std::string_view::npos) {
    if (cr + 1 != prefix.size()) return false;  // a CR is only allowed just before the LF
    prefix.remove_suffix(1);
  }
  std::size_t i = 0;
  while (i < prefix.size() && prefix[i] != ' ') {
    if (!IsTokenChar(prefix[i])) return false;
    ++i;
  }
  if (i == prefix.size()) return true;
  if (i == 0) return false;
  const std::size_t target = ++i;
  while (i < prefix.size() && prefix[i] != ' ') {
    const auto c = static_cast<unsigned char>(prefix[i]);
    if (c <= 0x20 || c == 0x7f) return false;
    ++i;
  }
  if (i == prefix.size()) return true;
  if (i == target) return false;
  const std::string_view version = prefix.substr(i + 1);
  constexpr std::string_view kShape = "HTTP/d.d";
  if (version.size() > kShape.size()) return false;
  for (std::size_t k = 0; k < version.size(); ++k) {
    if (kShape[k] == 'd' ? (version[k] < '0' || version[k] > '9') : version[k] != kShape[k]) return false;
  }
  return true;
}

ParseOutcome Refuse(ParseState& state, int status, std::string_view reason) {
  state.error_status = status;
  state.error_reason = reason;
  return ParseOutcome::kError;
}

}  // namespace

ParseOutcome ParseHttpRequest(std::string_view input, const HttpLimits& limits, ParseState& state) {
  // RFC 9112 2.2: empty lines before a request-line are ignored (they count towards the head's bound).
  std::size_t start = 0;
  while (start < input.size() && (input[start] == '\r' || input[start] == '\n')) ++start;

  // The head ends at the first empty line; until it is here, only its size is checked.
  std::size_t head_end = std::string_view::npos;  // index just past the empty line
  for (std::size_t position = start; position < input.size();) {
    const std::size_t newline = input.find('\n', position);
    if (newline == std::string_view::npos) break;
    const std::size_t length = newline - position;
    if (length == 0 || (length == 1 && input[position] == '\r')) {
      head_end = newline + 1;
      break;
    }
    position = newline + 1;
  }
  if (head_end == std::string_view::npos) {
    if (input.size() > limits.max_head_bytes) return Refuse(state, 431, "Request Header Fields Too Large");
    const std::string_view first_line = input.substr(start, input.find('\n', start) - start);
    if (!CouldBeRequestLine(first_line)) return Refuse(state, 400, "Bad Request");
    return ParseOutcome::kIncomplete;
  }
  if (head_end > limits.max_head_bytes) return Refuse(state, 431, "Request Header Fields Too Large");

  HttpRequest& request = state.request;
  request = HttpRequest{};
  std::optional<std::size_t> content_length;
  bool transfer_encoding = false;
  bool host = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  state.expects_continue = false;

  std::size_t position = start;
  bool first = true;
  while (position < head_end) {
    const std::size_t newline = input.find('\n', position);
    std::string_view line = input.substr(position, newline - position);
    position = newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
      return Refuse(state, 400, "Bad Request");
    }
    if (first) {
      first = false;
      const auto space = line.find(' ');
      if (space == std::string_view::npos || space == 0) return Refuse(state, 400, "Bad Request");
      request.method_name = line.substr(0, space);
      if (!std::all_of(request.method_name.begin(), request.method_name.end(), IsTokenChar)) {
        return Refuse(state, 400, "Bad Request");
      }
      line.remove_prefix(space + 1);
      const auto second = line.find(' ');
      if (second == std::string_view::npos || second == 0) return Refuse(state, 400, "Bad Request");
      request.target = line.substr(0, second);
      for (const char c : request.target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return Refuse(state, 400, "Bad Request");
      }
      const std::string_view version = line.substr(second + 1);
      if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' || version[5] < '0' ||
          version[5] > '9' || version[7] < '0' || version[7] > '9') {
        return Refuse(state, 400, "Bad Request");
      }
      // RFC 9110 6.2: a higher minor version is answered as the highest we speak; another major is refused.
      if (version[5] != '1') return Refuse(state, 505, "HTTP Version Not Supported");
      request.minor_version = version[7] == '0' ? 0 : 1;
      if (request.method_name == "GET") request.method = HttpMethod::kGet;
      else if (request.method_name == "HEAD") request.method = HttpMethod::kHead;
      else if (request.method_name == "POST") request.method = HttpMethod::kPost;
      continue;
    }
    // obs-fold and whitespace before the colon are refused (RFC 9112 5.1, 5.2): both have smuggled requests.
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Refuse(state, 400, "Bad Request");
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return Refuse(state, 400, "Bad Request");
    const std::string_view value = TrimWhitespace(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-length")) {
      std::size_t length = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          (content_length && *content_length != length)) {
        return Refuse(state, 400, "Bad Request");
      }
      content_length = length;
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      transfer_encoding = true;
    } else if (EqualsIgnoreCase(name, "host")) {
      if (host) return Refuse(state, 400, "Bad Request");  // RFC 9112 3.2
      host = true;
    } else if (EqualsIgnoreCase(name, "connection")) {
      ForEachToken(value, [&](std::string_view token) {
        if (EqualsIgnoreCase(token, "close")) connection_close = true;
        if (EqualsIgnoreCase(token, "keep-alive")) connection_keep_alive = true;
      });
    } else if (EqualsIgnoreCase(name, "content-type")) {
      request.content_type = value;
    } else if (EqualsIgnoreCase(name, "if-none-match")) {
      request.if_none_match = value;
    } else if (EqualsIgnoreCase(name, "expect")) {
      if (!EqualsIgnoreCase(value, "100-continue")) return Refuse(state, 417, "Expectation Failed");
      state.expects_continue = request.minor_version == 1;
    }
  }
  // A body sent chunked has no length known in advance; RFC 9112 6.3 lets a server refuse it with 411, and
  // its end cannot be found, so the connection closes.
  if (transfer_encoding) return Refuse(state, 411, "Length Required");
  const std::size_t body_length = content_length.value_or(0);
  if (body_length > limits.max_body_bytes) return Refuse(state, 413, "Content Too Large");
  if (request.minor_version == 1 && !host) return Refuse(state, 400, "Bad Request");  // RFC 9112 3.2
  request.keep_alive = request.minor_version == 1 ? !connection_close : connection_keep_alive && !connection_close;
  state.head_bytes = head_end;
  if (input.size() - head_end < body_length) return ParseOutcome::kIncomplete;
  request.body = ByteView(reinterpret_cast<const std::uint8_t*>(input.data() + head_end), body_length);
  state.consumed = head_end + body_length;
  state.expects_continue = false;
  return ParseOutcome::kComplete;
}

// One accepted connection. Owned by its HttpFrontEnd (connections_), which frees it in Close, or, when a
// deferred reply is still due, once the reply comes.
class HttpConnection {
 public:
  HttpConnection(HttpFrontEnd& owner, int fd, const sockaddr* address, socklen_t length, Address128 key)
      : owner_(owner), fd_(fd), address_key_(key) {
    std::memcpy(&peer_, address, std::min<std::size_t>(length, sizeof(peer_)));
    last_activity_ = Steady::now();
  }
  ~HttpConnection() {
    if (fd_ >= 0) ::close(fd_);
  }

  Result<void> Start(event_base* base) {
    read_event_.reset(event_new(base, fd_, EV_READ | EV_PERSIST, &HttpConnection::OnReadable, this));
    write_event_.reset(event_new(base, fd_, EV_WRITE | EV_PERSIST, &HttpConnection::OnWritable, this));
    if (!read_event_ || !write_event_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
    return SetReading(true);
  }

 private:
  friend class HttpFrontEnd;
  friend class HttpExchange;

  static void OnReadable(evutil_socket_t, short what, void* self) {
    auto* connection = static_cast<HttpConnection*>(self);
    if (connection->lingering_) connection->Linger(what);
    else connection->Read();
  }
  static void OnWritable(evutil_socket_t, short, void* self) {
    auto* connection = static_cast<HttpConnection*>(self);
    if (connection->Flush()) connection->Process();
  }

  Result<void> SetReading(bool on) {
    if (on == reading_ || fd_ < 0) return {};
    if ((on ? event_add(read_event_.get(), nullptr) : event_del(read_event_.get())) != 0) {
      return Fail(ErrorCode::kInternal, "event_add failed");
    }
    reading_ = on;
    return {};
  }

  [[nodiscard]] std::size_t pending_output() const { return output_.size() - output_sent_; }
  [[nodiscard]] bool has_partial_request() const { return input_begin_ < input_end_; }
  // Between two requests, with nothing of either kept here: closing it loses nothing, and another loop can
  // take its socket over (what the peer sends meanwhile waits in the socket).
  [[nodiscard]] bool quiescent() const {
    return !awaiting_ && !detached_ && !lingering_ && !close_after_write_ && !peer_closed_ && !continue_sent_ &&
           !has_partial_request() && pending_output() == 0;
  }
  [[nodiscard]] std::size_t input_capacity() const {
    return owner_.limits_.max_head_bytes + owner_.limits_.max_body_bytes + 1024;
  }

  void Read() {
    if (input_begin_ > 0 && input_.size() - input_end_ < 1024) {
      std::memmove(input_.data(), input_.data() + input_begin_, input_end_ - input_begin_);
      input_end_ -= input_begin_;
      input_begin_ = 0;
    }
    if (input_.size() - input_end_ < 1024 && input_.size() < input_capacity()) {
      input_.resize(std::min(input_capacity(), std::max(kMinInput, input_.size() * 2)));
    }
    if (input_end_ == input_.size()) {  // cannot happen: the parser refuses a request this large first
      owner_.Close(this);
      return;
    }
    const ssize_t received = ::recv(fd_, input_.data() + input_end_, input_.size() - input_end_, 0);
    if (received > 0) {
      if (input_begin_ == input_end_) request_started_ = Steady::now();
      input_end_ += static_cast<std::size_t>(received);
      last_activity_ = Steady::now();
      Process();
      return;
    }
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    // End of stream (or a reset): answer what is complete, then close.
    peer_closed_ = true;
    if (received < 0) {
      owner_.Close(this);
      return;
    }
    (void)SetReading(false);
    Process();
  }

  void StartLingering() {
    lingering_ = true;
    linger_until_ = Steady::now() + kLingerTotal;
    input_begin_ = input_end_ = 0;
    if (input_.size() < kMinInput) input_.resize(kMinInput);
    reading_ = true;
    if (event_add(read_event_.get(), &kLingerSilence) != 0) owner_.Close(this);
  }

  // Drops what arrives after a closing reply; closes at the peer's end, after half a second of silence, past
  // the total time or past the byte bound.
  void Linger(short what) {
    if (what & EV_READ) {
      const ssize_t received = ::recv(fd_, input_.data(), input_.size(), 0);
      if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (received > 0) {
        lingered_bytes_ += static_cast<std::size_t>(received);
        if (lingered_bytes_ <= kLingerBytes && Steady::now() < linger_until_) return;
      }
    }
    owner_.Close(this);
  }

  // Answers the complete requests in the input, in order, until one is deferred; then writes.
  void Process() {
    while (!awaiting_ && !close_after_write_ && has_partial_request() && pending_output() <= kOutputHighWater) {
      ParseState state;
      const std::string_view input(input_.data() + input_begin_, input_end_ - input_begin_);
      const ParseOutcome outcome = ParseHttpRequest(input, owner_.limits_, state);
      if (outcome == ParseOutcome::kIncomplete) {
        if (state.expects_continue && !continue_sent_) {
          output_.append(kContinue);
          continue_sent_ = true;
        }
        break;
      }
      if (outcome == ParseOutcome::kError) {
        input_begin_ = input_end_;
        HttpReply reply;
        reply.status = state.error_status;
        reply.reason = state.error_reason;
        reply.Add("Cache-Control", kNoCache);
        reply.close = true;
        Append(reply, state.request.minor_version, false);
        break;
      }
      input_begin_ += state.consumed;
      continue_sent_ = false;
      request_started_ = Steady::now();  // the next pipelined request's clock, if it has begun
      HttpExchange exchange(owner_, *this, state.request);
      owner_.handler_.OnRequest(exchange);
      if (!exchange.answered_) {  // a handler bug; never leave the client hanging
        HttpReply reply;
        reply.status = 500;
        reply.reason = "Internal Server Error";
        reply.close = true;
        Append(reply, state.request.minor_version, false);
      }
    }
    if (input_begin_ == input_end_) {
      input_begin_ = input_end_ = 0;
      if (input_.size() > kKeepCapacity) {
        input_.clear();
        input_.shrink_to_fit();
      }
    }
    if (!Flush()) return;
    if (peer_closed_ && !awaiting_ && pending_output() == 0) {
      owner_.Close(this);
      return;
    }
    (void)SetReading(!peer_closed_ && !awaiting_ && !close_after_write_ && pending_output() <= kOutputHighWater);
  }

  // Formats `reply` to the request's version and keep-alive into the output.
  void Append(const HttpReply& reply, int minor_version, bool keep_alive) {
    const bool close = reply.close || !keep_alive || owner_.draining_;
    char number[24];
    output_.append("HTTP/1.1 ");
    output_.append(number, std::to_chars(number, number + sizeof(number), reply.status).ptr);
    output_.push_back(' ');
    output_.append(reply.reason);
    output_.append("\r\n");
    output_.append(owner_.DateField());
    for (std::size_t i = 0; i < reply.header_count; ++i) {
      output_.append(reply.headers[i].name);
      output_.append(": ");
      output_.append(reply.headers[i].value);
      output_.append("\r\n");
    }
    const bool bodiless = reply.status == 304 || reply.status == 204 || reply.status < 200;
    if (!bodiless) {
      output_.append("Content-Length: ");
      output_.append(number, std::to_chars(number, number + sizeof(number), reply.body.size()).ptr);
      output_.append("\r\n");
    }
    if (close) output_.append("Connection: close\r\n");
    else if (minor_version == 0) output_.append("Connection: keep-alive\r\n");
    output_.append("\r\n");
    if (!bodiless && !reply.head) output_.append(reinterpret_cast<const char*>(reply.body.data()), reply.body.size());
    if (close) {
      close_after_write_ = true;
      input_begin_ = input_end_ = 0;  // what follows a closing reply is never answered
    }
  }

  // Writes what is pending. False when the connection is gone (closed or freed) or only lingers.
  bool Flush() {
    while (pending_output() > 0) {
      const ssize_t sent = ::send(fd_, output_.data() + output_sent_, pending_output(), MSG_NOSIGNAL);
      if (sent > 0) {
        output_sent_ += static_cast<std::size_t>(sent);
        last_activity_ = Steady::now();
        continue;
      }
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!writing_ && event_add(write_event_.get(), nullptr) == 0) writing_ = true;
        return true;
      }
      owner_.Close(this);
      return false;
    }
    output_.clear();
    output_sent_ = 0;
    if (output_.capacity() > kKeepCapacity * 4) output_.shrink_to_fit();
    if (writing_) {
      event_del(write_event_.get());
      writing_ = false;
    }
    if (close_after_write_) {
      // Our side is done; the peer sees the end after the last reply instead of a reset.
      ::shutdown(fd_, SHUT_WR);
      if (peer_closed_ || owner_.draining_) owner_.Close(this);
      else StartLingering();
      return false;
    }
    return true;
  }

  HttpFrontEnd& owner_;
  int fd_;
  sockaddr_storage peer_{};
  Address128 address_key_;
  std::size_t index_ = 0;  // in owner_.connections_
  EventPtr read_event_;
  EventPtr write_event_;
  bool reading_ = false;
  bool writing_ = false;
  bool awaiting_ = false;           // a deferred reply is due
  bool peer_closed_ = false;        // end of stream read
  bool close_after_write_ = false;  // a closing reply is queued
  bool continue_sent_ = false;
  bool detached_ = false;  // closed while a deferred reply was due: freed when it comes
  bool lingering_ = false;  // the closing reply is sent; input is dropped until the socket closes
  int foreign_cpu_ = -1;    // another worker's CPU its packets arrived on at the balancer's last look
  std::size_t lingered_bytes_ = 0;
  Steady::time_point linger_until_{};
  std::vector<char> input_;
  std::size_t input_begin_ = 0;
  std::size_t input_end_ = 0;
  std::string output_;
  std::size_t output_sent_ = 0;
  Steady::time_point request_started_{};
  Steady::time_point last_activity_{};
  int deferred_minor_ = 1;
  bool deferred_keep_alive_ = true;
};

const sockaddr_storage& HttpExchange::peer() const { return connection_.peer_; }

void HttpExchange::Reply(const HttpReply& reply) {
  if (answered_) return;
  answered_ = true;
  connection_.Append(reply, request_.minor_version, request_.keep_alive);
}

HttpTicket HttpExchange::Defer() {
  answered_ = true;
  connection_.awaiting_ = true;
  connection_.deferred_minor_ = request_.minor_version;
  connection_.deferred_keep_alive_ = request_.keep_alive;
  return HttpTicket(&connection_);
}

HttpFrontEnd::HttpFrontEnd(event_base* base, HttpHandler& handler, HttpLimits limits,
                           ConnectionLimits& connection_limits, ConnectionCounters& counters)
    : base_(base), handler_(handler), limits_(limits), connection_limits_(connection_limits), counters_(counters) {
  sweep_.reset(event_new(base_, -1, EV_PERSIST, &HttpFrontEnd::OnSweep, this));
  resume_accept_.reset(evtimer_new(base_, &HttpFrontEnd::OnResumeAccept, this));
  balance_check_.reset(evtimer_new(base_, &HttpFrontEnd::OnBalanceCheck, this));
  handed_over_.reset(event_new(base_, -1, 0, &HttpFrontEnd::OnHandedOver, this));
  if (sweep_) {
    const timeval second{1, 0};
    event_add(sweep_.get(), &second);
  }
}

HttpFrontEnd::~HttpFrontEnd() {
  listeners_.clear();
  for (const HandedConnection& handed : handed_) {  // handed over after this loop ended
    ::close(handed.fd);
    connection_limits_.Release(handed.address_key);
    counters_.tracked.fetch_sub(1, std::memory_order_relaxed);
  }
  for (HttpConnection* connection : connections_) {
    if (connection->fd_ >= 0) connection_limits_.Release(connection->address_key_);
    delete connection;
    counters_.tracked.fetch_sub(1, std::memory_order_relaxed);
  }
}

void HttpFrontEnd::BalanceWith(ConnectionBalancer& balancer, std::optional<int> cpu) {
  balancer_ = &balancer;
  balance_index_ = balancer.Join(*this, cpu);
}

Result<void> HttpFrontEnd::Listen(Socket socket) {
  if (!sweep_ || !resume_accept_ || !balance_check_ || !handed_over_) {
    return Fail(ErrorCode::kInternal, "libevent allocation failed");
  }
  evconnlistener* listener = evconnlistener_new(base_, &HttpFrontEnd::OnAccept, this,
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, socket.get());
  if (listener == nullptr) return Fail(ErrorCode::kIo, "cannot accept on the listening socket");
  socket.Release();  // the listener closes it when freed
  evconnlistener_set_error_cb(listener, &HttpFrontEnd::OnAcceptError);
  listeners_.emplace_back(listener, &evconnlistener_free);
  return {};
}

void HttpFrontEnd::StopAccepting() {
  event_del(resume_accept_.get());
  listeners_.clear();
}

void HttpFrontEnd::Drain() {
  draining_ = true;
  Sweep();
}

void HttpFrontEnd::Complete(HttpTicket ticket, const HttpReply& reply) {
  HttpConnection* connection = ticket.connection_;
  if (connection == nullptr || !connection->awaiting_) return;
  connection->awaiting_ = false;
  if (connection->detached_) {
    connection->detached_ = false;
    Close(connection);
    return;
  }
  connection->Append(reply, connection->deferred_minor_, connection->deferred_keep_alive_);
  connection->Process();
}

void HttpFrontEnd::OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr* address, int length, void* arg) {
  auto* self = static_cast<HttpFrontEnd*>(arg);
  const Address128 key = AddressOf(address).value_or(0);
  Admission admission = self->draining_ ? Admission::kOverTotal : self->connection_limits_.TryAcquire(key);
  if (admission == Admission::kOverTotal && !self->draining_ && self->EvictIdle()) {
    admission = self->connection_limits_.TryAcquire(key);  // another worker may have taken the slot first
  }
  if (admission != Admission::kAdmitted) {
    if (!self->draining_) self->counters_.refused_over_cap.fetch_add(1, std::memory_order_relaxed);
    [[maybe_unused]] const ssize_t sent =
        ::send(fd, kServiceUnavailable.data(), kServiceUnavailable.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
    return;
  }
  // Replies are whole when written: no reason to let Nagle hold back the last segment of one.
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  auto connection = std::make_unique<HttpConnection>(*self, fd, address, static_cast<socklen_t>(length), key);
  if (!connection->Start(self->base_)) {
    self->connection_limits_.Release(key);
    return;  // the connection's destructor closes the socket
  }
  self->counters_.tracked.fetch_add(1, std::memory_order_relaxed);
  self->Admit(connection.release());
  if (self->balancer_ != nullptr && !evtimer_pending(self->balance_check_.get(), nullptr)) {
    evtimer_add(self->balance_check_.get(), &kBalanceDelay);
  }
}

void HttpFrontEnd::Admit(HttpConnection* connection) {
  connection->index_ = connections_.size();
  connections_.push_back(connection);
  UpdateOpenGauge();
}

void HttpFrontEnd::OnBalanceCheck(evutil_socket_t, short, void* self) { static_cast<HttpFrontEnd*>(self)->Balance(); }

// Evens out the shares, then moves connections to the CPU their packets arrive on (the rules are in
// connection_balancer.h). A connection in the middle of a request stays; the next look (the next accept, or the
// sweep within a second) finds it idle.
void HttpFrontEnd::Balance() {
  if (balancer_ == nullptr || draining_) return;
  const std::size_t before = connections_.size();
  std::array<std::size_t, 256> sent{};  // per member, at this look: not in their count until they adopt them
  bool look_again = false;
  if (const auto transfer = balancer_->Plan(balance_index_, connections_.size());
      transfer && transfer->to < sent.size()) {
    HttpFrontEnd& target = balancer_->member(transfer->to);
    const std::optional<int> target_cpu = balancer_->cpu_of(transfer->to);
    const std::size_t count = std::min(transfer->count, kBalanceBatch);
    look_again = transfer->count > count;
    std::size_t moved = 0;
    // Those whose packets already arrive on the target's CPU first: there they are served where they arrive.
    // (Among the last kLocalitySample: asking every connection for its CPU would cost a syscall each.)
    for (const bool local_there_only : {true, false}) {
      if (local_there_only && !target_cpu) continue;
      const std::size_t end = local_there_only && connections_.size() > kLocalitySample
                                  ? connections_.size() - kLocalitySample
                                  : 0;
      for (std::size_t i = connections_.size(); i-- > end && moved < count;) {
        if (!connections_[i]->quiescent()) continue;
        if (local_there_only && IncomingCpu(connections_[i]->fd_) != *target_cpu) continue;
        HandOver(i, target);  // the last one, now at i, has been looked at already
        ++moved;
        ++sent[transfer->to];
      }
    }
  }
  if (balancer_->cpu_of(balance_index_)) {
    const int own_cpu = *balancer_->cpu_of(balance_index_);
    const std::size_t sample = std::min(kLocalitySample, connections_.size());
    std::size_t moved_here = 0;
    std::array<std::uint32_t, 256> wants{};  // per member: seen twice arriving on its CPU, and not moved
    for (std::size_t n = 0; n < sample && !connections_.empty(); ++n) {
      const std::size_t i = locality_cursor_++ % connections_.size();
      HttpConnection* connection = connections_[i];
      if (!connection->quiescent()) continue;
      const int arrives_on = IncomingCpu(connection->fd_);
      if (arrives_on < 0 || arrives_on == own_cpu) {
        connection->foreign_cpu_ = -1;
        continue;
      }
      const bool seen_before = connection->foreign_cpu_ == arrives_on;
      connection->foreign_cpu_ = arrives_on;
      look_again = look_again || !seen_before;
      const auto there = balancer_->MemberOnCpu(arrives_on);
      if (!seen_before || !there || *there >= sent.size()) continue;
      if (moved_here == kBalanceBatch ||
          !balancer_->MayTake(balance_index_, *there, sent[*there], connections_.size())) {
        ++wants[*there];
        continue;
      }
      HandOver(i, balancer_->member(*there));  // the last one takes index i: the cursor may skip it this time
      ++sent[*there];
      ++moved_here;
      look_again = true;  // the other member may now exchange, or even out
    }
    balancer_->PublishWants(balance_index_, std::span(wants.data(), std::min(wants.size(), balancer_->size())));
  }
  // A connection seen on a new CPU is looked at again soon, not a second later: the shares settle within a
  // second of a client's threads spreading out. One that stays where it may not move is not.
  if (look_again && !evtimer_pending(balance_check_.get(), nullptr)) evtimer_add(balance_check_.get(), &kBalanceDelay);
  if (connections_.size() == before) return;
  counters_.rebalanced.fetch_add(before - connections_.size(), std::memory_order_relaxed);
  UpdateOpenGauge();
}

// Takes connections_[index] out of this loop and gives its socket to `target`; the last connection takes its
// place in connections_.
void HttpFrontEnd::HandOver(std::size_t index, HttpFrontEnd& target) {
  HttpConnection* connection = connections_[index];
  const HandedConnection handed{.fd = connection->fd_, .peer = connection->peer_,
                                .address_key = connection->address_key_,
                                .last_activity = connection->last_activity_};
  // Out of this loop's epoll before the other loop adds it: freeing the events deletes them.
  connection->read_event_.reset();
  connection->write_event_.reset();
  connection->fd_ = -1;
  connections_[index] = connections_.back();
  connections_[index]->index_ = index;
  connections_.pop_back();
  delete connection;
  target.Adopt(handed);
}

void HttpFrontEnd::Adopt(const HandedConnection& connection) {
  {
    std::lock_guard lock(handed_mutex_);
    handed_.push_back(connection);
  }
  event_active(handed_over_.get(), EV_READ, 0);
}

void HttpFrontEnd::OnHandedOver(evutil_socket_t, short, void* self) { static_cast<HttpFrontEnd*>(self)->AdoptHanded(); }

// The connection's slot under the caps and its count in `tracked` came with it.
void HttpFrontEnd::AdoptHanded() {
  std::vector<HandedConnection> arrived;
  {
    std::lock_guard lock(handed_mutex_);
    arrived.swap(handed_);
  }
  for (const HandedConnection& handed : arrived) {
    auto connection = std::make_unique<HttpConnection>(
        *this, handed.fd, reinterpret_cast<const sockaddr*>(&handed.peer), sizeof handed.peer, handed.address_key);
    connection->last_activity_ = handed.last_activity;  // a move does not extend the idle timeout
    if (draining_ || !connection->Start(base_)) {
      connection_limits_.Release(handed.address_key);
      counters_.tracked.fetch_sub(1, std::memory_order_relaxed);
      continue;  // the connection's destructor closes the socket
    }
    Admit(connection.release());
  }
  // Now this member may hold more than its share, or connections that want to go back: look soon.
  if (!arrived.empty() && balancer_ != nullptr && !evtimer_pending(balance_check_.get(), nullptr)) {
    evtimer_add(balance_check_.get(), &kBalanceDelay);
  }
}

// Out of descriptors (or kernel memory), accept() fails at once and the socket stays readable: libevent would
// retry in a tight loop. Stop accepting for a moment, so that connections wait in the backlog while idle ones
// time out; log at most every 10 s.
void HttpFrontEnd::OnAcceptError(evconnlistener* listener, void* arg) {
  auto* self = static_cast<HttpFrontEnd*>(arg);
  const int error = EVUTIL_SOCKET_ERROR();
  if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM) {
    Log(LogLevel::kWarning, "accept_failed", {{"error", std::strerror(error)}});
    return;
  }
  for (auto& each : self->listeners_) evconnlistener_disable(each.get());
  (void)listener;
  const timeval pause{0, 100'000};
  evtimer_add(self->resume_accept_.get(), &pause);
  self->counters_.accept_pauses.fetch_add(1, std::memory_order_relaxed);
  const auto now = Steady::now();
  ++self->accept_pauses_;
  if (now - self->last_pause_log_ >= std::chrono::seconds(10)) {
    Log(LogLevel::kWarning, "accept_paused",
        {{"error", std::strerror(error)}, {"pauses", std::to_string(self->accept_pauses_)}, {"for_ms", "100"}});
    self->last_pause_log_ = now;
    self->accept_pauses_ = 0;
  }
}

void HttpFrontEnd::OnResumeAccept(evutil_socket_t, short, void* arg) {
  for (auto& listener : static_cast<HttpFrontEnd*>(arg)->listeners_) evconnlistener_enable(listener.get());
}

void HttpFrontEnd::OnSweep(evutil_socket_t, short, void* self) { static_cast<HttpFrontEnd*>(self)->Sweep(); }

// Once a second: requests arriving too slowly get 408, idle connections and peers that stopped reading close;
// then the shares among the workers are looked at.
void HttpFrontEnd::Sweep() {
  const auto now = Steady::now();
  for (std::size_t i = connections_.size(); i-- > 0;) {
    if (i >= connections_.size()) continue;  // closing one may have moved the last into a lower index
    HttpConnection* connection = connections_[i];
    if (connection->awaiting_ || connection->detached_) continue;
    if (connection->lingering_) {
      if (draining_ || now >= connection->linger_until_) Close(connection);
      continue;
    }
    if (connection->has_partial_request() && !connection->close_after_write_ &&
        now - connection->request_started_ > limits_.header_timeout) {
      counters_.header_timeouts.fetch_add(1, std::memory_order_relaxed);
      HttpReply reply;
      reply.status = 408;
      reply.reason = "Request Timeout";
      reply.Add("Cache-Control", kNoCache);
      reply.close = true;
      connection->Append(reply, 1, false);
      connection->Flush();
      continue;
    }
    const bool idle = !connection->has_partial_request() && connection->pending_output() == 0;
    if ((idle && draining_) || now - connection->last_activity_ > limits_.idle_timeout) Close(connection);
  }
  Balance();  // shares drift as connections close, not only when they open
}

// Closes the longest-idle connection among a sample (see kEvictionSample); false when none qualifies.
bool HttpFrontEnd::EvictIdle() {
  if (connections_.empty()) return false;
  const auto now = Steady::now();
  HttpConnection* oldest = nullptr;
  for (std::size_t n = 0; n < std::min(kEvictionSample, connections_.size()); ++n) {
    HttpConnection* connection = connections_[eviction_cursor_++ % connections_.size()];
    if (connection->quiescent() && now - connection->last_activity_ >= kEvictableIdle &&
        (oldest == nullptr || connection->last_activity_ < oldest->last_activity_)) {
      oldest = connection;
    }
  }
  if (oldest == nullptr) return false;
  counters_.evicted_idle.fetch_add(1, std::memory_order_relaxed);
  ::shutdown(oldest->fd_, SHUT_WR);  // an end of stream, not a reset: nothing of it is unread
  Close(oldest);
  return true;
}

// Frees the connection and its slot; one whose deferred reply is still due only loses its socket now.
void HttpFrontEnd::Close(HttpConnection* connection) {
  if (connection->fd_ >= 0) {
    connection->read_event_.reset();
    connection->write_event_.reset();
    ::close(connection->fd_);
    connection->fd_ = -1;
    connection_limits_.Release(connection->address_key_);
  }
  if (connection->awaiting_) {
    connection->detached_ = true;
    return;
  }
  const std::size_t index = connection->index_;
  connections_[index] = connections_.back();
  connections_[index]->index_ = index;
  connections_.pop_back();
  delete connection;
  counters_.tracked.fetch_sub(1, std::memory_order_relaxed);
  UpdateOpenGauge();
}

std::string_view HttpFrontEnd::DateField() {
  const std::int64_t now = std::time(nullptr);
  if (now != date_second_) {
    HeaderBuffer buffer;
    const std::string_view date = FormatHttpDate(now, buffer);
    date_length_ = 0;
    for (std::string_view part : {std::string_view("Date: "), date, std::string_view("\r\n")}) {
      std::memcpy(date_field_.data() + date_length_, part.data(), part.size());
      date_length_ += part.size();
    }
    date_second_ = now;
  }
  return {date_field_.data(), date_length_};
}

}  // namespace ocsp::responder
