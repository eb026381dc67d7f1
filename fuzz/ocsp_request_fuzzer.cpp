// Fuzz target: decoding of OCSP requests as they arrive over HTTP (responder/request.h).
//
// Every input is tried both ways: as a POST body (DER) and as a GET path (URL-encoded base64).
// Invariants; a violation abort()s:
//  1. DecodeRequest and DecodeGetPath never crash.
//  2. What DecodeRequest accepts, d2i_OCSP_REQUEST accepts whole; the result keeps the limits (1 to
//     max_certids CertIDs, minimal serial magnitudes, a nonce of 1-128 octets).
//  3. What DecodeRequestQuick (the hand decoder) takes, DecodeRequest takes too, with the same CertIDs, serials
//     and nonce.
//  4. An accepted DER request survives every GET encoding that DecodeGetPath promises to tolerate (standard
//     and URL-safe base64, percent-escapes in any case, '+' as a space, missing padding, leading slashes): the
//     decoded bytes are the request again.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/openssl.h"
#include "fuzz/der_mutator.h"
#include "responder/request.h"

namespace {

using ocsp::ByteView;

[[noreturn]] void Fail(ByteView input, const std::string& what) {
  std::fprintf(stderr, "\n==ocsp_request_fuzzer== %s\ninput (%zu bytes): %s\n", what.c_str(), input.size(),
               ocsp::ToHex(input).c_str());
  std::abort();
}

std::string Base64(ByteView der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(), static_cast<int>(der.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

std::string Transform(const std::string& text, int variant) {
  std::string out;
  for (const char c : text) {
    switch (variant) {
      case 0: out += c; break;                                                         // as is
      case 1: out += c == '+' ? "%2B" : c == '/' ? "%2F" : c == '=' ? "%3D" : std::string(1, c); break;
      case 2: out += c == '+' ? "%2b" : c == '/' ? "%2f" : c == '=' ? "%3d" : std::string(1, c); break;
      case 3: out += c == '+' ? '-' : c == '/' ? '_' : c; break;                      // URL-safe alphabet
      case 4: if (c != '=') out += c; break;                                           // no padding
      case 5: out += c == '+' ? ' ' : c; break;                                        // '+' became a space
      default: out += c;
    }
  }
  if (variant == 6) out = "//" + out;  // a base URL with a trailing slash
  return out;
}

}  // namespace

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  return ocsp::fuzz::MutateDer(data, size, max_size, seed);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);

  // As a POST body.
  for (const unsigned max_certids : {1u, 8u}) {
    // Kept across inputs, as a worker keeps its own: what an earlier input left in it must not leak into this one.
    static ocsp::responder::DecodedRequest reused[2];
    ocsp::responder::DecodedRequest& quick = reused[max_certids == 1 ? 0 : 1];
    if (ocsp::responder::DecodeRequestQuick(input, {max_certids}, quick)) {
      auto full = ocsp::responder::DecodeRequest(input, {max_certids});
      if (!full) Fail(input, "DecodeRequestQuick takes what DecodeRequest refuses: " + full.error().message);
      if (full->certs.size() != quick.certs.size() || full->nonce != quick.nonce) Fail(input, "the decoders disagree");
      for (std::size_t i = 0; i < quick.certs.size(); ++i) {
        const auto& a = quick.certs[i];
        const auto& b = full->certs[i];
        if (a.algorithm != b.algorithm || a.serial != b.serial || !std::ranges::equal(a.name_hash, b.name_hash) ||
            !std::ranges::equal(a.key_hash, b.key_hash)) {
          Fail(input, "the decoders disagree on CertID " + std::to_string(i));
        }
      }
    }
    auto decoded = ocsp::responder::DecodeRequest(input, {max_certids});
    if (!decoded) continue;
    const unsigned char* cursor = data;
    ocsp::UniquePtr<OCSP_REQUEST> request(d2i_OCSP_REQUEST(nullptr, &cursor, static_cast<long>(size)));
    if (!request || cursor != data + size) Fail(input, "DecodeRequest accepts what d2i_OCSP_REQUEST does not");
    if (decoded->certs.empty() || decoded->certs.size() > max_certids) Fail(input, "CertID count out of limits");
    for (const auto& cert : decoded->certs) {
      if (cert.serial.empty() || (cert.serial.size() > 1 && cert.serial[0] == 0)) Fail(input, "non-minimal serial");
      if (cert.cert_id == nullptr) Fail(input, "a CertID without its OCSP_CERTID");
    }
    if (decoded->nonce && decoded->nonce->empty()) Fail(input, "an empty nonce accepted");

    // The same request through every GET encoding.
    const std::string text = Base64(input);
    for (int variant = 0; variant <= 6; ++variant) {
      const std::string path = Transform(text, variant);
      auto bytes = ocsp::responder::DecodeGetPath(path);
      if (!bytes) Fail(input, "GET variant " + std::to_string(variant) + " refused: " + bytes.error().message + "\n" + path);
      if (*bytes != ocsp::Bytes(input.begin(), input.end())) Fail(input, "GET variant " + std::to_string(variant) + " decodes differently");
    }
  }

  // As a GET path.
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  if (auto bytes = ocsp::responder::DecodeGetPath(path)) {
    (void)ocsp::responder::DecodeRequest(*bytes, {});
  }
  ERR_clear_error();
  return 0;
}
