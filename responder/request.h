// Decoding of OCSP requests as they arrive over HTTP (RFC 6960 4.1 and Appendix A).
//
// A request that does not decode, or that decodes but breaks the rules (no CertID, too many CertIDs, a nonce
// outside RFC 9654's 1-128 octets), is malformedRequest; the error message says why, for the debug log.
// Thread safety: pure functions; a DecodedRequest is owned by one thread at a time.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/openssl.h"
#include "common/result.h"
#include "store/issuer.h"

namespace ocsp::responder {

struct RequestLimits {
  unsigned max_certids = 8;
};

struct RequestedCert {
  const OCSP_CERTID* cert_id = nullptr;  // owned by DecodedRequest::request
  std::optional<store::HashAlgorithm> algorithm;  // nullopt: a hash we do not serve
  ByteView name_hash;
  ByteView key_hash;
  Bytes serial;  // minimal unsigned magnitude
};

struct DecodedRequest {
  UniquePtr<OCSP_REQUEST> request;  // null after DecodeRequestQuick: no CertID objects, views into the DER
  std::vector<RequestedCert> certs;
  std::optional<Bytes> nonce;  // the nonce extension's extnValue bytes, to echo verbatim
};

Result<DecodedRequest> DecodeRequest(ByteView der, const RequestLimits& limits);

// The common request decoded by hand, without OpenSSL's template decoder (a few dozen allocations): strict
// DER with minimal lengths, no version, requestor name or signature, no per-CertID extensions, a hash algorithm
// we serve (parameters NULL or absent), at most a nonce among the request extensions, and limits kept. True
// when `der` is such a request: `out` then holds what DecodeRequest would give, except that `request` and
// every `cert_id` are null and the hashes view `der`. False for anything else, valid or not: DecodeRequest
// (which accepts a superset) decides, and `out` holds nothing of use. `out` is reused: its vector and its
// CertIDs' serial buffers keep their capacity.
bool DecodeRequestQuick(ByteView der, const RequestLimits& limits, DecodedRequest& out);

// The DER request carried in a GET path: `path` is what follows the responder's prefix, still URL-encoded.
// Tolerates what clients really send: leading or doubled slashes before the data, '%2F', '%2B', '%3D' in any
// case, '+' turned into a space, the URL-safe alphabet, and missing '=' padding.
Result<Bytes> DecodeGetPath(std::string_view path);
// The same into `out` (cleared first), whose capacity a caller can keep from request to request.
Result<void> DecodeGetPath(std::string_view path, Bytes& out);

}  // namespace ocsp::responder
