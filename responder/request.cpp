#include "responder/request.h"

#include <algorithm>
#include <array>
#include <initializer_list>

namespace ocsp::responder {
namespace {

constexpr std::size_t kMaxNonceBytes = 128;  // RFC 9654 2.1

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr std::array<std::int8_t, 256> MakeBase64Table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  table['-'] = 62;  // URL-safe alphabet
  table['_'] = 63;
  table[' '] = 62;  // a '+' that went through form decoding
  return table;
}
constexpr auto kBase64 = MakeBase64Table();

// The nonce's extnValue is itself an OCTET STRING wrapping the nonce (RFC 6960 4.4.1); its length is the
// nonce's length for RFC 9654's bounds.
Result<void> CheckNonceLength(ByteView extension_value) {
  const unsigned char* cursor = extension_value.data();
  UniquePtr<ASN1_OCTET_STRING> inner(
      d2i_ASN1_OCTET_STRING(nullptr, &cursor, static_cast<long>(extension_value.size())));
  // Some old clients put the raw nonce in extnValue; judge those by the raw length.
  const std::size_t length = inner && cursor == extension_value.data() + extension_value.size()
                                 ? static_cast<std::size_t>(ASN1_STRING_length(inner.get()))
                                 : extension_value.size();
  if (length < 1 || length > kMaxNonceBytes) {
    return Fail(ErrorCode::kInvalidArgument,
                "nonce of " + std::to_string(length) + " octets (RFC 9654 allows 1 to 128)");
  }
  return {};
}

// One DER element with a one-octet tag and a minimal definite length, taken from the front of `in`.
bool Take(ByteView& in, std::uint8_t tag, ByteView& content) {
  if (in.size() < 2 || in[0] != tag) return false;
  std::size_t length = in[1];
  std::size_t header = 2;
  if (length == 0x81) {
    if (in.size() < 3 || in[2] < 0x80) return false;
    length = in[2];
    header = 3;
  } else if (length == 0x82) {
    if (in.size() < 4) return false;
    length = (std::size_t{in[2]} << 8) | in[3];
    if (length < 0x100) return false;
    header = 4;
  } else if (length >= 0x80) {
    return false;  // longer than an OCSP request can be here, or indefinite (BER)
  }
  if (in.size() - header < length) return false;
  content = in.subspan(header, length);
  in = in.subspan(header + length);
  return true;
}

bool SameBytes(ByteView a, std::initializer_list<std::uint8_t> b) { return std::ranges::equal(a, b); }

std::optional<store::HashAlgorithm> HashFromOid(ByteView oid) {
  if (SameBytes(oid, {0x2b, 0x0e, 0x03, 0x02, 0x1a})) return store::HashAlgorithm::kSha1;
  if (SameBytes(oid, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01})) return store::HashAlgorithm::kSha256;
  if (SameBytes(oid, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02})) return store::HashAlgorithm::kSha384;
  if (SameBytes(oid, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03})) return store::HashAlgorithm::kSha512;
  return std::nullopt;
}

constexpr std::initializer_list<std::uint8_t> kNonceOid = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};

}  // namespace

bool DecodeRequestQuick(ByteView der, const RequestLimits& limits, DecodedRequest& out) {
  out.request.reset();
  out.nonce.reset();
  // The CertIDs are decoded into the elements already there, so that their serials' buffers are reused: the
  // hot path then allocates nothing once it has seen a request of this size.
  std::size_t used = 0;
  ByteView in = der;
  ByteView ocsp_request;
  ByteView tbs;
  ByteView list;
  // optionalSignature, a version or a requestor name: the full decoder's.
  if (!Take(in, 0x30, ocsp_request) || !in.empty()) return false;
  if (!Take(ocsp_request, 0x30, tbs) || !ocsp_request.empty()) return false;
  if (!Take(tbs, 0x30, list) || list.empty()) return false;
  while (!list.empty()) {
    ByteView request;
    ByteView cert_id;
    ByteView algorithm;
    ByteView oid;
    if (used == limits.max_certids) return false;
    if (used == out.certs.size()) out.certs.emplace_back();
    RequestedCert& cert = out.certs[used];
    cert.cert_id = nullptr;
    if (!Take(list, 0x30, request) || !Take(request, 0x30, cert_id) || !request.empty()) return false;
    if (!Take(cert_id, 0x30, algorithm) || !Take(algorithm, 0x06, oid)) return false;
    ByteView parameters;
    if (!algorithm.empty() && (!Take(algorithm, 0x05, parameters) || !parameters.empty() || !algorithm.empty())) {
      return false;
    }
    cert.algorithm = HashFromOid(oid);
    if (!cert.algorithm) return false;
    ByteView serial;
    if (!Take(cert_id, 0x04, cert.name_hash) || !Take(cert_id, 0x04, cert.key_hash) ||
        !Take(cert_id, 0x02, serial) || !cert_id.empty()) {
      return false;
    }
    // Empty, negative or padded INTEGERs: the full decoder refuses or reports them.
    if (serial.empty() || (serial[0] & 0x80) != 0 || (serial.size() > 1 && serial[0] == 0 && (serial[1] & 0x80) == 0)) {
      return false;
    }
    while (serial.size() > 1 && serial[0] == 0) serial = serial.subspan(1);
    cert.serial.assign(serial.begin(), serial.end());
    ++used;
  }
  out.certs.resize(used);
  if (tbs.empty()) return true;
  ByteView tagged;
  ByteView extensions;
  if (!Take(tbs, 0xa2, tagged) || !tbs.empty() || !Take(tagged, 0x30, extensions) || !tagged.empty() ||
      extensions.empty()) {
    return false;
  }
  while (!extensions.empty()) {
    ByteView extension;
    ByteView id;
    ByteView value;
    // Another extension, a critical flag, or a second nonce: the full decoder's.
    if (!Take(extensions, 0x30, extension) || !Take(extension, 0x06, id) || !std::ranges::equal(id, kNonceOid) ||
        !Take(extension, 0x04, value) || !extension.empty() || out.nonce) {
      return false;
    }
    if (!CheckNonceLength(value)) return false;
    out.nonce = Bytes(value.begin(), value.end());
  }
  return true;
}

