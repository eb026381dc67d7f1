// Errors as values for the whole appliance.
//
// Result<T> is std::expected<T, Error>. Expected failures (bad input, a refused CRL, a missing file) travel
// as values; exceptions are used only at the edges (main, configuration parsing, the CLI).
// Thread safety: plain values; no shared state.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace ocsp {

enum class ErrorCode {
  kInvalidArgument,   // the caller's input is wrong (malformed DER, bad config value)
  kNotFound,          // a file or record that must exist does not
  kVerificationFailed,// a signature or issuer check failed
  kRefused,           // well-formed input that policy refuses (CRL number not increasing, ...)
  kIo,                // the operating system said no
  kStore,             // LMDB reported an error
  kCrypto,            // OpenSSL reported an error that is not the input's fault
  kUnavailable,       // temporarily unable (overload, no fresh data): try later
  kInternal,          // a bug
};

std::string_view ToString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;

  // "refused: CRL number 3 is not greater than the stored 4"
  [[nodiscard]] std::string Describe() const;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace ocsp
