// presign-bench: how many responses Signer::Sign produces per second on all cores, the way a presigning pass
// uses it: one CertID, revoked with a reason, producedAt now, no nonce.
//
// It loads the responder certificate and key with Signer::Load (every check the responder makes), signs once
// untimed, then runs --threads threads signing one shared Signer for --seconds and prints one line:
//   signatures_per_second=<total over all threads> threads=<n> seconds=<elapsed> bytes=<response size>
// bench/presign.sh runs it beside `openssl speed -multi` for the same key type (bench/README.md).
//
// Exit status: 0 measured; 1 the files did not load or a signature failed; 2 bad usage.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "common/openssl.h"
#include "signer/signer.h"

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

  using namespace ocsp;
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

  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::vector<std::uint64_t> counts(threads, 0);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::uint64_t count = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto der = signer.Sign({&answer, 1}, std::nullopt, now);
        if (!der) {
          failed = true;
          break;
        }
        ++count;
      }
      counts[t] = count;
    });
  }
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& worker : workers) worker.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) {
    std::fprintf(stderr, "presign-bench: a signature failed\n");
    return 1;
  }
  std::uint64_t total = 0;
  for (const auto count : counts) total += count;
  std::printf("signatures_per_second=%.1f threads=%u seconds=%.2f bytes=%zu\n", static_cast<double>(total) / elapsed,
              threads, elapsed, first->size());
  return 0;
}
