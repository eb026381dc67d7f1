#include <doctest/doctest.h>

#include <fstream>
#include <future>
#include <thread>

#include "importer/import.h"
#include "metrics/metrics.h"
#include "metrics/store_collector.h"
#include "common/openssl.h"
#include "responder/access_log.h"
#include "responder/signing_pool.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::metrics;
using ocsp::testing::CrlOptions;
using ocsp::testing::DistributionPointSpec;
using ocsp::testing::RevokedSpec;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;
using ocsp::testing::WriteFile;

namespace {

std::string Text(const std::filesystem::path& path) {
  auto bytes = ReadFile(path);
  return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
}

bool Has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// The value of the one sample whose line starts with `series` (name and labels exactly as exposed).
std::optional<double> Sample(const std::string& text, const std::string& series) {
  std::size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return std::nullopt;
}

std::string Requests(const std::string& method, const std::string& outcome, const std::string& verifier) {
  return "ocsp_responder_requests_total{method=\"" + method + "\",outcome=\"" + outcome + "\",verifier=\"" +
         verifier + "\"}";
}

struct StoreFixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  FakeClock clock{SystemClock().Now()};
  std::filesystem::path store_directory = dir.path() / "store";
  store::Store store = *store::Store::Open(store_directory, {});
  store::IssuerId id = store::IssuerIdentity::FromCertificate(ca.certificate.get())->id;
  std::shared_ptr<StoreCollector> collector =
      std::make_shared<StoreCollector>(store, store_directory, std::vector<IssuerLabel>{{id, "test-ca"}}, clock);
  int files = 0;

  Result<importer::ImportReport> Import(const CrlOptions& crl) {
    const auto path = dir.path() / ("crl-" + std::to_string(++files) + ".der");
    WriteFile(path, ToDer(ca.Crl(crl).get()));
    importer::ImportOptions options;
    options.allow_shrink = true;  // the tests drop entries on purpose
    return importer::Importer(store, store_directory, clock, options).Import(ca.certificate.get(), {{path, "crl.der"}});
  }
  std::string Scrape() const {
    ResponderMetrics metrics("1.0");
    metrics.AddCollectable(collector);
    return metrics.Serialize();
  }
};

CrlOptions Crl(long number, UnixSeconds this_update, std::vector<RevokedSpec> revoked = {}) {
  CrlOptions options;
  options.number = number;
  options.this_update = this_update;
  options.next_update = this_update + 86400;
  options.revoked = std::move(revoked);
  return options;
}

}  // namespace

TEST_CASE("metrics: requests are counted by method, outcome and verifier, summed over the workers") {
  ResponderMetrics metrics("9.9.9", {"acme", "bank"});
  WorkerMetrics& first = metrics.AddWorker();
  WorkerMetrics& second = metrics.AddWorker();
  first.ObserveRequest(Method::kGet, Outcome::kGood, kVerifierNone, 0.0002, 100);
  second.ObserveRequest(Method::kGet, Outcome::kGood, kVerifierNone, 0.0003, 200);
  second.ObserveRequest(Method::kPost, Outcome::kMalformed, kFirstNamedVerifier + 1, 0.00001, 7);
  first.ObserveRequest(Method::kPost, Outcome::kRefused, kVerifierUnregistered, 2.0, 0);
  const std::string text = metrics.Serialize();
  CHECK(Sample(text, Requests("GET", "good", "none")) == 2);
  CHECK(Sample(text, Requests("POST", "malformed", "bank")) == 1);
  CHECK(Sample(text, Requests("POST", "refused", "unregistered")) == 1);
  CHECK(Sample(text, Requests("POST", "revoked", "acme")) == 0);  // every combination exists from the start
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_count") == 4);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"1e-05\"}") == 1);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"0.00025\"}") == 2);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"0.0005\"}") == 3);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"1\"}") == 3);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"+Inf\"}") == 4);  // 2 s is past 1 s
  CHECK(Sample(text, "ocsp_responder_response_bytes_total") == 307);
  CHECK(Sample(text, "ocsp_build_info{version=\"9.9.9\"}") == 1);
}

