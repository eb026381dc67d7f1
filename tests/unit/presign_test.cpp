// The presigned-response path: the presigner, the single writer, and what a stored response may be used for.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "importer/import.h"
#include "responder/presigner.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::responder;
using ocsp::testing::CrlOptions;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;

namespace {

struct Fixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  FakeClock clock{SystemClock().Now()};
  store::Store store;
  std::shared_ptr<Snapshot> snapshot = std::make_shared<Snapshot>();
  const signer::Signer* signer = nullptr;
  ResponseWriter writer{store, 1000};
  int written = 0;

  explicit Fixture(std::size_t map_size_bytes = store::kDefaultMapSizeBytes)
      : store(*store::Store::Open(dir.path() / "store", {.map_size_bytes = map_size_bytes})) {
    ca.Write(dir.path());
    REQUIRE(snapshot->issuers.Add(*store::IssuerIdentity::FromCertificate(ca.certificate.get())).has_value());
    auto loaded = signer::Signer::Load({dir.path() / "responder.pem", dir.path() / "responder.key"},
                                       ca.certificate.get(), clock.Now());
    REQUIRE(loaded.has_value());
    std::vector<signer::Signer> one;
    one.push_back(std::move(*loaded));
    snapshot->signers.push_back(
        std::make_unique<signer::SignerSet>(std::move(*signer::SignerSet::FromSigners(std::move(one)))));
    signer = snapshot->signers[0]->signers()[0].get();
    snapshot->authority = std::make_unique<StatusAuthority>(
        store, snapshot->issuers, std::vector<const signer::SignerSet*>{snapshot->signers[0].get()}, clock, 0);
  }

  void Import(const CrlOptions& options) {
    const auto path = dir.path() / ("crl-" + std::to_string(++written) + ".der");
    ocsp::testing::WriteFile(path, ToDer(ca.Crl(options).get()));
    importer::ImportOptions import_options;
    import_options.allow_expired = true;
    import_options.max_shrink_fraction = 1.0;
    REQUIRE(importer::Importer(store, dir.path() / "store", clock, import_options)
                .Import(ca.certificate.get(), {{path, path.string()}})
                .has_value());
  }

  Presigner MakePresigner(std::size_t batch = 4096) {
    PresignOptions options;
    options.threads = 2;
    options.batch = batch;
    options.idle_priority = false;
    std::shared_ptr<const Snapshot> current = snapshot;
    return Presigner(store, [current] { return current; }, writer, clock, options);
  }

  std::uint32_t IssuerNo() {
    auto txn = store.BeginRead();
    return (*store.GetIssuerState(txn->get(), snapshot->issuers.at(0).id))->issuer_no;
  }

  std::optional<store::StoredResponseInfo> Stored(std::uint64_t serial,
                                                  store::HashAlgorithm algorithm = store::HashAlgorithm::kSha1) {
    auto txn = store.BeginRead();
    auto found = store.GetResponse(txn->get(), IssuerNo(), algorithm, Serial(serial));
    REQUIRE(found.has_value());
    if (!*found) return std::nullopt;
    return (*found)->info;
  }

  // The stored DER, read back by OpenSSL: its status for `serial`, after checking the signature.
  int OpenSslStatus(std::uint64_t serial, int* reason = nullptr) {
    auto txn = store.BeginRead();
    auto found = *store.GetResponse(txn->get(), IssuerNo(), store::HashAlgorithm::kSha1, Serial(serial));
    REQUIRE(found.has_value());
    const unsigned char* in = found->der.data();
    UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &in, static_cast<long>(found->der.size())));
    REQUIRE(response);
    UniquePtr<OCSP_BASICRESP> basic(OCSP_response_get1_basic(response.get()));
    REQUIRE(basic);
    UniquePtr<X509_STORE> trust(X509_STORE_new());
    X509_STORE_add_cert(trust.get(), ca.certificate.get());
    CHECK(OCSP_basic_verify(basic.get(), nullptr, trust.get(), 0) == 1);
    auto id = ocsp::testing::MakeCertId(ca.certificate.get(), Serial(serial), EVP_sha1());
    int status = -1;
    int revocation_reason = -1;
    REQUIRE(OCSP_resp_find_status(basic.get(), id.get(), &status, &revocation_reason, nullptr, nullptr, nullptr) == 1);
    if (reason != nullptr) *reason = revocation_reason;
    return status;
  }
};

