// RAII owners for libevent handles used by the responder.
// Thread safety: as libevent's; each handle belongs to the thread that runs its event_base.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <memory>

namespace ocsp::responder {

struct EventBaseDeleter {
  void operator()(event_base* base) const noexcept { event_base_free(base); }
};
struct EvhttpDeleter {
  void operator()(evhttp* http) const noexcept { evhttp_free(http); }
};
struct EventDeleter {
  void operator()(event* ev) const noexcept { event_free(ev); }
};
struct EvbufferDeleter {
  void operator()(evbuffer* buffer) const noexcept { evbuffer_free(buffer); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EvhttpPtr = std::unique_ptr<evhttp, EvhttpDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using EvbufferPtr = std::unique_ptr<evbuffer, EvbufferDeleter>;

// A listening socket we own until a listener takes it: listeners are made with LEV_OPT_CLOSE_ON_FREE, so
// freeing the listener closes the socket, and the owner must Release() it once the listener has
// accepted it (closing it again could close a descriptor another thread has been given the number of).
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { Close(); }
  [[nodiscard]] int get() const { return fd_; }
  // Gives up ownership without closing.
  int Release() noexcept { return std::exchange(fd_, -1); }

 private:
  void Close() noexcept;
  int fd_ = -1;
};

}  // namespace ocsp::responder
