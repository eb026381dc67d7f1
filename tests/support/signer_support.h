// Helpers shared by the signer's tests (PEM keys and PKCS#11 keys): responder certificates of any key type and
// validity, and the checks a client makes of a signed response.
#pragma once

#include <doctest/doctest.h>

#include <openssl/rsa.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "signer/signer.h"
#include "tests/support/test_pki.h"

namespace ocsp::testing::signer_support {

inline UniquePtr<OCSP_BASICRESP> Parse(const Bytes& der) {
  const unsigned char* cursor = der.data();
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(der.size())));
  REQUIRE(response);
  REQUIRE(cursor == der.data() + der.size());
  REQUIRE(OCSP_response_status(response.get()) == OCSP_RESPONSE_STATUS_SUCCESSFUL);
  return UniquePtr<OCSP_BASICRESP>(OCSP_response_get1_basic(response.get()));
}

// Verifies the way a client does: signature by a delegated responder whose certificate chains to the CA.
// `at`: the time the chain is checked at (default: now).
inline bool VerifiesAgainst(OCSP_BASICRESP* basic, const TestCa& ca, std::optional<UnixSeconds> at = std::nullopt) {
  UniquePtr<X509_STORE> trust(X509_STORE_new());
  X509_STORE_add_cert(trust.get(), ca.certificate.get());
  if (at) X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(trust.get()), static_cast<time_t>(*at));
  UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  const int ok = OCSP_basic_verify(basic, untrusted.get(), trust.get(), 0);
  ERR_clear_error();
  return ok == 1;
}

struct Validity {
  UnixSeconds not_before = 0;  // 0: an hour ago
  UnixSeconds not_after = 0;   // 0: in a year
};

// A delegated responder certificate for `key`, issued by `ca`, written as <name>-responder.pem and (mode 0600)
// <name>-responder.key under `directory`.
inline signer::SignerFiles WriteResponder(const std::filesystem::path& directory, const std::string& name,
                                          const TestCa& ca, EVP_PKEY* key, Validity validity) {
  static std::atomic<long> serial{100};
  CertificateOptions options;
  options.subject = "/C=JP/O=JPKI-TEST/CN=OCSP Responder " + name;
  options.is_ca = false;
  options.ocsp_signing = true;
  options.serial = serial++;
  options.not_before = validity.not_before;
  options.not_after = validity.not_after;
  auto certificate = MakeCertificate(key, options, ca.certificate.get(), ca.key.get());
  const auto certificate_path = directory / (name + "-responder.pem");
  const auto key_path = directory / (name + "-responder.key");
  WriteFile(certificate_path, ToPem(certificate.get()));
  WriteFile(key_path, PrivateKeyPem(key));
  std::filesystem::permissions(key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return {certificate_path, key_path.string()};
}

// A key of type RSASSA-PSS (id-RSASSA-PSS in its certificate), not an rsaEncryption key used with PSS.
inline UniquePtr<EVP_PKEY> GenerateRsaPssKey() {
  UniquePtr<EVP_PKEY_CTX> context(EVP_PKEY_CTX_new_from_name(nullptr, "RSA-PSS", nullptr));
  EVP_PKEY* key = nullptr;
  REQUIRE(context);
  REQUIRE(EVP_PKEY_keygen_init(context.get()) == 1);
  REQUIRE(EVP_PKEY_CTX_set_rsa_keygen_bits(context.get(), 2048) == 1);
  REQUIRE(EVP_PKEY_keygen(context.get(), &key) == 1);
  return UniquePtr<EVP_PKEY>(key);
}

// The NID of the hash in a PSS signatureAlgorithm's parameters.
inline int PssDigestOf(const OCSP_BASICRESP* basic) {
  const X509_ALGOR* algorithm = OCSP_resp_get0_tbs_sigalg(basic);
  const ASN1_TYPE* parameter = algorithm->parameter;
  REQUIRE(parameter != nullptr);
  UniquePtr<RSA_PSS_PARAMS> pss(
      static_cast<RSA_PSS_PARAMS*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), parameter)));
  REQUIRE(pss);
  return pss->hashAlgorithm == nullptr ? NID_sha1 : OBJ_obj2nid(pss->hashAlgorithm->algorithm);
}

// `openssl ocsp -respin`: the command-line client's verdict on a response, stdout and stderr together.
inline std::pair<int, std::string> RunOpenSslOcsp(const std::filesystem::path& response,
                                                  const std::filesystem::path& ca, const std::string& serial) {
  const std::string command = "openssl ocsp -respin '" + response.string() + "' -CAfile '" + ca.string() +
                              "' -issuer '" + ca.string() + "' -serial " + serial + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[512];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, got);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// `threads` threads sign `each` responses at once; true when every one verifies.
inline bool SignsConcurrently(const signer::Signer& signer, const TestCa& ca, int threads, int each) {
  const UnixSeconds now = SystemClock().Now();
  std::vector<Bytes> responses(static_cast<std::size_t>(threads * each));
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        auto cert_id = MakeCertId(ca.certificate.get(), Serial(static_cast<std::uint64_t>(t * 1000 + i + 1)),
                                  EVP_sha1());
        signer::SingleAnswer answer{cert_id.get(), signer::CertStatus::kRevoked, now - 60, now + 3600, now - 120,
                                    1, {}};
        auto der = signer.Sign({&answer, 1}, std::nullopt, now);
        if (!der) {
          ++failures;
          continue;
        }
        responses[static_cast<std::size_t>(t * each + i)] = std::move(*der);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  if (failures != 0) return false;
  for (const Bytes& der : responses) {
    if (!VerifiesAgainst(Parse(der).get(), ca)) return false;
  }
  return true;
}

}  // namespace ocsp::testing::signer_support