CrlOptions ThreeRevoked(UnixSeconds now) {
  CrlOptions options;
  options.number = 1;
  options.this_update = now - 600;
  options.next_update = now + 86400;
  options.revoked = {{Serial(0x10), now - 3 * 86400, 1, std::nullopt},
                     {Serial(0x11), now - 3600, 3, std::nullopt},  // the newest revocation
                     {Serial(0x12), now - 86400, 5, std::nullopt}};
  return options;
}

}  // namespace

TEST_CASE("presign: revoked serials are signed newest revocation first, each stating its entry, verified by OpenSSL") {
  Fixture f;
  f.Import(ThreeRevoked(f.clock.Now()));
  Presigner presigner = f.MakePresigner(/*batch=*/1);
  auto first = presigner.RunOnce();
  REQUIRE(first.has_value());
  CHECK(*first == 1);
  CHECK(f.Stored(0x11).has_value());  // newest first
  CHECK_FALSE(f.Stored(0x10).has_value());
  CHECK_FALSE(f.Stored(0x12).has_value());

  auto all = presigner.RunUntilDone();
  REQUIRE(all.has_value());
  CHECK(all->signed_responses == 3);
  int reason = -1;
  CHECK(f.OpenSslStatus(0x10, &reason) == V_OCSP_CERTSTATUS_REVOKED);
  CHECK(reason == 1);
  CHECK(f.OpenSslStatus(0x12, &reason) == V_OCSP_CERTSTATUS_REVOKED);
  CHECK(reason == 5);
  const auto info = f.Stored(0x11);
  REQUIRE(info.has_value());
  CHECK(info->status == store::StoredStatus::kRevoked);
  CHECK(info->this_update == f.clock.Now() - 600);
  CHECK(info->next_update == f.clock.Now() + 86400);
  CHECK(info->signer_id == f.signer->id());
  CHECK_FALSE(f.Stored(0x11, store::HashAlgorithm::kSha256).has_value());  // only the configured algorithms

  // Nothing left: another pass signs nothing.
  auto again = presigner.RunOnce();
  REQUIRE(again.has_value());
  CHECK(*again == 0);
}

TEST_CASE("presign: an import that changes a serial drops its stored response, and the next pass states the new status") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.Import(ThreeRevoked(now));
  Presigner presigner = f.MakePresigner();
  REQUIRE(presigner.RunUntilDone().has_value());
  REQUIRE(f.Stored(0x12).has_value());

  CrlOptions next = ThreeRevoked(now);
  next.number = 2;
  next.revoked[2] = {Serial(0x12), now - 60, 1, std::nullopt};  // cessation becomes keyCompromise
  f.Import(next);
  CHECK_FALSE(f.Stored(0x12).has_value());  // dropped in the import's transaction
  REQUIRE(f.Stored(0x10).has_value());      // unchanged serials keep theirs
  REQUIRE(presigner.RunUntilDone().has_value());
  int reason = -1;
  CHECK(f.OpenSslStatus(0x12, &reason) == V_OCSP_CERTSTATUS_REVOKED);
  CHECK(reason == 1);
}

TEST_CASE("presign: responses signed by another responder certificate, or from an older CRL near nextUpdate, are signed again") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.Import(ThreeRevoked(now));
  Presigner presigner = f.MakePresigner();
  REQUIRE(presigner.RunUntilDone().has_value());
  {
    // As if a previous responder certificate had signed 0x10.
    auto txn = f.store.BeginWrite();
    auto info = *f.Stored(0x10);
    info.signer_id = 42;
    REQUIRE(f.store.PutResponse(*txn, f.IssuerNo(), store::HashAlgorithm::kSha1, Serial(0x10), info, AsBytes("x"))
                .has_value());
    REQUIRE(txn->Commit().has_value());
  }
  REQUIRE(presigner.RunUntilDone().has_value());
  CHECK(f.Stored(0x10)->signer_id == f.signer->id());

  // A newer CRL arrives; the stored responses are re-signed from it once within the lead of their nextUpdate.
  CrlOptions next = ThreeRevoked(now);
  next.number = 2;
  next.this_update = now + 3600;
  next.next_update = now + 2 * 86400;
  f.clock.Advance(2 * 3600);
  f.Import(next);
  REQUIRE(presigner.RunUntilDone().has_value());
  CHECK(f.Stored(0x11)->this_update == now - 600);  // not yet within the 12-hour lead: kept
  f.clock.Advance(86400 - 2 * 3600 - 11 * 3600);
  REQUIRE(presigner.RunUntilDone().has_value());
  CHECK(f.Stored(0x11)->this_update == now + 3600);
  CHECK(f.Stored(0x11)->next_update == now + 2 * 86400);
}

