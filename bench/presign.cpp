// presign-bench: how many responses Signer::Sign produces per second on all cores, the way a presigning pass
// uses it: one CertID, revoked with a reason, producedAt now, no nonce.
//
// It loads the responder certificate and key with Signer::Load (every check the responder makes), signs once
// untimed, then runs --threads threads that alternate, in half-second slices for 2 x --seconds, between
// Signer::Sign on one shared Signer and the bare private-key operation on the same key (what `openssl speed`
// times), and prints one line:
//   signatures_per_second=<ours> raw_signatures_per_second=<bare key> threads=<n> seconds=<wall> bytes=<size>
// Interleaving makes the ratio of the two robust against other jobs on the machine.
// bench/presign.sh runs it beside `openssl speed -multi` for the same key type (bench/README.md).
//
// Exit status: 0 measured; 1 the files did not load or a signature failed; 2 bad usage.
#include <openssl/pem.h>

#include <CLI/CLI.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "common/openssl.h"
#include "signer/signer.h"

namespace {

using namespace ocsp;

constexpr int kOurs = 0;
constexpr int kRaw = 1;

Result<UniquePtr<EVP_PKEY>> LoadRawKey(const std::string& path) {
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  UniquePtr<BIO> bio(BIO_new_mem_buf(data->data(), static_cast<int>(data->size())));
  UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return Fail(ErrorCode::kInvalidArgument, path + " is not a PEM private key");
  return key;
}

// The bare private-key operation the way `openssl speed` runs it: one context per thread, set up once, signing
// a fixed digest (EdDSA: a fixed 20-octet message) again and again.
class RawSigner {
 public:
  explicit RawSigner(EVP_PKEY* key) : key_(key), signature_(static_cast<std::size_t>(EVP_PKEY_get_size(key))) {
    const int type = EVP_PKEY_get_base_id(key);
    if (type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448) {
      message_.reset(EVP_MD_CTX_new());
      EVP_DigestSignInit(message_.get(), nullptr, nullptr, nullptr, key);
      return;
    }
    const bool sha384 = type == EVP_PKEY_EC && EVP_PKEY_get_bits(key) > 256;
    digest_length_ = sha384 ? 48 : 32;
    context_.reset(EVP_PKEY_CTX_new(key, nullptr));
    EVP_PKEY_sign_init(context_.get());
    EVP_PKEY_CTX_set_signature_md(context_.get(), sha384 ? EVP_sha384() : EVP_sha256());
  }
  bool Sign() {
    std::size_t length = signature_.size();
    if (message_) {
      if (EVP_DigestSign(message_.get(), signature_.data(), &length, digest_.data(), 20) == 1) return true;
      // OpenSSL 3.2 and later want a one-shot context initialised anew (see signer.cpp).
      length = signature_.size();
      return EVP_DigestSignInit(message_.get(), nullptr, nullptr, nullptr, key_) == 1 &&
             EVP_DigestSign(message_.get(), signature_.data(), &length, digest_.data(), 20) == 1;
    }
    return EVP_PKEY_sign(context_.get(), signature_.data(), &length, digest_.data(), digest_length_) == 1;
  }

 private:
  EVP_PKEY* key_;
  UniquePtr<EVP_PKEY_CTX> context_;
  UniquePtr<EVP_MD_CTX> message_;
  std::array<unsigned char, 64> digest_{1, 2, 3, 4, 5, 6, 7, 8};
  std::size_t digest_length_ = 32;
  Bytes signature_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"presign-bench: Signer::Sign throughput on all cores"};
  std::string ca_path, certificate_path, key;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  double seconds = 5;
  std::string signature;
  app.add_option("--ca", ca_path, "the CA certificate (PEM)")->required();
  app.add_option("--cert", certificate_path, "the delegated responder certificate (PEM)")->required();
  app.add_option("--key", key, "its key: a PEM file")->required();
  app.add_option("--signature", signature, "rsa-pkcs1 or rsa-pss for an RSA key (default: the key's own)");
  app.add_option("--threads", threads, "signing threads (default: the number of cores)")->check(CLI::Range(1u, 1024u));
  app.add_option("--seconds", seconds, "how long to sign")->check(CLI::Range(0.1, 3600.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  auto ca = LoadCertificate(ca_path);
  if (!ca) {
    std::fprintf(stderr, "presign-bench: %s\n", ca.error().message.c_str());
    return 1;
  }
  const UnixSeconds now = SystemClock().Now();
  signer::SignerFiles files;
  files.certificate = certificate_path;
  files.key = key;
  files.signature = signature;
  auto loaded = signer::Signer::Load(files, ca->get(), now);
  if (!loaded) {
    std::fprintf(stderr, "presign-bench: %s\n", loaded.error().message.c_str());
    return 1;
  }
  const signer::Signer& signer = *loaded;

  // A JPKI-like revoked entry: 4-octet serial, SHA-1 CertID, affiliationChanged, a day's validity.
  UniquePtr<ASN1_INTEGER> serial = IntegerFromMagnitude(Bytes{0x05, 0x2a, 0x11, 0x07});
  UniquePtr<OCSP_CERTID> cert_id(OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca->get()),
                                                  X509_get0_pubkey_bitstr(ca->get()), serial.get()));
  signer::SingleAnswer answer{cert_id.get(), signer::CertStatus::kRevoked, now - 600, now + 86400, now - 86400 * 30,
                              3, {}};
  auto first = signer.Sign({&answer, 1}, std::nullopt, now);
  if (!first) {
    std::fprintf(stderr, "presign-bench: %s\n", first.error().message.c_str());
    return 1;
  }

  auto raw_key = LoadRawKey(key);
  if (!raw_key) {
    std::fprintf(stderr, "presign-bench: %s\n", raw_key.error().message.c_str());
    return 1;
  }

  // Ours and the bare key operation take turns in half-second slices, all threads at once, so that other jobs
  // on the machine slow both alike; each thread counts an operation in the mode it started in.
  std::atomic<int> mode{kOurs};
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::vector<std::array<std::uint64_t, 2>> counts(threads, {0, 0});
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      RawSigner raw(raw_key->get());
      std::array<std::uint64_t, 2> count{0, 0};
      while (!stop.load(std::memory_order_relaxed)) {
        const int current = mode.load(std::memory_order_relaxed);
        const bool ok = current == kOurs ? signer.Sign({&answer, 1}, std::nullopt, now).has_value() : raw.Sign();
        if (!ok) {
          failed = true;
          break;
        }
        ++count[static_cast<std::size_t>(current)];
      }
      counts[t] = count;
    });
  }
  std::array<double, 2> elapsed{0, 0};
  const double slice = 0.5;
  for (double spent = 0; spent < 2 * seconds; spent += slice) {
    const int current = mode.load();
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(slice));
    mode.store(current == kOurs ? kRaw : kOurs);
    elapsed[static_cast<std::size_t>(current)] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  stop = true;
  for (auto& worker : workers) worker.join();
  if (failed) {
    std::fprintf(stderr, "presign-bench: a signature failed\n");
    return 1;
  }
  std::array<std::uint64_t, 2> total{0, 0};
  for (const auto& count : counts) {
    total[0] += count[0];
    total[1] += count[1];
  }
  const double ours = static_cast<double>(total[kOurs]) / elapsed[kOurs];
  const double bare = static_cast<double>(total[kRaw]) / elapsed[kRaw];
  std::printf("signatures_per_second=%.1f raw_signatures_per_second=%.1f threads=%u seconds=%.2f bytes=%zu\n", ours,
              bare, threads, elapsed[kOurs] + elapsed[kRaw], first->size());
  return 0;
}
