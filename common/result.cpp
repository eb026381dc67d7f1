#include "common/result.h"

namespace ocsp {

std::string_view ToString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kVerificationFailed: return "verification failed";
    case ErrorCode::kRefused: return "refused";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kStore: return "store error";
    case ErrorCode::kCrypto: return "crypto error";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

std::string Error::Describe() const {
  std::string out(ToString(code));
  out += ": ";
  out += message;
  return out;
}

}  // namespace ocsp