TEST_CASE("metrics: stored hits, on-demand signatures, response age and signing load") {
  ResponderMetrics metrics("1");
  WorkerMetrics& worker = metrics.AddWorker();
  worker.ObserveAnswer(AnswerSource::kStored, 1200);
  worker.ObserveAnswer(AnswerSource::kStored, 30);
  worker.ObserveAnswer(AnswerSource::kSigned, 0);
  worker.ObserveSignature(0.0008);
  metrics.SetSigningLoadSource([] { return SigningLoad{2, 5, 256}; });
  const std::string text = metrics.Serialize();
  CHECK(Sample(text, "ocsp_responder_answers_total{source=\"stored\"}") == 2);
  CHECK(Sample(text, "ocsp_responder_answers_total{source=\"signed\"}") == 1);
  CHECK(Sample(text, "ocsp_responder_response_age_seconds_bucket{le=\"1\"}") == 1);
  CHECK(Sample(text, "ocsp_responder_response_age_seconds_bucket{le=\"60\"}") == 2);
  CHECK(Sample(text, "ocsp_responder_response_age_seconds_bucket{le=\"1800\"}") == 3);
  CHECK(Sample(text, "ocsp_responder_response_age_seconds_sum") == 1230);
  CHECK(Sample(text, "ocsp_signer_sign_duration_seconds_count") == 1);
  CHECK(Sample(text, "ocsp_signer_sign_duration_seconds_bucket{le=\"0.0005\"}") == 0);
  CHECK(Sample(text, "ocsp_signer_sign_duration_seconds_bucket{le=\"0.001\"}") == 1);
  CHECK(Sample(text, "ocsp_signer_in_flight_jobs") == 2);
  CHECK(Sample(text, "ocsp_signer_waiting_jobs") == 5);
  CHECK(Sample(text, "ocsp_signer_max_pending_jobs") == 256);
}

TEST_CASE("metrics: workers counting on their own threads lose nothing, and a scrape meanwhile is consistent") {
  ResponderMetrics metrics("1");
  std::vector<WorkerMetrics*> workers{&metrics.AddWorker(), &metrics.AddWorker(), &metrics.AddWorker()};
  constexpr int kEach = 200000;
  std::vector<std::thread> threads;
  for (WorkerMetrics* worker : workers) {
    threads.emplace_back([worker] {
      for (int i = 0; i < kEach; ++i) worker->ObserveRequest(Method::kGet, Outcome::kGood, kVerifierNone, 0.0001, 1);
    });
  }
  for (int i = 0; i < 20; ++i) {
    const std::string text = metrics.Serialize();  // while they count
    CHECK(Sample(text, "ocsp_responder_request_duration_seconds_count") ==
          Sample(text, "ocsp_responder_request_duration_seconds_bucket{le=\"+Inf\"}"));
  }
  for (std::thread& thread : threads) thread.join();
  const std::string text = metrics.Serialize();
  CHECK(Sample(text, Requests("GET", "good", "none")) == 3 * kEach);
  CHECK(Sample(text, "ocsp_responder_request_duration_seconds_count") == 3 * kEach);
  CHECK(Sample(text, "ocsp_responder_response_bytes_total") == 3 * kEach);
}

TEST_CASE("metrics: with metrics.enabled = false nothing is counted, and the families are still exposed") {
  ResponderMetrics metrics("1", {}, {.enabled = false});
  WorkerMetrics& worker = metrics.AddWorker();
  CHECK_FALSE(worker.enabled());
  worker.ObserveRequest(Method::kGet, Outcome::kGood, kVerifierNone, 0.001, 10);
  worker.ObserveAnswer(AnswerSource::kSigned, 0);
  const std::string text = metrics.Serialize();
  CHECK(Sample(text, Requests("GET", "good", "none")) == 0);
  CHECK(Sample(text, "ocsp_responder_answers_total{source=\"signed\"}") == 0);
}

TEST_CASE("metrics: a reload keeps each verifier's slot, gives new names fresh slots and drops removed ones") {
  ResponderMetrics metrics("1", {"acme", "bank"}, {.verifier_capacity = 5});
  WorkerMetrics& worker = metrics.AddWorker();
  worker.ObserveRequest(Method::kGet, Outcome::kGood, kFirstNamedVerifier, 0.001, 1);      // acme
  worker.ObserveRequest(Method::kGet, Outcome::kGood, kFirstNamedVerifier + 1, 0.001, 1);  // bank

  auto slots = metrics.SetVerifiers({"bank", "city"});
  REQUIRE(slots.has_value());
  CHECK(*slots == std::vector<VerifierIndex>{kFirstNamedVerifier + 1, kFirstNamedVerifier + 2});
  std::string text = metrics.Serialize();
  CHECK(Sample(text, Requests("GET", "good", "bank")) == 1);
  CHECK(Sample(text, Requests("GET", "good", "city")) == 0);  // a new name never inherits counts
  CHECK_FALSE(Has(text, "verifier=\"acme\""));

  // acme's slot is retired, not reused: with capacity 5 there is no room for a fourth name.
  auto full = metrics.SetVerifiers({"bank", "city", "dojo"});
  REQUIRE_FALSE(full.has_value());
  CHECK(Has(full.error().message, "verifier names since start"));
  CHECK_FALSE(metrics.SetVerifiers({"bank", "bank"}).has_value());
  CHECK_FALSE(metrics.SetVerifiers({"none"}).has_value());
  text = metrics.Serialize();
  CHECK(Has(text, "verifier=\"city\""));  // a refused reload changed nothing

  // A slot out of range is counted as "none" rather than written out of bounds.
  worker.ObserveRequest(Method::kGet, Outcome::kGood, 4000, 0.001, 1);
  CHECK(Sample(metrics.Serialize(), Requests("GET", "good", "none")) == 1);
}

