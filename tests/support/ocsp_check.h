// Reading an OCSP response the way a careful client would: parse it, and for a successful one check its
// signature with the responder certificate the test expects (never one the response carries), then list the
// status of each serial. Used by the tests and fuzz targets that look at the responder from outside.
// Thread safety: free functions; call them from any thread.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace ocsp::testing {

struct CheckedAnswer {
  Bytes serial;      // magnitude
  int status = -1;   // V_OCSP_CERTSTATUS_GOOD, _REVOKED or _UNKNOWN
  int reason = -1;   // CRLReason for a revoked serial, -1 when absent
  UnixSeconds this_update = 0;
};

struct CheckedResponse {
  int response_status = -1;  // OCSP_RESPONSE_STATUS_*: 0 successful, 3 tryLater, ...
  std::vector<CheckedAnswer> answers;  // empty unless successful
};

// Fails if the bytes are not one DER OCSPResponse, or a successful one is not signed by `responder`.
Result<CheckedResponse> CheckOcspResponse(ByteView der, const X509* responder);

}  // namespace ocsp::testing
