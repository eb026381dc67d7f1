#include "responder/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

namespace ocsp::responder {
namespace {

int OpenAppend(const std::filesystem::path& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::Open(const std::filesystem::path& path) {
  const int fd = OpenAppend(path);
  if (fd < 0) return Fail(ErrorCode::kIo, "access log " + path.string() + ": " + std::strerror(errno));
  return std::unique_ptr<AccessLog>(new AccessLog(path, fd));
}

AccessLog::~AccessLog() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> AccessLog::Reopen() {
  const int fresh = OpenAppend(path_);
  if (fresh < 0) return Fail(ErrorCode::kIo, "access log " + path_.string() + ": " + std::strerror(errno));
  // dup2 swaps the open file behind fd_ atomically; O_CLOEXEC is per descriptor, so set it again.
  const int rc = ::dup3(fresh, fd_, O_CLOEXEC);
  const int error = errno;
  ::close(fresh);
  if (rc < 0) return Fail(ErrorCode::kIo, "access log " + path_.string() + ": " + std::strerror(error));
  return {};
}

void AccessLogWriter::Append(const AccessLogEntry& entry) noexcept {
  if (entry.at != stamp_second_) {
    stamp_second_ = entry.at;
    const std::time_t seconds = entry.at;
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    stamp_length_ = std::strftime(stamp_.data(), stamp_.size(), "%Y-%m-%dT%H:%M:%SZ", &parts);
  }
  char* out = buffer_.data() + used_;
  char* const end = out + kMaxLine - 1;  // room for '\n'
  auto put = [&](std::string_view text) {
    const std::size_t n = std::min<std::size_t>(text.size(), static_cast<std::size_t>(end - out));
    std::memcpy(out, text.data(), n);
    out += n;
  };
  // A value from outside (a verifier name, an address) is written without what would break logfmt.
  auto put_value = [&](std::string_view text) {
    if (text.empty()) text = "-";
    for (std::size_t i = 0; i < text.size() && i < 128 && out < end; ++i) {
      const char c = text[i];
      *out++ = (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
    }
  };
  auto put_number = [&](std::uint64_t value) {
    out = std::to_chars(out, end, value).ptr;
  };
  put("ts=");
  put({stamp_.data(), stamp_length_});
  put(" verifier=");
  put_value(entry.verifier);
  put(" client=");
  put_value(entry.client);
  put(" method=");
  put(metrics::ToString(entry.method));
  put(" outcome=");
  put(metrics::ToString(entry.outcome));
  put(" duration_us=");
  put_number(static_cast<std::uint64_t>(entry.seconds * 1e6));
  put(" bytes=");
  put_number(entry.bytes);
  *out++ = '\n';
  used_ = static_cast<std::size_t>(out - buffer_.data());
  if (used_ >= kFlushAt) Flush();
}

void AccessLogWriter::Flush() noexcept {
  std::size_t done = 0;
  while (done < used_) {
    const ssize_t n = ::write(log_.fd(), buffer_.data() + done, used_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk loses access lines, never answers
    done += static_cast<std::size_t>(n);
  }
  used_ = 0;
}

}  // namespace ocsp::responder