Result<DecodedRequest> DecodeRequest(ByteView der, const RequestLimits& limits) {
  DecodedRequest decoded;
  const unsigned char* cursor = der.data();
  decoded.request.reset(d2i_OCSP_REQUEST(nullptr, &cursor, static_cast<long>(der.size())));
  if (!decoded.request) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, "not a DER OCSPRequest");
  }
  if (cursor != der.data() + der.size()) return Fail(ErrorCode::kInvalidArgument, "trailing bytes after the request");

  const int count = OCSP_request_onereq_count(decoded.request.get());
  if (count <= 0) return Fail(ErrorCode::kInvalidArgument, "the request names no certificate");
  if (static_cast<unsigned>(count) > limits.max_certids) {
    return Fail(ErrorCode::kInvalidArgument, "the request names " + std::to_string(count) +
                                                 " certificates; at most " + std::to_string(limits.max_certids) +
                                                 " are answered in one response");
  }
  decoded.certs.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    OCSP_CERTID* cert_id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(decoded.request.get(), i));
    ASN1_OCTET_STRING* name_hash = nullptr;
    ASN1_OBJECT* algorithm = nullptr;
    ASN1_OCTET_STRING* key_hash = nullptr;
    ASN1_INTEGER* serial = nullptr;
    if (OCSP_id_get0_info(&name_hash, &algorithm, &key_hash, &serial, cert_id) != 1 || name_hash == nullptr ||
        key_hash == nullptr || serial == nullptr) {
      return Fail(ErrorCode::kInvalidArgument, "CertID " + std::to_string(i) + " is incomplete");
    }
    RequestedCert cert;
    cert.cert_id = cert_id;
    cert.algorithm = store::HashAlgorithmFromNid(OBJ_obj2nid(algorithm));
    cert.name_hash = {name_hash->data, static_cast<std::size_t>(name_hash->length)};
    cert.key_hash = {key_hash->data, static_cast<std::size_t>(key_hash->length)};
    auto magnitude = IntegerMagnitude(serial);
    if (!magnitude) return Fail(ErrorCode::kInvalidArgument, "CertID " + std::to_string(i) + ": " + magnitude.error().message);
    cert.serial = std::move(*magnitude);
    decoded.certs.push_back(std::move(cert));
  }

  const int nonce_index = OCSP_REQUEST_get_ext_by_NID(decoded.request.get(), NID_id_pkix_OCSP_Nonce, -1);
  if (nonce_index >= 0) {
    X509_EXTENSION* extension = OCSP_REQUEST_get_ext(decoded.request.get(), nonce_index);
    const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(extension);
    ByteView bytes{value->data, static_cast<std::size_t>(value->length)};
    if (auto check = CheckNonceLength(bytes); !check) return std::unexpected(check.error());
    decoded.nonce = Bytes(bytes.begin(), bytes.end());
  }
  return decoded;
}

Result<Bytes> DecodeGetPath(std::string_view path) {
  Bytes out;
  if (auto decoded = DecodeGetPath(path, out); !decoded) return std::unexpected(decoded.error());
  return out;
}

Result<void> DecodeGetPath(std::string_view path, Bytes& out) {
  out.clear();
  // The query string and fragment are not part of the request.
  path = path.substr(0, path.find_first_of("?#"));
  // Leading slashes come from base URLs with a trailing slash; base64 never starts with '/' here because an
  // OCSPRequest's DER starts with 0x30 (base64 'M').
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return Fail(ErrorCode::kInvalidArgument, "empty GET request");

  out.reserve(path.size() * 3 / 4);
  std::uint32_t accumulator = 0;
  int bits = 0;
  bool padding = false;
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) {
        return Fail(ErrorCode::kInvalidArgument, "truncated percent-escape in the GET path");
      }
      const int high = HexValue(path[i + 1]);
      const int low = HexValue(path[i + 2]);
      if (high < 0 || low < 0) return Fail(ErrorCode::kInvalidArgument, "bad percent-escape in the GET path");
      c = static_cast<char>(high * 16 + low);
      i += 2;
    }
    if (c == '=') {
      padding = true;
      continue;
    }
    if (padding) return Fail(ErrorCode::kInvalidArgument, "data after base64 padding in the GET path");
    const std::int8_t value = kBase64[static_cast<unsigned char>(c)];
    if (value < 0) {
      return Fail(ErrorCode::kInvalidArgument, "character 0x" + ToHex({reinterpret_cast<const std::uint8_t*>(&c), 1}) +
                                                   " is not base64");
    }
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(accumulator >> bits));
    }
  }
  // Leftover bits must be fewer than a byte and zero, as in canonical base64.
  if (bits >= 6 || (accumulator & ((1u << bits) - 1)) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "the GET path is not canonical base64");
  }
  return {};
}

}  // namespace ocsp::responder
