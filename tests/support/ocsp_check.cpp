#include "tests/support/ocsp_check.h"

#include <openssl/ocsp.h>

#include "common/openssl.h"

namespace ocsp::testing {

Result<CheckedResponse> CheckOcspResponse(ByteView der, const X509* responder) {
  const unsigned char* cursor = der.data();
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(der.size())));
  if (!response || cursor != der.data() + der.size()) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, "not one DER OCSPResponse");
  }
  CheckedResponse checked;
  checked.response_status = OCSP_response_status(response.get());
  if (checked.response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) return checked;

  UniquePtr<OCSP_BASICRESP> basic(OCSP_response_get1_basic(response.get()));
  if (!basic) return Fail(ErrorCode::kInvalidArgument, "a successful response without a BasicOCSPResponse");
  // Only the certificate we name may have signed it (OCSP_NOINTERN); its chain is the test's business.
  UniquePtr<STACK_OF(X509)> signers(sk_X509_new_null());
  sk_X509_push(signers.get(), const_cast<X509*>(responder));
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  if (OCSP_basic_verify(basic.get(), signers.get(), store.get(), OCSP_NOINTERN | OCSP_NOVERIFY) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kVerificationFailed, "the signature does not verify with the responder certificate");
  }
  for (int i = 0; i < OCSP_resp_count(basic.get()); ++i) {
    OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
    CheckedAnswer answer;
    ASN1_GENERALIZEDTIME* revoked_at = nullptr;
    ASN1_GENERALIZEDTIME* this_update = nullptr;
    ASN1_GENERALIZEDTIME* next_update = nullptr;
    answer.status = OCSP_single_get0_status(single, &answer.reason, &revoked_at, &this_update, &next_update);
    if (this_update != nullptr) {
      tm parts{};
      if (ASN1_TIME_to_tm(this_update, &parts) == 1) answer.this_update = timegm(&parts);
    }
    ASN1_INTEGER* serial = nullptr;
    OCSP_id_get0_info(nullptr, nullptr, nullptr, &serial, const_cast<OCSP_CERTID*>(OCSP_SINGLERESP_get0_id(single)));
    if (serial != nullptr) {
      UniquePtr<BIGNUM> number(ASN1_INTEGER_to_BN(serial, nullptr));
      answer.serial.resize(static_cast<std::size_t>(BN_num_bytes(number.get())));
      BN_bn2bin(number.get(), answer.serial.data());
      if (answer.serial.empty()) answer.serial.push_back(0);
    }
    checked.answers.push_back(std::move(answer));
  }
  return checked;
}

}  // namespace ocsp::testing