TEST_CASE("response writer: a response the store no longer supports is not written") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.Import(ThreeRevoked(now));
  ResponseToStore good;  // a "good" answer for a serial the CRL revokes, as if signed before the import
  good.issuer_no = f.IssuerNo();
  good.serial = Serial(0x11);
  good.info.status = store::StoredStatus::kGood;
  good.info.this_update = now - 600;
  good.info.next_update = now + 86400;
  good.der = Bytes{1, 2, 3};
  ResponseToStore later = good;  // claims a nextUpdate beyond the CRL's
  later.serial = Serial(0x99);
  later.info.next_update = now + 2 * 86400;
  ResponseToStore fine = good;
  fine.serial = Serial(0x98);
  REQUIRE(f.writer.Enqueue(good));
  REQUIRE(f.writer.Enqueue(later));
  REQUIRE(f.writer.Enqueue(fine));
  f.writer.Flush();
  CHECK(f.writer.stats().stale == 2);
  CHECK(f.writer.stats().written == 1);
  CHECK_FALSE(f.Stored(0x11).has_value());
  CHECK_FALSE(f.Stored(0x99).has_value());
  CHECK(f.Stored(0x98).has_value());
}

TEST_CASE("response writer: once the map is three quarters full, good responses stop growing and imports still fit") {
  // 2,048 pages of 4 KiB; a batch of 100 responses takes about 5% of it (a page each). Pages a transaction
  // frees are LMDB's to reuse two transactions later, so the file goes on growing for a batch or two after
  // the share is reached: with the production batch (up to 1,024 responses, ~4 MiB) the last quarter of a
  // map of 64 MiB or more has room for that.
  Fixture f(std::size_t{8} << 20);
  ResponseWriter writer(f.store, 1'000'000);  // a cap far above what the map holds
  const UnixSeconds now = f.clock.Now();
  f.Import(ThreeRevoked(now));
  auto good_count = [&] {
    auto txn = f.store.BeginRead();
    return f.store.CountResponses(txn->get())->good;
  };
  std::uint64_t count_when_held = 0;
  std::uint64_t serial = 0x1000;
  // A flood of never-seen serials, each answered good and handed to the writer: far more than the map holds.
  for (int round = 0; round < 60; ++round) {
    for (int i = 0; i < 100; ++i) {
      ResponseToStore good;
      good.issuer_no = f.IssuerNo();
      good.serial = Serial(serial++);
      good.info.status = store::StoredStatus::kGood;
      good.info.this_update = now - 600;
      good.info.next_update = now + 86400;
      good.info.requested_hour = static_cast<std::uint32_t>(now / 3600);
      good.der = Bytes(1500, 0x30);  // the size of an RSA-2048 response with its certificate
      REQUIRE(writer.Enqueue(std::move(good)));
    }
    writer.Flush();
    if (writer.stats().held_by_map > 0 && count_when_held == 0) count_when_held = good_count();
  }
  const ResponseWriterStats stats = writer.stats();
  CHECK(stats.failures == 0);  // never MDB_MAP_FULL
  CHECK(stats.held_by_map > 0);
  REQUIRE(count_when_held > 0);
  CHECK(good_count() <= count_when_held);  // the set stopped growing: the new ones replaced the oldest
  CHECK(stats.evicted >= 6000 - count_when_held - 100);  // at most one batch past the count when held
  CHECK(f.Stored(serial - 1).has_value());  // the latest are kept
  CHECK(*f.store.MapFill() < 1.0);
  // The import the room was kept for: a new CRL replacing the first commits.
  CrlOptions next = ThreeRevoked(now);
  next.number = 2;
  next.revoked.push_back({Serial(0x13), now - 60, 1, std::nullopt});
  f.Import(next);
  CHECK_FALSE(f.Stored(0x13).has_value());
}

