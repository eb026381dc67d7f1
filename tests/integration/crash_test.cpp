// The importer killed at any moment leaves the store exactly at the old or the new CRL, never a mix.
#include <doctest/doctest.h>
#include <signal.h>

#include <random>
#include <thread>

#include "importer/import.h"
#include "tests/integration/process.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::testing;

namespace {

CrlOptions Range(long number, std::uint64_t first, std::uint64_t count) {
  CrlOptions options;
  options.number = number;
  options.revoked.reserve(count);
  for (std::uint64_t serial = first; serial < first + count; ++serial) {
    options.revoked.push_back({Serial(serial), 0, 3, std::nullopt});
  }
  return options;
}

struct Observed {
  std::string number;
  std::uint64_t entries = 0;
  bool has_first_old = false;
  bool has_last_new = false;
};

Observed Observe(const std::filesystem::path& store_directory, const X509* ca) {
  auto store = store::Store::Open(store_directory, {std::size_t{1} << 30, true});
  REQUIRE(store.has_value());
  auto txn = store->BeginRead();
  auto identity = store::IssuerIdentity::FromCertificate(ca);
  auto state = *store->GetIssuerState(txn->get(), identity->id);
  REQUIRE(state.has_value());
  auto partitions = store->ListPartitions(txn->get(), state->issuer_no);
  REQUIRE(partitions->size() == 1);
  Observed observed;
  observed.number = (*partitions)[0].base->number.ToString();
  observed.entries = *store->CountRevoked(txn->get(), state->issuer_no);
  observed.has_first_old = store->GetRevoked(txn->get(), state->issuer_no, Serial(1000))->has_value();
  observed.has_last_new = store->GetRevoked(txn->get(), state->issuer_no, Serial(1000 + 300'000 - 1))->has_value();
  return observed;
}

}  // namespace

TEST_CASE("integration: SIGKILL during an import leaves the old or the new CRL, never a mix") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  ca.Write(dir.path());
  // Old: serials 1000..201000; new: 101000..301000 (half replaced), big enough to take a while to import.
  WriteFile(dir.path() / "old.der", ToDer(ca.Crl(Range(1, 1000, 200'000)).get()));
  WriteFile(dir.path() / "new.der", ToDer(ca.Crl(Range(2, 101'000, 200'000)).get()));
  const std::string store = (dir.path() / "store").string();
  auto import = [&](const std::string& file) {
    return std::vector<std::string>{OCSP_CTL_BINARY, "--store", store, "import", "--issuer",
                                    (dir.path() / "ca.pem").string(), (dir.path() / file).string()};
  };
  REQUIRE(Run(import("old.der")).exit_code == 0);

  // How long an uninterrupted import of the new CRL takes, to spread the kills over it.
  const auto started = std::chrono::steady_clock::now();
  {
    TempDir probe;
    std::filesystem::copy(store, probe.path() / "store");
    auto argv = import("new.der");
    argv[2] = (probe.path() / "store").string();
    REQUIRE(Run(argv).exit_code == 0);
  }
  const auto full = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);

  std::mt19937 random(20261121);
  int saw_old = 0;
  int saw_new = 0;
  for (int attempt = 0; attempt < 25; ++attempt) {
    const auto delay = std::chrono::microseconds(random() % static_cast<unsigned>(full.count() + 1));
    Background importer(import("new.der"), dir.path() / "import.log");
    std::this_thread::sleep_for(delay);
    importer.Kill();
    const Observed observed = Observe(store, ca.certificate.get());
    INFO("attempt " << attempt << " killed after " << delay.count() << " us");
    if (observed.number == "1") {
      ++saw_old;
      CHECK(observed.entries == 200'000);
      CHECK(observed.has_first_old);
      CHECK_FALSE(observed.has_last_new);
    } else {
      ++saw_new;
      CHECK(observed.number == "2");
      CHECK(observed.entries == 200'000);
      CHECK_FALSE(observed.has_first_old);
      CHECK(observed.has_last_new);
      // Back to the old CRL for the next attempt: restore by copying the probe-free way (re-create).
      std::filesystem::remove_all(store);
      REQUIRE(Run(import("old.der")).exit_code == 0);
    }
  }
  MESSAGE("kills that left the old CRL: " << saw_old << ", the new one: " << saw_new);
  CHECK(saw_old + saw_new == 25);
}
