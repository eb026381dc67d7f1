#include "responder/connections.h"

#include <event2/http.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ocsp::responder {
namespace {

using Steady = std::chrono::steady_clock;

// Written straight to the socket: evhttp has no request object for a connection it has only accepted.
constexpr std::string_view kServiceUnavailable =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
    "Cache-Control: max-age=0, no-cache\r\nRetry-After: 1\r\n\r\n";
constexpr std::string_view kRequestTimeout =
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n"
    "Cache-Control: max-age=0, no-cache\r\n\r\n";

// Best effort (a full socket buffer drops it), then EOF both ways: evhttp sees the EOF and frees the
// connection through its own path.
void Refuse(int fd, std::string_view reply) {
  if (fd < 0) return;
  [[maybe_unused]] const ssize_t sent = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_RDWR);
}

}  // namespace

struct ConnectionGuard::Connection {
  ConnectionGuard* guard = nullptr;
  bufferevent* bev = nullptr;
  evbuffer_cb_entry* input_cb = nullptr;
  Address128 address = 0;
  bool counted = false;   // holds a ConnectionLimits slot
  bool refused = false;   // shut down by us; waiting for evhttp to free it
  bool has_closecb = false;
  Steady::time_point request_started{};  // epoch: no request on the way
};

std::size_t ConnectionLimits::Slot(Address128 address) {
  std::uint64_t x = static_cast<std::uint64_t>(address) ^ static_cast<std::uint64_t>(address >> 64);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return static_cast<std::size_t>(x % 16384);
}

bool ConnectionLimits::TryAcquire(Address128 address) {
  if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total_) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  auto& slot = per_address_[Slot(address)];
  if (slot.fetch_add(1, std::memory_order_relaxed) >= max_per_address_) {
    slot.fetch_sub(1, std::memory_order_relaxed);
    total_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void ConnectionLimits::Release(Address128 address) {
  per_address_[Slot(address)].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
}

ConnectionGuard::ConnectionGuard(event_base* base, ConnectionLimits& limits, ConnectionCounters& counters,
                                 std::chrono::seconds header_timeout)
    : base_(base), limits_(limits), counters_(counters), header_timeout_(header_timeout) {}

ConnectionGuard::~ConnectionGuard() {
  // The evhttp (freed before us) has freed its connections; only our references remain.
  while (!connections_.empty()) Drop(connections_.begin());
}

Result<void> ConnectionGuard::Attach(evhttp* http) {
  accepted_.reset(event_new(base_, -1, 0, &ConnectionGuard::OnAccepted, this));
  sweep_.reset(event_new(base_, -1, EV_PERSIST, &ConnectionGuard::OnSweep, this));
  closed_.reset(event_new(base_, -1, 0, [](evutil_socket_t, short, void* self) {
    static_cast<ConnectionGuard*>(self)->CollectClosed();
  }, this));
  if (!accepted_ || !sweep_ || !closed_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
  const timeval second{1, 0};
  if (event_add(sweep_.get(), &second) != 0) return Fail(ErrorCode::kInternal, "cannot arm the sweep timer");
  evhttp_set_bevcb(http, &ConnectionGuard::NewBufferevent, this);
  return {};
}

bufferevent* ConnectionGuard::NewBufferevent(event_base* base, void* self) {
  auto* guard = static_cast<ConnectionGuard*>(self);
  // evhttp sets the socket right after this returns (evhttp_get_request_connection), so the peer is read in
  // OnAccepted, which runs as soon as the accept callback is done.
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) return nullptr;  // evhttp then makes its own; that connection goes unguarded
  auto connection = std::make_unique<Connection>();
  connection->guard = guard;
  connection->bev = bev;
  connection->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), &ConnectionGuard::OnInput, connection.get());
  bufferevent_incref(bev);
  guard->counters_.tracked.fetch_add(1, std::memory_order_relaxed);
  guard->fresh_.push_back(connection.get());
  guard->connections_.emplace(bev, std::move(connection));
  event_active(guard->accepted_.get(), EV_READ, 0);
  return bev;
}

void ConnectionGuard::OnInput(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  auto* connection = static_cast<Connection*>(arg);
  if (info->n_added > 0 && connection->request_started == Steady::time_point{}) {
    connection->request_started = Steady::now();
  }
}

void ConnectionGuard::OnAccepted(evutil_socket_t, short, void* self) {
  auto* guard = static_cast<ConnectionGuard*>(self);
  std::vector<Connection*> fresh;
  fresh.swap(guard->fresh_);
  for (Connection* connection : fresh) guard->Admit(*connection);
}