TEST_CASE("presign: a stored response serves only what the store states now") {
  signer::SingleAnswer answer;
  answer.status = signer::CertStatus::kRevoked;
  answer.revocation_time = 1000;
  answer.reason = 1;
  answer.this_update = 5000;
  answer.next_update = 9000;
  store::StoredResponseInfo info;
  info.status = store::StoredStatus::kRevoked;
  info.revocation_time = 1000;
  info.reason = store::Reason::kKeyCompromise;
  info.signer_id = 7;
  info.this_update = 5000;
  info.next_update = 9000;
  CHECK(StoredResponseServes(info, answer, 7, 6000));
  CHECK_FALSE(StoredResponseServes(info, answer, 8, 6000));  // another responder certificate is in use
  CHECK_FALSE(StoredResponseServes(info, answer, 7, 9000));  // expired
  CHECK_FALSE(StoredResponseServes(info, answer, 7, 4000));  // thisUpdate in the future
  auto other_reason = info;
  other_reason.reason = store::Reason::kSuperseded;
  CHECK_FALSE(StoredResponseServes(other_reason, answer, 7, 6000));
  auto beyond = info;
  beyond.next_update = 9500;  // later than the CRLs now held allow
  CHECK_FALSE(StoredResponseServes(beyond, answer, 7, 6000));
  auto older = info;
  older.this_update = 4000;
  older.next_update = 8000;  // an older, still valid statement of the same status
  CHECK(StoredResponseServes(older, answer, 7, 6000));
  answer.status = signer::CertStatus::kGood;
  CHECK_FALSE(StoredResponseServes(info, answer, 7, 6000));
}

TEST_CASE("presign: with good_from_issued_serials, every listed serial no CRL revokes gets a good response, within the cap") {
  Fixture f;
  f.Import(ThreeRevoked(f.clock.Now()));  // 0x10, 0x11, 0x12 revoked
  f.snapshot->issued.push_back(std::make_unique<IssuedSerials>(*IssuedSerials::Parse("10-1f\n")));
  PresignOptions options;
  options.threads = 2;
  options.idle_priority = false;
  options.good_from_issued_serials = true;
  SUBCASE("all of them") {
    options.batch = 4;  // several scans, each resuming where the last stopped
    std::shared_ptr<const Snapshot> current = f.snapshot;
    Presigner presigner(f.store, [current] { return current; }, f.writer, f.clock, options);
    auto done = presigner.RunUntilDone();
    REQUIRE(done.has_value());
    CHECK(done->signed_responses == 16);  // 3 revoked + 13 good
    CHECK(f.OpenSslStatus(0x13) == V_OCSP_CERTSTATUS_GOOD);
    CHECK(f.OpenSslStatus(0x1f) == V_OCSP_CERTSTATUS_GOOD);
    CHECK(f.OpenSslStatus(0x11) == V_OCSP_CERTSTATUS_REVOKED);
    CHECK_FALSE(f.Stored(0x20).has_value());  // not listed
  }
  SUBCASE("no more than max_good_responses") {
    options.max_good_responses = 5;
    std::shared_ptr<const Snapshot> current = f.snapshot;
    Presigner presigner(f.store, [current] { return current; }, f.writer, f.clock, options);
    REQUIRE(presigner.RunUntilDone().has_value());
    auto txn = f.store.BeginRead();
    CHECK(f.store.CountResponses(txn->get())->good == 5);
  }
}

TEST_CASE("presign: periodic scans are left out while nothing changed, and run again on an import or a re-sign time") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.Import(ThreeRevoked(now));
  PresignOptions options;
  options.threads = 1;
  options.idle_priority = false;
  options.scan_interval_seconds = 1;
  options.resign_lead_seconds = 3600;
  std::shared_ptr<const Snapshot> current = f.snapshot;
  Presigner presigner(f.store, [current] { return current; }, f.writer, f.clock, options);
  presigner.Start();
  auto wait_for = [&](auto done) {
    for (int i = 0; i < 100 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return done();
  };
  // The first scans sign the three, the next finds nothing: quiet from then on.
  REQUIRE(wait_for([&] { return presigner.progress().signed_responses == 3; }));
  REQUIRE(wait_for([&] { return presigner.progress().quiet_skips >= 1; }));
  const auto scans = presigner.progress().scans;
  REQUIRE(wait_for([&] { return presigner.progress().quiet_skips >= 2; }));
  CHECK(presigner.progress().scans == scans);

  // An import changes the issuer's state: the next periodic scan runs and signs the new serial.
  CrlOptions next = ThreeRevoked(now);
  next.number = 2;
  next.revoked.push_back({Serial(0x13), now - 60, 1, std::nullopt});
  f.Import(next);
  CHECK(wait_for([&] { return f.Stored(0x13).has_value(); }));
  CHECK(presigner.progress().scans > scans);

  // Quiet again; then the clock reaches the stored responses' nextUpdate (the CRL's, a day on): they are
  // stale, and a scan runs although nothing in the store changed.
  REQUIRE(wait_for([&] {
    const auto before = presigner.progress().quiet_skips;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    return presigner.progress().quiet_skips > before;
  }));
  const auto quiet_scans = presigner.progress().scans;
  f.clock.Advance(86400);
  CHECK(wait_for([&] { return presigner.progress().scans > quiet_scans; }));
  presigner.Stop();
}
