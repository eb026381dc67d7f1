// Connection admission and the header timeout: the defences against too many and too slow connections.
//
// libevent 2.1's evhttp has no hook at accept and its timeout is per read, so a client that trickles one
// header byte every few seconds keeps a connection (and a file descriptor) forever, and nothing caps how
// many connections one address holds. ConnectionGuard adds both without patching libevent:
//  - evhttp_set_bevcb lets it create each connection's bufferevent; it keeps a reference to it, so the
//    record stays valid until it sees evhttp drop the connection (bufferevent_free clears the callbacks);
//  - right after the accept callback it reads the peer address and asks ConnectionLimits for a slot: past
//    the cap overall or per address the connection is answered 503 and shut down (evhttp then frees it);
//  - an evbuffer callback on the connection's input starts a request's clock at its first byte; the
//    handler stops it when evhttp delivers the complete request. Once a second a sweep answers 408 and
//    shuts down every connection whose request has taken longer than the header timeout to arrive;
//  - at admission it sets the connection's close callback, so that when evhttp frees the connection the
//    record, its slot and (through the reference it drops) the descriptor go at once. The sweep also
//    collects any record whose connection evhttp freed unseen (one it could not hook), a second late.
// Idle keep-alive connections are evhttp's: its per-read timeout (responder.idle_timeout_seconds).
//
// ConnectionLimits is shared by all workers: atomics only, no lock. The per-address count is kept in
// 16,384 hashed slots; two addresses that share a slot share its count (stricter, never looser).
// Thread safety: ConnectionLimits from any thread; a ConnectionGuard belongs to its worker's loop thread.
#pragma once

#include <event2/bufferevent.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "responder/libevent.h"
#include "responder/verifiers.h"

namespace ocsp::responder {

class ConnectionLimits {
 public:
  ConnectionLimits(unsigned max_total, unsigned max_per_address)
      : max_total_(max_total), max_per_address_(max_per_address) {}
  // Takes a slot for a new connection from `address`; false (nothing taken) when a cap is reached.
  bool TryAcquire(Address128 address);
  void Release(Address128 address);
  [[nodiscard]] unsigned open() const { return total_.load(std::memory_order_relaxed); }

 private:
  static std::size_t Slot(Address128 address);
  const unsigned max_total_;
  const unsigned max_per_address_;
  std::atomic<unsigned> total_{0};
  std::array<std::atomic<std::uint32_t>, 16384> per_address_{};
};

// What a guard counted, for logs and metrics (read from other threads: relaxed atomics).
struct ConnectionCounters {
  std::atomic<std::uint64_t> refused_over_cap{0};
  std::atomic<std::uint64_t> header_timeouts{0};
  // Connections the guards hold a record (and so a descriptor) for; 0 once every connection evhttp freed
  // is collected. A gauge, for tests and the fuzz target, which wait for it to return to 0.
  std::atomic<std::uint64_t> tracked{0};
};

class ConnectionGuard {
 public:
  ConnectionGuard(event_base* base, ConnectionLimits& limits, ConnectionCounters& counters,
                  std::chrono::seconds header_timeout);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // Takes over `http`'s bufferevent creation; call before it accepts.
  Result<void> Attach(evhttp* http);
  // From the request handler: `request` has arrived complete; its connection's header clock stops.
  void RequestArrived(evhttp_request* request);

 private:
  struct Connection;
  static bufferevent* NewBufferevent(event_base* base, void* self);
  static void OnInput(evbuffer* buffer, const evbuffer_cb_info* info, void* connection);
  static void OnAccepted(evutil_socket_t, short, void* self);
  static void OnSweep(evutil_socket_t, short, void* self);
  static void OnClosed(evhttp_connection* connection, void* self);
  void Admit(Connection& connection);
  void HookClose(Connection& connection, evhttp_connection* evcon);
  void CollectClosed();
  void Sweep();
  void Drop(std::unordered_map<bufferevent*, std::unique_ptr<Connection>>::iterator it);

  event_base* base_;
  ConnectionLimits& limits_;
  ConnectionCounters& counters_;
  std::chrono::seconds header_timeout_;
  std::unordered_map<bufferevent*, std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> fresh_;  // created by the current accept callback, admitted right after it
  std::vector<bufferevent*> closing_;  // their connections' close callbacks ran: collected by closed_
  EventPtr accepted_;
  EventPtr sweep_;
  EventPtr closed_;  // a connection evhttp is freeing: collect it once the free is done
};

}  // namespace ocsp::responder