TEST_CASE("metrics: the store's gauges per issuer and partition, and the import history's results") {
  StoreFixture f;
  const UnixSeconds this_update = f.clock.Now() - 600;
  REQUIRE(f.Import(Crl(7, this_update, {{Serial(0x10), 0, 6, std::nullopt}, {Serial(0x11), 0, 1, std::nullopt}})));
  f.clock.Advance(100);
  std::string text = f.Scrape();
  const std::string partition = "{issuer=\"test-ca\",partition=\"complete CRL\"}";
  CHECK(Sample(text, "ocsp_store_readable") == 1);
  CHECK(Sample(text, "ocsp_store_crl_number" + partition) == 7);
  CHECK(Sample(text, "ocsp_store_crl_this_update_timestamp_seconds" + partition) == this_update);
  CHECK(Sample(text, "ocsp_store_crl_next_update_timestamp_seconds" + partition) == this_update + 86400);
  CHECK(Sample(text, "ocsp_store_crl_time_to_next_update_seconds" + partition) == 86400 - 700);
  CHECK(Sample(text, "ocsp_store_crl_entries" + partition) == 2);
  CHECK(Sample(text, "ocsp_store_partition_missing" + partition) == 0);
  CHECK(Sample(text, "ocsp_store_issuer_complete{issuer=\"test-ca\"}") == 1);
  CHECK(Sample(text, "ocsp_store_issuer_entries{issuer=\"test-ca\"}") == 2);
  CHECK(Sample(text, "ocsp_importer_last_result{issuer=\"test-ca\",partition=\"complete CRL\",result=\"imported\"}") == 1);
  CHECK(Sample(text, "ocsp_importer_last_attempt_timestamp_seconds" + partition) == f.clock.Now() - 100);
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"imported\"}") == 1);
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"refused\"}") == 0);
  CHECK(Sample(text, "ocsp_importer_last_duration_seconds{issuer=\"test-ca\"}") > 0);
  CHECK(Sample(text, "ocsp_store_map_size_bytes") == static_cast<double>(store::kDefaultMapSizeBytes));
  CHECK(Sample(text, "ocsp_store_map_used_bytes") > 0);
  CHECK(Sample(text, "ocsp_store_readers_max") > 0);

  // A refused CRL (its number does not increase): the result turns, the success time stays.
  REQUIRE_FALSE(f.Import(Crl(6, this_update + 60)));
  // The hold on 0x10 disappears from the next CRL: kept revoked, and counted.
  f.clock.Advance(50);
  REQUIRE(f.Import(Crl(8, this_update + 120, {{Serial(0x11), 0, 1, std::nullopt}})));
  text = f.Scrape();
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"refused\"}") == 1);
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"imported\"}") == 2);
  CHECK(Sample(text, "ocsp_importer_holds_kept_total{issuer=\"test-ca\"}") == 1);
  CHECK(Sample(text, "ocsp_store_crl_number" + partition) == 8);
  CHECK(Sample(text, "ocsp_importer_last_success_timestamp_seconds" + partition) == f.clock.Now());
}

