#include "responder/service_notify.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"

namespace ocsp::responder {

ServiceNotifier ServiceNotifier::FromEnvironment() {
  ServiceNotifier notifier;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  notifier.enabled_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // unset_environment=0: the variables stay for whoever asks again; sd_watchdog_enabled checks WATCHDOG_PID.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) notifier.watchdog_ = std::chrono::microseconds(usec);
  return notifier;
}

void ServiceNotifier::Send(const char* state) const {
  if (!enabled_) return;
  if (int rc = sd_notify(0, state); rc < 0) {
    // Not fatal: the service still answers; systemd will time out on READY or the watchdog and say so.
    Log(LogLevel::kWarning, "sd_notify_failed", {{"state", state}, {"error", std::strerror(-rc)}});
  }
}

void ServiceNotifier::Ready() const { Send("READY=1\nSTATUS=answering"); }

void ServiceNotifier::Reloading() const {
  // MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this RELOADING=1 to the reload it asked for;
  // older systemd ignores it.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::string state = "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" +
                            std::to_string(static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                                           static_cast<std::uint64_t>(now.tv_nsec) / 1000u);
  Send(state.c_str());
}

void ServiceNotifier::Stopping() const { Send("STOPPING=1\nSTATUS=draining in-flight requests"); }

void ServiceNotifier::Status(std::string_view text) const {
  std::string state = "STATUS=";
  for (char c : text) state.push_back(c == '\n' ? ' ' : c);  // one line: a newline would start a new field
  Send(state.c_str());
}

void ServiceNotifier::WatchdogPing() const { Send("WATCHDOG=1"); }

Result<ListenSockets> TakeListenSockets() {
  char** names = nullptr;
  // unset_environment=1: a child process must not believe the sockets are its own.
  const int count = sd_listen_fds_with_names(1, &names);
  if (count < 0) return Fail(ErrorCode::kIo, std::string("sd_listen_fds: ") + std::strerror(-count));
  ListenSockets sockets;
  std::string problem;
  for (int i = 0; i < count; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    const std::string name = names != nullptr && names[i] != nullptr ? names[i] : "";
    Socket socket(fd);  // owned from here on, whatever happens below
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
      problem = "passed socket " + std::to_string(i) + " (" + name + ") is not a listening stream socket";
      continue;
    }
    Socket& slot = name == "metrics" ? sockets.metrics : sockets.ocsp;
    if (slot.get() >= 0) {
      problem = "more than one passed socket for the " + std::string(name == "metrics" ? "metrics" : "OCSP") +
                " listener; name the metrics one with FileDescriptorName=metrics";
      continue;
    }
    // systemd passes blocking sockets; the event loops need them non-blocking, and children must not inherit them.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    slot = std::move(socket);
  }
  if (names != nullptr) {
    for (int i = 0; i < count; ++i) std::free(names[i]);
    std::free(names);
  }
  if (!problem.empty()) return Fail(ErrorCode::kInvalidArgument, "socket activation: " + problem);
  if (count > 0 && sockets.ocsp.get() < 0) {
    return Fail(ErrorCode::kInvalidArgument, "socket activation: no socket for the OCSP listener was passed");
  }
  return sockets;
}

}  // namespace ocsp::responder
