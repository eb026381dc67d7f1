// The responder's HTTP/1.x front end, on a libevent loop: accepting, connection caps, request parsing,
// keep-alive and pipelining, the header and idle timeouts, and writing replies.
//
// Why not evhttp: profiled under keep-alive load it cost a third of a stored response's CPU time in malloc,
// printf and one epoll_ctl per reply (every header is three allocations; its write event is added and
// removed per reply). Here a connection owns one input and one output buffer, grown only for large requests;
// a reply is formatted into the output buffer and written at once (the write event is armed only when the
// socket is full); pipelined requests that arrive together are answered with one write.
//
// What it accepts (RFC 9112): request-line `method SP target SP HTTP/1.x` (a higher 1.x is answered as 1.1;
// another major version is 505), header fields without obs-fold or whitespace before the colon, a body only
// by Content-Length (several differing Content-Length fields are 400; any Transfer-Encoding is 411 and the
// connection closes, as its end cannot be found), `Expect: 100-continue`, and empty lines before a request.
// Replies are HTTP/1.1; HTTP/1.0 keeps its connection only with `Connection: keep-alive`.
// Bounds: the request head (request-line and fields) is at most `max_head_bytes` (else 431), the body at most
// `max_body_bytes` (else 413); both close the connection. A request must arrive whole within
// `header_timeout` of its first byte (else 408 and close: slowloris); a connection with nothing under way
// closes after `idle_timeout`, as does one whose peer stops reading our replies. At the overall connection cap a
// new connection takes the place of a keep-alive connection idle for 250 ms or more; past the per-address
// cap it gets 503. After a closing reply the connection lingers briefly, reading and dropping (RFC 9112 9.6).
// Front ends joined to one ConnectionBalancer (connection_balancer.h) hand idle connections to each other.
// Thread safety: an HttpFrontEnd and everything it hands out belong to the thread that runs its event_base,
// except shared_open_connections() and a hand-over from another member (a locked inbox, taken only when a
// connection moves); ConnectionLimits (shared by all front ends) is atomics only.
#pragma once

#include <event2/listener.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "responder/connections.h"
#include "responder/libevent.h"

namespace ocsp::responder {

enum class HttpMethod : std::uint8_t { kGet, kHead, kPost, kOther };

struct HttpLimits {
  std::size_t max_head_bytes = 16384;
  std::size_t max_body_bytes = 8192;
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds idle_timeout{30};
};

// One parsed request. Every view points into the connection's input buffer and is valid only during the
// handler call.
struct HttpRequest {
  HttpMethod method = HttpMethod::kOther;
  std::string_view method_name;
  std::string_view target;  // origin-form or absolute-form, as sent
  int minor_version = 1;    // 0 or 1
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> if_none_match;
  ByteView body;
  bool keep_alive = true;  // what the client asked for (its version and Connection field)
};

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// A reply to format: status, up to eight fields, and a body (HEAD: its Content-Length, no bytes).
// Date, Content-Length and Connection are added by the front end.
struct HttpReply {
  int status = 200;
  std::string_view reason = "OK";
  std::array<HttpHeader, 8> headers{};
  std::size_t header_count = 0;
  ByteView body;
  bool head = false;      // send the headers GET would get, without the body
  bool close = false;     // close the connection after this reply

  HttpReply& Add(std::string_view name, std::string_view value) {
    if (header_count < headers.size()) headers[header_count++] = {name, value};
    return *this;
  }
};

class ConnectionBalancer;
class HttpConnection;
class HttpFrontEnd;

// A request whose reply comes later (HttpFrontEnd::Complete): the connection reads nothing more meanwhile
// and stays allocated, even if its peer leaves, until the reply is given.
class HttpTicket {
 public:
  HttpTicket() = default;
  [[nodiscard]] bool valid() const { return connection_ != nullptr; }

 private:
  friend class HttpFrontEnd;
  friend class HttpExchange;
  explicit HttpTicket(HttpConnection* connection) : connection_(connection) {}
  HttpConnection* connection_ = nullptr;
};

// What a handler gets for each request: the request, the peer, and one way to answer (now or later).
class HttpExchange {
 public:
  [[nodiscard]] const HttpRequest& request() const { return request_; }
  [[nodiscard]] const sockaddr_storage& peer() const;
  void Reply(const HttpReply& reply);
  // The reply will be given with HttpFrontEnd::Complete(ticket, ...) on this loop.
  HttpTicket Defer();

 private:
  friend class HttpFrontEnd;
  HttpExchange(HttpFrontEnd& front_end, HttpConnection& connection, const HttpRequest& request)
      : front_end_(front_end), connection_(connection), request_(request) {}
  HttpFrontEnd& front_end_;
  HttpConnection& connection_;
  const HttpRequest& request_;
  bool answered_ = false;
  friend class HttpConnection;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Must call exchange.Reply or exchange.Defer exactly once.
  virtual void OnRequest(HttpExchange& exchange) = 0;
};

class HttpFrontEnd {
 public:
  HttpFrontEnd(event_base* base, HttpHandler& handler, HttpLimits limits, ConnectionLimits& connection_limits,
               ConnectionCounters& counters);
  ~HttpFrontEnd();
  HttpFrontEnd(const HttpFrontEnd&) = delete;
  HttpFrontEnd& operator=(const HttpFrontEnd&) = delete;

