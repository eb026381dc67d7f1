// The importer killed at any moment leaves the store exactly at the old or the new CRL, never a mix; and a
// responder running beside it keeps answering, each answer consistent with one of the two.
#include <doctest/doctest.h>
#include <signal.h>

#include <openssl/ocsp.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include "importer/import.h"
#include "tests/integration/process.h"
#include "tests/support/http_client.h"
#include "tests/support/ocsp_check.h"
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

namespace {

// Two CRL contents the imports alternate between. A revokes [kFirstA, kFirstA + kEntries), B the same count
// from kFirstB: they share the middle, and each has serials the other does not.
constexpr std::uint64_t kEntries = 10'000;
constexpr std::uint64_t kFirstA = 10'000;
constexpr std::uint64_t kFirstB = 15'000;
constexpr std::uint64_t kAlwaysGood = 5'000;
constexpr std::uint64_t kAlwaysRevoked = 17'000;
constexpr std::uint64_t kOnlyA = kFirstA;                  // revoked in A, good in B
constexpr std::uint64_t kOnlyB = kFirstB + kEntries - 1;   // good in A, revoked in B

CrlOptions Content(bool a, long number) {
  const UnixSeconds now = SystemClock().Now();
  CrlOptions options = Range(number, a ? kFirstA : kFirstB, kEntries);
  options.this_update = now - 600;
  options.next_update = now + 86400;
  for (auto& entry : options.revoked) entry.revoked_at = now - 7200;
  return options;
}

// Which content the store holds, read straight from LMDB: 'A', 'B', or '?' for anything else (a mix).
char StoreContent(const std::filesystem::path& store_directory, const X509* ca, std::string& number) {
  auto store = store::Store::Open(store_directory, {std::size_t{64} << 20, true});
  REQUIRE(store.has_value());
  auto txn = store->BeginRead();
  REQUIRE(txn.has_value());
  auto identity = store::IssuerIdentity::FromCertificate(ca);
  auto state = *store->GetIssuerState(txn->get(), identity->id);
  REQUIRE(state.has_value());
  auto partitions = store->ListPartitions(txn->get(), state->issuer_no);
  REQUIRE(partitions->size() == 1);
  number = (*partitions)[0].base->number.ToString();
  auto revoked = [&](std::uint64_t serial) {
    return store->GetRevoked(txn->get(), state->issuer_no, Serial(serial))->has_value();
  };
  const std::uint64_t count = *store->CountRevoked(txn->get(), state->issuer_no);
  if (count != kEntries || !revoked(kAlwaysRevoked) || revoked(kAlwaysGood)) return '?';
  if (revoked(kOnlyA) && !revoked(kOnlyB) && revoked(kFirstA + 1) && !revoked(kFirstB + kEntries)) return 'A';
  if (!revoked(kOnlyA) && revoked(kOnlyB) && !revoked(kFirstA + 1) && revoked(kFirstB + kEntries - 2)) return 'B';
  return '?';
}

// What one OCSP answer over the four probe serials says: 'A', 'B', 'T' (tryLater), or an error message.
std::string Classify(const Result<HttpResponse>& response, const X509* responder) {
  if (!response) return "no HTTP response: " + response.error().Describe();
  if (response->status != 200) return "HTTP " + std::to_string(response->status);
  auto checked = CheckOcspResponse(AsBytes(response->body), responder);
  if (!checked) return checked.error().Describe();
  if (checked->response_status == OCSP_RESPONSE_STATUS_TRYLATER) return "T";
  if (checked->response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return "OCSP exception status " + std::to_string(checked->response_status);
  }
  if (checked->answers.size() != 4) return "expected 4 answers, got " + std::to_string(checked->answers.size());
  std::string statuses;
  for (const auto& answer : checked->answers) {
    statuses += answer.status == V_OCSP_CERTSTATUS_GOOD ? 'g' : answer.status == V_OCSP_CERTSTATUS_REVOKED ? 'r' : 'u';
  }
  // Order of the request: always good, always revoked, only A, only B.
  if (statuses == "grrg") return "A";
  if (statuses == "grgr") return "B";
  return "statuses " + statuses + " match neither CRL";
}

}  // namespace