TEST_CASE("metrics: a pinned partition without a CRL is reported missing") {
  StoreFixture f;
  CrlOptions chiyoda = Crl(1, f.clock.Now() - 60);
  DistributionPointSpec point;
  point.directory_name = "/C=JP/OU=CRL Distribution Points/OU=Tokyo/CN=Chiyoda CRLDP";
  chiyoda.distribution_point = point;
  REQUIRE(f.Import(chiyoda));
  {
    auto txn = f.store.BeginWrite();
    auto issuer = f.store.GetIssuer(txn->get(), f.id);
    REQUIRE(f.store.PinPartitions(*txn, **issuer, true).has_value());
    // The shape a store has when an expected municipality's CRL is absent.
    auto partition = f.store.EnsurePartition(*txn, **issuer, store::PartitionScope::kUserCerts, Bytes{0x30, 0x00},
                                             "CN=Minato CRLDP");
    REQUIRE(partition.has_value());
    partition->expected = true;
    REQUIRE(f.store.PutPartition(*txn, (*issuer)->state.issuer_no, *partition).has_value());
    REQUIRE(f.store.UpdateIssuer(*txn, **issuer).has_value());
    REQUIRE(txn->Commit().has_value());
  }
  const std::string text = f.Scrape();
  CHECK(Sample(text, "ocsp_store_partition_missing{issuer=\"test-ca\",partition=\"CN=Minato CRLDP\"}") == 1);
  CHECK(Sample(text, "ocsp_store_issuer_partitions_missing{issuer=\"test-ca\"}") == 1);
  CHECK(Sample(text, "ocsp_store_issuer_partitions_expected{issuer=\"test-ca\"}") == 2);
  CHECK(Sample(text, "ocsp_store_issuer_complete{issuer=\"test-ca\"}") == 0);
  CHECK_FALSE(Has(text, "ocsp_store_crl_number{issuer=\"test-ca\",partition=\"CN=Minato CRLDP\"}"));
}

TEST_CASE("metrics: the history is read incrementally, a torn line waits, and a replaced file starts over") {
  StoreFixture f;
  REQUIRE(f.Import(Crl(1, f.clock.Now() - 60)));
  const auto history = f.store_directory / "history.jsonl";
  const std::string key = f.id.hex();
  auto line = [&](const std::string& result) {
    return "{\"at\":1,\"issuer\":\"x\",\"issuer_key\":\"" + key + "\",\"partition\":\"\",\"result\":\"" + result +
           "\",\"seconds\":0.5,\"holds_kept\":0}";
  };
  CHECK(Sample(f.Scrape(), "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"imported\"}") == 1);
  {
    std::ofstream out(history, std::ios::app);
    out << line("refused") << "\n" << line("refused").substr(0, 20);  // the second line is being written
  }
  CHECK(Sample(f.Scrape(), "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"refused\"}") == 1);
  {
    std::ofstream out(history, std::ios::app);
    out << line("refused").substr(20) << "\n";
  }
  CHECK(Sample(f.Scrape(), "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"refused\"}") == 2);
  // Rotated away: a new file with one line.
  std::filesystem::rename(history, history.string() + ".1");
  WriteFile(history, line("unchanged") + "\n");
  const std::string text = f.Scrape();
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"refused\"}") == 0);
  CHECK(Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"unchanged\"}") == 1);
  CHECK(Sample(text, "ocsp_importer_last_result{issuer=\"test-ca\",partition=\"complete CRL\",result=\"unchanged\"}") == 1);
}

TEST_CASE("access log: one logfmt line per request, buffered, and reopened after rotation") {
  TempDir dir;
  const auto path = dir.path() / "access.log";
  auto log = responder::AccessLog::Open(path);
  REQUIRE(log.has_value());
  responder::AccessLogWriter writer(**log);
  const UnixSeconds at = 1795249463;  // 2026-11-21T08:24:23Z
  writer.Append({at, "acme bank", "10.0.0.1", Method::kGet, Outcome::kGood, 0.000085, 1432});
  CHECK(Text(path).empty());  // buffered until a flush
  writer.Flush();
  CHECK(Text(path) ==
        "ts=2026-11-21T08:24:23Z verifier=acme_bank client=10.0.0.1 method=GET outcome=good duration_us=85 "
        "bytes=1432\n");

  std::filesystem::rename(path, dir.path() / "access.log.1");
  writer.Append({at, "none", "", Method::kPost, Outcome::kTryLater, 0.001, 0});
  writer.Flush();  // before the reopen: still the old file
  REQUIRE((*log)->Reopen().has_value());
  writer.Append({at, "none", "::1", Method::kPost, Outcome::kRevoked, 0.002, 10});
  writer.Flush();
  CHECK(Has(Text(dir.path() / "access.log.1"), "client=- method=POST outcome=tryLater"));
  CHECK(Text(path) ==
        "ts=2026-11-21T08:24:23Z verifier=none client=::1 method=POST outcome=revoked duration_us=2000 bytes=10\n");

  // Past the buffer's threshold the writer flushes by itself.
  for (int i = 0; i < 400; ++i) writer.Append({at, "none", "::1", Method::kGet, Outcome::kGood, 0, 1});
  CHECK(Text(path).size() > 16 * 1024);
}

