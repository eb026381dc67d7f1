// Writes the seed corpora of the fuzz targets: fuzz_make_corpus <fuzz/corpus directory>.
//
// Seeds are small (< 4 KB) and made by code with the same fixtures as the tests (tests/support/test_pki.h),
// one per feature the parsers must handle, so the fuzzers start from every branch of the formats rather than
// having to discover, say, an issuingDistributionPoint on their own.
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_pki.h"

namespace {

using namespace ocsp;
using ocsp::testing::CrlOptions;
using ocsp::testing::DistributionPointSpec;
using ocsp::testing::KeyType;
using ocsp::testing::RevokedSpec;
using ocsp::testing::TestCa;
using ocsp::testing::TimeForm;
namespace build = ocsp::testing::der;

constexpr UnixSeconds kMarch2025 = 1740830400;  // 2025-03-01T12:00:00Z
constexpr UnixSeconds kYear2051 = 2556144000;   // 2051-01-01T00:00:00Z

RevokedSpec Revoked(Bytes serial, std::optional<int> reason = std::nullopt,
                    std::optional<UnixSeconds> invalidity_date = std::nullopt) {
  RevokedSpec spec;
  spec.serial = std::move(serial);
  spec.revoked_at = kMarch2025 - 86400;
  spec.reason = reason;
  spec.invalidity_date = invalidity_date;
  return spec;
}

void Write(const std::filesystem::path& directory, const std::string& name, ByteView data) {
  std::filesystem::create_directories(directory);
  if (data.size() >= 4096) std::fprintf(stderr, "warning: %s is %zu bytes\n", name.c_str(), data.size());
  testing::WriteFile(directory / name, data);
}

void Crls(const std::filesystem::path& out) {
  const TestCa ec = TestCa::Create();
  CrlOptions base;
  base.this_update = kMarch2025;
  base.number = 7;

  Write(out, "empty.der", testing::ToDer(ec.Crl(base).get()));

  CrlOptions entries = base;
  entries.sort_entries = false;
  entries.revoked = {Revoked({0x10, 0x01}, 1, kMarch2025 - 7 * 86400), Revoked({0x05}),
                     Revoked({0x80, 0x00, 0x01}, 4), Revoked({0x00}, 0), Revoked({0x42}, 6),
                     Revoked({0x43}, 8), Revoked({0x44}, 10)};
  Write(out, "entries.der", testing::ToDer(ec.Crl(entries).get()));

  CrlOptions long_serials = base;
  long_serials.time_form = TimeForm::kGeneralizedTime;
  long_serials.number_magnitude = Bytes(20, 0x7e);
  long_serials.revoked = {Revoked(Bytes(20, 0x7f), 1), Revoked(Bytes(19, 0xff), 3, kYear2051)};
  long_serials.revoked[0].revoked_at_form = TimeForm::kGeneralizedTime;
  long_serials.revoked[1].revoked_at = kYear2051;
  Write(out, "generalized-time-long-serials.der", testing::ToDer(ec.Crl(long_serials).get()));

  CrlOptions idp = base;
  DistributionPointSpec uri;
  uri.uri = "http://crl.test/p1.crl";
  uri.only_user_certs = true;
  idp.distribution_point = uri;
  idp.revoked = {Revoked({0x01}, 1)};
  Write(out, "idp-uri-user.der", testing::ToDer(ec.Crl(idp).get()));

  CrlOptions arl = base;
  DistributionPointSpec directory;
  directory.directory_name = "/C=JP/O=JPKI-TEST/CN=ARL 1";
  directory.only_ca_certs = true;
  arl.distribution_point = directory;
  Write(out, "idp-dirname-arl.der", testing::ToDer(ec.Crl(arl).get()));

  CrlOptions delta = base;
  delta.delta = true;
  delta.omit_next_update = true;
  delta.revoked = {Revoked({0x02}, 8)};
  Write(out, "delta.der", testing::ToDer(ec.Crl(delta).get()));

  CrlOptions refused = base;
  refused.unknown_critical_extension = true;
  refused.revoked = {Revoked({0x03})};
  refused.revoked[0].unknown_critical_extension = true;
  Write(out, "unknown-critical.der", testing::ToDer(ec.Crl(refused).get()));

  const TestCa rsa = TestCa::Create("/C=JP/O=JPKI-TEST/OU=RSA CA", KeyType::kRsa2048);
  CrlOptions pss = base;
  pss.rsa_pss = true;
  pss.revoked = {Revoked({0x01})};
  Write(out, "rsa-pss.der", testing::ToDer(rsa.Crl(pss).get()));
  CrlOptions sha384 = base;
  sha384.digest = EVP_sha384();
  Write(out, "rsa-sha384.der", testing::ToDer(rsa.Crl(sha384).get()));

  const TestCa ed25519 = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Ed25519 CA", KeyType::kEd25519);
  Write(out, "ed25519.der", testing::ToDer(ed25519.Crl(entries).get()));
  const TestCa p384 = TestCa::Create("/C=JP/O=JPKI-TEST/OU=P-384 CA", KeyType::kEcP384);
  CrlOptions ecdsa384 = base;
  ecdsa384.digest = EVP_sha384();
  Write(out, "ecdsa-p384.der", testing::ToDer(p384.Crl(ecdsa384).get()));

  // A v1 CRL, which OpenSSL's API does not make: no version, no extensions.
  const Bytes algorithm = build::Tlv(0x30, build::Oid("1.2.840.10045.4.3.2"));
  const Bytes issuer = build::Tlv(
      0x30, build::Tlv(0x31, build::Tlv(0x30, {build::Oid("2.5.4.3"), build::Tlv(0x0c, AsBytes("v1 CA"))})));
  const Bytes entry = build::Tlv(0x30, {build::Integer(Bytes{0x01}), build::Tlv(0x17, AsBytes("250201000000Z"))});
  const Bytes tbs = build::Tlv(0x30, {algorithm, issuer, build::Tlv(0x17, AsBytes("250301120000Z")),
                                      build::Tlv(0x17, AsBytes("250308120000Z")), build::Tlv(0x30, entry)});
  Write(out, "v1.der", build::Tlv(0x30, {tbs, algorithm, build::Tlv(0x03, {Bytes{0x00}, Bytes(64, 0x5a)})}));
}

std::string Base64(ByteView der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(), static_cast<int>(der.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

void Requests(const std::filesystem::path& out) {
  const TestCa ca = TestCa::Create();
  const X509* issuer = ca.certificate.get();
  Write(out, "sha1.der", testing::MakeRequest(issuer, {testing::Serial(0x1001)}, EVP_sha1()));
  const Bytes with_nonce = testing::MakeRequest(issuer, {testing::Serial(0x1002)}, EVP_sha256(), Bytes(32, 0x5a));
  Write(out, "sha256-nonce.der", with_nonce);
  Write(out, "three-certids.der",
        testing::MakeRequest(issuer, {testing::Serial(1), Bytes(20, 0x7f), Bytes{0x80}}, EVP_sha1()));
  Write(out, "sha384.der", testing::MakeRequest(issuer, {testing::Serial(0xffff)}, EVP_sha384()));
  // GET paths: base64, URL-encoded, with the quirks DecodeGetPath tolerates.
  std::string path = Base64(with_nonce);
  Write(out, "get-plain.txt", AsBytes(path));
  std::string escaped;
  for (const char c : path) escaped += c == '+' ? "%2B" : c == '/' ? "%2F" : c == '=' ? "%3D" : std::string(1, c);
  Write(out, "get-escaped.txt", AsBytes("/" + escaped));
  std::string url_safe = path;
  for (char& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!url_safe.empty() && url_safe.back() == '=') url_safe.pop_back();
  Write(out, "get-url-safe.txt", AsBytes("//" + url_safe + "?query#fragment"));
}

void Configs(const std::filesystem::path& out) {
  Write(out, "minimal.toml", AsBytes("[responder]\nlisten = \"127.0.0.1:8080\"\n"));
  Write(out, "full.toml", AsBytes(R"([responder]
listen = "[::1]:8080"
workers = 4
signer_threads = 2
max_request_bytes = 8192
max_pending_signatures = 256
max_certids_per_request = 8
http_timeout_seconds = 30
next_update_grace_seconds = 3600

[store]
path = "store"
map_size_mib = 1024

[metrics]
listen = ":9810"

[import]
max_clock_skew_seconds = 300
max_shrink_fraction = 0.5
archive_directory = "off"
archive_retention_days = 30

[sync]
max_bytes = 1048576
connect_timeout_seconds = 10
timeout_seconds = 600

[[issuer]]
name = "ca-1"
certificate = "ca1.pem"
responder_certificate = "responder1.pem"
responder_key = "/etc/ocsp-responder/responder1.key"

[[issuer]]
name = "ca-2"
certificate = "ca2.pem"
responder_certificate = "responder2.pem"
responder_key = "responder2.key"

[[source]]
issuer = "ca-1"
url = "http://crl.example.test/ca1.crl"

[[source]]
issuer = "ca-2"
directory = "incoming/ca2"
)"));
  Write(out, "metrics-off.toml", AsBytes("[metrics]\nlisten = \"\"\n[import]\nmax_shrink_fraction = 1\n"));
  Write(out, "types.toml", AsBytes("a = [1, 2.5, \"s\", 'lit', true, 1979-05-27T07:32:00Z, {x = 1}]\n"
                                   "[t.'q k'.\"d\"]\nm = \"\"\"multi\nline\\u00e9\"\"\"\n"));
}

// Byte streams one client sends on one connection. {{post HEX}}, {{get HEX}} and {{der HEX}} stand for OCSP
// requests for serial HEX of the fuzz target's own test CA, which it substitutes (fuzz/http_fuzzer.cpp).
void Http(const std::filesystem::path& out) {
  using namespace std::string_literals;  // some seeds hold NUL octets
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"post-revoked.txt", "{{post 1002}}"},
      {"post-good-close.txt",
       "POST / HTTP/1.1\r\nHost: ocsp.test\r\nConnection: close\r\nContent-Type: application/ocsp-request\r\n"
       "Content-Length: 0\r\n\r\n"},
      {"get-good.txt", "{{get 1001}}"},
      {"pipelined.txt", "{{post 1001}}{{get 1002}}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{{post 1003}}"},
      {"http10.txt", "GET /healthz HTTP/1.0\r\n\r\n"},
      {"http10-keepalive.txt", "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n{{get 1003}}"},
      {"head.txt", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"absolute-uri.txt", "GET http://ocsp.test/healthz?x=1 HTTP/1.1\r\nHost: ocsp.test\r\n\r\n"},
      {"wrong-type.txt", "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nabcd"},
      {"chunked.txt",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4\r\n0\x82\x00\x00\r\n0\r\n\r\n"s},
      {"der-body.txt",
       "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: Application/OCSP-Request; charset=x\r\nExpect: 100-continue\r\n"
       "Content-Length: 1000\r\n\r\n{{der 1002}}"},
      {"methods.txt", "DELETE / HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nCONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n"},
      {"folded-header.txt", "GET /healthz HTTP/1.1\r\nX-A: 1\r\n  continued\r\nHost:\r\n\r\n"},
      {"bare-lf.txt", "GET /healthz HTTP/1.1\nHost: x\n\n"},
      {"garbage.txt", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http at all\r\n\r\n"s},
      {"content-length-twice.txt",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 3\r\nContent-Length: 9\r\n\r\nabc"},
  };
  for (const auto& [name, text] : seeds) Write(out, name, AsBytes(text));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus directory>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  Crls(root / "crl_parser_fuzzer");
  Requests(root / "ocsp_request_fuzzer");
  Configs(root / "config_fuzzer");
  Http(root / "http_fuzzer");
  return 0;
}
