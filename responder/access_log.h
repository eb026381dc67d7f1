// The access log (config key log.access_log): one logfmt line per request, in its own file rather than the
// journal, so each verifier's traffic can be audited and handed over (`grep verifier=name`).
//
//   ts=2026-11-21T11:04:23Z verifier=acme client=10.0.0.1 method=GET outcome=good duration_us=85 bytes=1432
//
// Never a request body, a nonce or key material. Each worker appends to its own AccessLogWriter: a fixed
// buffer (no allocation per line, no lock), written with one write(2) when it passes 16 KiB and by the
// worker's one-second timer. The file is opened O_APPEND, so one write(2) is never interleaved with another
// worker's. Reopen() (SIGUSR1, after logrotate renamed the file) opens the path again and dup2()s the new file
// over the same descriptor: a write in flight goes to the old file or the new one, never to a closed or reused
// descriptor.
// Thread safety: Open and Reopen from the control thread; each AccessLogWriter from its one worker thread.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "metrics/metrics.h"

namespace ocsp::responder {

class AccessLog {
 public:
  static Result<std::unique_ptr<AccessLog>> Open(const std::filesystem::path& path);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Opens the path again (creating it) and puts it behind the same descriptor.
  [[nodiscard]] Result<void> Reopen();
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  AccessLog(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_;
};

struct AccessLogEntry {
  UnixSeconds at = 0;
  std::string_view verifier;  // the registry's name, "none" or "unregistered"
  std::string_view client;    // peer address as libevent reports it
  metrics::Method method = metrics::Method::kOther;
  metrics::Outcome outcome = metrics::Outcome::kRefused;
  double seconds = 0;
  std::size_t bytes = 0;
};

class AccessLogWriter {
 public:
  explicit AccessLogWriter(const AccessLog& log) : log_(log) {}
  ~AccessLogWriter() { Flush(); }
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  void Append(const AccessLogEntry& entry) noexcept;
  void Flush() noexcept;

 private:
  static constexpr std::size_t kFlushAt = 16 * 1024;
  static constexpr std::size_t kMaxLine = 512;
  const AccessLog& log_;
  std::array<char, kFlushAt + kMaxLine> buffer_{};
  std::size_t used_ = 0;
  UnixSeconds stamp_second_ = -1;
  std::array<char, 24> stamp_{};
  std::size_t stamp_length_ = 0;
};

}  // namespace ocsp::responder