TEST_CASE("metrics: a scrape of 1,900 partitions and a long history stays bounded") {
  StoreFixture f;
  REQUIRE(f.Import(Crl(1, f.clock.Now() - 60)));
  constexpr int kPartitions = 1900;
  {
    auto txn = f.store.BeginWrite();
    auto issuer = f.store.GetIssuer(txn->get(), f.id);
    for (int i = 0; i < kPartitions; ++i) {
      const std::string name = "CN=Municipality " + std::to_string(i) + " CRLDP,OU=CRL Distribution Points,O=JPKI";
      Bytes point{0x30, 0x02, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
      auto partition = f.store.EnsurePartition(*txn, **issuer, store::PartitionScope::kUserCerts, point, name);
      REQUIRE(partition.has_value());
      store::CrlSummary crl;
      crl.number = *store::CrlNumber::FromMagnitude(Bytes{0x01, 0x00});
      crl.this_update = f.clock.Now() - 3600;
      crl.next_update = f.clock.Now() + 86400;
      crl.entry_count = 15000;
      partition->base = crl;
      REQUIRE(f.store.PutPartition(*txn, (*issuer)->state.issuer_no, *partition).has_value());
    }
    REQUIRE(txn->Commit().has_value());
  }
  // A year of daily imports of every partition would be ~250 MB; write 40 MB, more than one scrape reads.
  {
    std::ofstream out(f.store_directory / "history.jsonl", std::ios::app);
    const std::string key = f.id.hex();
    std::string line;
    for (int i = 0; out.tellp() < std::streampos(40 << 20); ++i) {
      out << "{\"at\":" << 1000 + i << ",\"issuer\":\"CN=Test CA\",\"issuer_key\":\"" << key
          << "\",\"source\":\"/srv/crl/m" << i % kPartitions << ".crl\",\"partition\":\"CN=Municipality "
          << i % kPartitions << " CRLDP,OU=CRL Distribution Points,O=JPKI\",\"result\":\"imported\",\"seconds\":5.8}\n";
    }
  }
  const auto started = std::chrono::steady_clock::now();
  const std::string text = f.Scrape();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  MESSAGE("scrape of " << kPartitions << " partitions, 40 MB history: " << seconds << " s, " << text.size()
                       << " bytes");
  std::size_t crl_numbers = 0;
  for (std::size_t at = 0; (at = text.find("\nocsp_store_crl_number{", at)) != std::string::npos; ++at) ++crl_numbers;
  CHECK(crl_numbers == kPartitions + 1);  // and the complete CRL
  // Only the last 16 MiB of the history were parsed: fewer attempts than lines written.
  const auto attempts = Sample(text, "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"imported\"}");
  REQUIRE(attempts.has_value());
  CHECK(*attempts < (16 << 20) / 200);  // lines are about 250 bytes
  CHECK(*attempts > (16 << 20) / 300);
  CHECK(Has(text, "ocsp_importer_last_result{issuer=\"test-ca\",partition=\"CN=Municipality 7 CRLDP,"));
  CHECK(seconds < 20);  // generous: debug and sanitizer builds on a shared machine (figures: docs/metrics.md)

  // The next scrape reads nothing new: it costs the store walk only.
  const auto again = std::chrono::steady_clock::now();
  CHECK(Sample(f.Scrape(), "ocsp_importer_attempts_total{issuer=\"test-ca\",result=\"imported\"}") == *attempts);
  MESSAGE("second scrape: " << std::chrono::duration<double>(std::chrono::steady_clock::now() - again).count()
                            << " s");
}

TEST_CASE("metrics: the signing pool reports jobs running and waiting for the gauges") {
  responder::SigningPool pool(1, 4);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  REQUIRE(pool.TrySubmit([&started, released] {
    started.set_value();
    released.wait();
  }));
  started.get_future().wait();
  REQUIRE(pool.TrySubmit([released] { released.wait(); }));
  const auto load = pool.CurrentLoad();
  CHECK(load.running == 1);
  CHECK(load.waiting == 1);
  CHECK(load.max_pending == 4);
  release.set_value();
  pool.Stop();
  CHECK(pool.CurrentLoad().running == 0);
  CHECK(pool.CurrentLoad().waiting == 0);
}