TEST_CASE("integration: 100 imports SIGKILLed at random points leave the old or the new CRL while the responder answers throughout") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  ca.Write(dir.path());
  const std::filesystem::path store = dir.path() / "store";
  WriteFile(dir.path() / "ocsp-responder.toml", R"(
[responder]
listen = "127.0.0.1:0"
workers = 2
signer_threads = 2
[store]
path = "store"
map_size_mib = 64
[metrics]
listen = ""
[[issuer]]
name = "crash-ca"
certificate = "ca.pem"
responder_certificate = "responder.pem"
responder_key = "responder.key"
)");
  auto import = [&](const std::filesystem::path& store_directory, const std::string& file) {
    return std::vector<std::string>{OCSP_CTL_BINARY, "--store", store_directory.string(), "import", "--issuer",
                                    (dir.path() / "ca.pem").string(), (dir.path() / file).string()};
  };
  long number = 1;
  WriteFile(dir.path() / "crl-1.der", ToDer(ca.Crl(Content(true, number)).get()));
  REQUIRE(Run(import(store, "crl-1.der")).exit_code == 0);

  // An uninterrupted import of the other content, timed, to spread the kills over one.
  WriteFile(dir.path() / "probe.der", ToDer(ca.Crl(Content(false, 2)).get()));
  const auto started = std::chrono::steady_clock::now();
  {
    TempDir probe;
    std::filesystem::copy(store, probe.path() / "store");
    REQUIRE(Run(import(probe.path() / "store", "probe.der")).exit_code == 0);
  }
  const auto full = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);

  Background responder({OCSP_RESPONDER_BINARY, "--config", (dir.path() / "ocsp-responder.toml").string()},
                       dir.path() / "responder.log");
  const std::string log = responder.WaitForLog("event=listening");
  std::smatch match;
  REQUIRE(std::regex_search(log, match, std::regex("event=listening address=127\\.0\\.0\\.1:(\\d+)")));
  const auto port = static_cast<std::uint16_t>(std::stoi(match[1].str()));
  const X509* responder_certificate = ca.responder_certificate.get();
  const Bytes request = MakeRequest(ca.certificate.get(),
                                    {Serial(kAlwaysGood), Serial(kAlwaysRevoked), Serial(kOnlyA), Serial(kOnlyB)},
                                    EVP_sha1());
  REQUIRE(Classify(PostOcsp(port, request), responder_certificate) == "A");

  // The client: queries without pause for the whole test; every answer must be A, B or tryLater.
  std::atomic<bool> stop{false};
  std::atomic<int> answers_a{0}, answers_b{0}, try_later{0}, errors{0};
  std::mutex errors_mutex;
  std::vector<std::string> error_messages;
  std::thread client([&] {
    while (!stop.load()) {
      const std::string seen = Classify(PostOcsp(port, request, std::chrono::milliseconds(5000)), responder_certificate);
      if (seen == "A") ++answers_a;
      else if (seen == "B") ++answers_b;
      else if (seen == "T") ++try_later;
      else {
        ++errors;
        std::lock_guard lock(errors_mutex);
        if (error_messages.size() < 10) error_messages.push_back(seen);
      }
    }
  });

  std::mt19937 random(20261121);
  char current = 'A';
  long current_number = 1;
  std::map<long, char> attempted{{1, 'A'}};  // every CRL number tried, and its content
  int saw_old = 0;
  int saw_new = 0;
  int surfaced_late = 0;
  int mixed = 0;
  int stale_answers = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const char target = current == 'A' ? 'B' : 'A';
    ++number;
    const std::string file = "crl-" + std::to_string(number) + ".der";
    WriteFile(dir.path() / file, ToDer(ca.Crl(Content(target == 'A', number)).get()));
    // Up to 1.2 times an uninterrupted import, so that some imports finish before the kill. Every tenth import
    // is let finish (then the kill finds nothing): on a machine busier than during the timed probe, imports can
    // take more than 1.2 times as long, and the random kills alone might then never leave the new CRL.
    const bool let_finish = attempt % 10 == 9;
    auto delay = std::chrono::microseconds(random() % static_cast<unsigned>(full.count() * 6 / 5 + 1));
    Background importer(import(store, file), dir.path() / "import.log");
    if (let_finish) {
      const auto started_import = std::chrono::steady_clock::now();
      while (importer.Running() && std::chrono::steady_clock::now() - started_import < std::chrono::seconds(60)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      delay = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_import);
    } else {
      std::this_thread::sleep_for(delay);
    }
    importer.Kill();
    attempted[number] = target;
    std::string held_text;
    const char held = StoreContent(store, ca.certificate.get(), held_text);
    const long held_number = std::stol(held_text);
    INFO("attempt " << attempt << (let_finish ? " let finish after " : " killed after ") << delay.count()
                    << " us, importing " << target << " as CRL " << number);
    // A kill after LMDB wrote the new meta page but before it published the transaction id leaves the import
    // committed yet invisible: readers keep the old CRL until the next writer, recovering the dead one's
    // mutex, publishes it (mdb_mutex_failed). So an earlier attempt's CRL may surface one attempt late; it is
    // still one whole CRL, never older than what was seen before.
    if (held == current && held_number == current_number) {
      ++saw_old;
    } else if (held_number > current_number && attempted.contains(held_number) && attempted[held_number] == held) {
      ++(held_number == number ? saw_new : surfaced_late);
      current = held;
      current_number = held_number;
    } else {
      ++mixed;
      FAIL_CHECK("the store holds " << held << " as CRL " << held_number << ": not a whole CRL newer than or equal to "
                                    << current << " as CRL " << current_number);
    }
    // Once the store says X, the responder's next answer says X too (it reads the committed state).
    const std::string answer = Classify(PostOcsp(port, request), responder_certificate);
    if (answer != std::string(1, current) && answer != "T") {
      ++stale_answers;
      FAIL_CHECK("after the kill the responder answered " << answer << ", the store holds " << current);
    }
  }
  stop.store(true);
  client.join();
  for (const auto& message : error_messages) MESSAGE("client error: " << message);
  MESSAGE("kills that left the old CRL: " << saw_old << ", the new one: " << saw_new << ", an earlier attempt's CRL "
                                          << "that surfaced late: " << surfaced_late << "; client answers: A "
                                          << answers_a.load() << ", B " << answers_b.load() << ", tryLater "
                                          << try_later.load() << ", errors " << errors.load());
  CHECK(mixed == 0);
  CHECK(stale_answers == 0);
  CHECK(saw_old > 0);
  CHECK(saw_new > 0);
  CHECK(errors.load() == 0);
  CHECK(answers_a.load() > 0);
  CHECK(answers_b.load() > 0);
  CHECK(responder.Running());
  responder.Stop();
  const std::string responder_log = ReadText(dir.path() / "responder.log");
  CHECK_MESSAGE(responder_log.find("Sanitizer") == std::string::npos, responder_log);
  CHECK_MESSAGE(responder_log.find("runtime error:") == std::string::npos, responder_log);
}