void ConnectionGuard::Admit(Connection& connection) {
  // evhttp made this connection in the accept callback that has just returned, and set itself as our
  // bufferevent's callback argument (libevent 2.1, evhttp_connection_base_bufferevent_new). Checked before
  // use: that connection's bufferevent must be this one. Hooking its close now, not when a request arrives,
  // releases the record, the slot and the descriptor as soon as evhttp frees the connection, for connections
  // that never deliver a request too (refused, 400, 408, 413, client gone): otherwise the sweep found them
  // up to a second later, and the descriptor stayed open that long.
  bufferevent_data_cb read_cb = nullptr;
  void* argument = nullptr;
  bufferevent_getcb(connection.bev, &read_cb, nullptr, nullptr, &argument);
  auto* evcon = static_cast<evhttp_connection*>(argument);
  if (read_cb != nullptr && evcon != nullptr && evhttp_connection_get_bufferevent(evcon) == connection.bev) {
    HookClose(connection, evcon);
  }
  const int fd = bufferevent_getfd(connection.bev);
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return;  // already gone
  const auto address = AddressOf(reinterpret_cast<const sockaddr*>(&peer));
  connection.address = address.value_or(0);
  if (limits_.TryAcquire(connection.address)) {
    connection.counted = true;
    return;
  }
  counters_.refused_over_cap.fetch_add(1, std::memory_order_relaxed);
  connection.refused = true;
  Refuse(fd, kServiceUnavailable);
}

void ConnectionGuard::RequestArrived(evhttp_request* request) {
  evhttp_connection* evcon = evhttp_request_get_connection(request);
  if (evcon == nullptr) return;
  const auto it = connections_.find(evhttp_connection_get_bufferevent(evcon));
  if (it == connections_.end()) return;
  Connection& connection = *it->second;
  connection.request_started = {};
  HookClose(connection, evcon);  // normally done at admission already
}

void ConnectionGuard::HookClose(Connection& connection, evhttp_connection* evcon) {
  if (connection.has_closecb) return;
  evhttp_connection_set_closecb(evcon, &ConnectionGuard::OnClosed, this);
  connection.has_closecb = true;
}

void ConnectionGuard::OnClosed(evhttp_connection* evcon, void* self) {
  // evhttp calls this at the start of evhttp_connection_free; the bufferevent is freed after it returns, so
  // the record is collected from closed_, which runs once this callback's caller is done.
  auto* guard = static_cast<ConnectionGuard*>(self);
  guard->closing_.push_back(evhttp_connection_get_bufferevent(evcon));
  event_active(guard->closed_.get(), EV_READ, 0);
}

void ConnectionGuard::CollectClosed() {
  std::vector<bufferevent*> closing;
  closing.swap(closing_);
  for (bufferevent* bev : closing) {
    const auto it = connections_.find(bev);
    if (it == connections_.end()) continue;  // collected already
    bufferevent_event_cb error_cb = nullptr;
    bufferevent_getcb(bev, nullptr, nullptr, &error_cb, nullptr);
    if (error_cb == nullptr) Drop(it);  // freed by evhttp (else the sweep looks again)
  }
}

void ConnectionGuard::OnSweep(evutil_socket_t, short, void* self) { static_cast<ConnectionGuard*>(self)->Sweep(); }

void ConnectionGuard::Sweep() {
  const auto now = Steady::now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& connection = *it->second;
    bufferevent_event_cb error_cb = nullptr;
    bufferevent_getcb(connection.bev, nullptr, nullptr, &error_cb, nullptr);
    // evhttp always installs an error callback; bufferevent_free clears it. Fresh connections are not set up
    // yet, so they wait for OnAccepted.
    const bool fresh = std::find(fresh_.begin(), fresh_.end(), &connection) != fresh_.end();
    if (error_cb == nullptr && !fresh) {
      Drop(it++);
      continue;
    }
    if (!connection.refused && connection.request_started != Steady::time_point{} &&
        now - connection.request_started > header_timeout_) {
      counters_.header_timeouts.fetch_add(1, std::memory_order_relaxed);
      connection.refused = true;
      Refuse(bufferevent_getfd(connection.bev), kRequestTimeout);
    }
    ++it;
  }
}

void ConnectionGuard::Drop(std::unordered_map<bufferevent*, std::unique_ptr<Connection>>::iterator it) {
  Connection& connection = *it->second;
  if (connection.counted) limits_.Release(connection.address);
  evbuffer_remove_cb_entry(bufferevent_get_input(connection.bev), connection.input_cb);
  bufferevent_decref(connection.bev);  // the last reference: the descriptor closes here
  counters_.tracked.fetch_sub(1, std::memory_order_relaxed);
  connections_.erase(it);
}

}  // namespace ocsp::responder