  // Accepts on `socket` (already listening) from now on; the front end closes it.
  Result<void> Listen(Socket socket);
  // Closes the listening sockets; open connections go on.
  void StopAccepting();
  // Every reply from now on closes its connection; connections with nothing under way close now.
  void Drain();
  // The deferred reply of `ticket`'s request. A ticket whose peer has left just frees its connection.
  void Complete(HttpTicket ticket, const HttpReply& reply);
  [[nodiscard]] std::size_t open_connections() const { return connections_.size(); }
  // From now on keeps `*gauge` at open_connections() (a relaxed store per accept and close), for metrics read
  // on another thread. The gauge must outlive the front end.
  void ReportOpenConnectionsTo(std::atomic<std::uint64_t>* gauge) {
    open_gauge_ = gauge;
    UpdateOpenGauge();
  }
  // Joins `balancer` (connection_balancer.h): from now on, when this front end holds clearly more connections
  // than another member, it hands idle ones over. `cpu`: the CPU this loop's thread is pinned to, if any.
  // Before the loop runs.
  void BalanceWith(ConnectionBalancer& balancer, std::optional<int> cpu);
  // open_connections() as last published, from any thread.
  [[nodiscard]] std::size_t shared_open_connections() const {
    return shared_open_.load(std::memory_order_relaxed);
  }

 private:
  friend class HttpConnection;
  friend class HttpExchange;
  static void OnAccept(evconnlistener* listener, evutil_socket_t fd, sockaddr* address, int length, void* self);
  static void OnAcceptError(evconnlistener* listener, void* self);
  static void OnResumeAccept(evutil_socket_t, short, void* self);
  static void OnSweep(evutil_socket_t, short, void* self);
  static void OnBalanceCheck(evutil_socket_t, short, void* self);
  static void OnHandedOver(evutil_socket_t, short, void* self);
  void Sweep();
  // A connection on its way from another member's loop to this one: its socket and what it had.
  struct HandedConnection {
    int fd = -1;
    sockaddr_storage peer{};
    Address128 address_key = 0;
    std::chrono::steady_clock::time_point last_activity{};
  };
  void Balance();
  void HandOver(std::size_t index, HttpFrontEnd& target);
  // From another member's thread; adopted on this loop (or closed, when draining).
  void Adopt(const HandedConnection& connection);
  void AdoptHanded();
  void Admit(HttpConnection* connection);
  bool EvictIdle();
  void Close(HttpConnection* connection);
  void UpdateOpenGauge() {
    shared_open_.store(connections_.size(), std::memory_order_relaxed);
    if (open_gauge_ != nullptr) open_gauge_->store(connections_.size(), std::memory_order_relaxed);
  }
  std::string_view DateField();  // "Date: ...\r\n", formatted once per second

  event_base* base_;
  HttpHandler& handler_;
  HttpLimits limits_;
  ConnectionLimits& connection_limits_;
  ConnectionCounters& counters_;
  bool draining_ = false;
  std::vector<std::unique_ptr<evconnlistener, void (*)(evconnlistener*)>> listeners_;
  std::vector<HttpConnection*> connections_;  // owned; each knows its index here
  std::size_t eviction_cursor_ = 0;           // where EvictIdle's next sample starts
  std::size_t locality_cursor_ = 0;           // where Balance's next look at incoming CPUs starts
  std::atomic<std::uint64_t>* open_gauge_ = nullptr;
  std::atomic<std::size_t> shared_open_{0};
  ConnectionBalancer* balancer_ = nullptr;
  std::size_t balance_index_ = 0;
  EventPtr balance_check_;  // armed at accept: the shares are looked at once the burst of connects is over
  EventPtr handed_over_;    // activated by another member after it put a connection in handed_
  std::mutex handed_mutex_;
  std::vector<HandedConnection> handed_;
  EventPtr sweep_;
  EventPtr resume_accept_;
  std::chrono::steady_clock::time_point last_pause_log_{};
  std::uint64_t accept_pauses_ = 0;
  std::int64_t date_second_ = -1;
  std::array<char, 48> date_field_{};
  std::size_t date_length_ = 0;
};

// Parses one request from the front of `input` (exposed for the unit tests and the fuzzer).
// kIncomplete: more bytes are needed; kComplete: `request` is filled and `consumed` bytes are its; an error:
// `error_status` and `error_reason` say what to answer, and the connection closes after it.
enum class ParseOutcome : std::uint8_t { kIncomplete, kComplete, kError };
struct ParseState {
  HttpRequest request;
  std::size_t consumed = 0;
  std::size_t head_bytes = 0;  // set once the head is complete
  bool expects_continue = false;
  int error_status = 0;
  std::string_view error_reason;
};
ParseOutcome ParseHttpRequest(std::string_view input, const HttpLimits& limits, ParseState& state);

}  // namespace ocsp::responder
