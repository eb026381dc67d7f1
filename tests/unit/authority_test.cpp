#include <doctest/doctest.h>

#include "importer/import.h"
#include "responder/authority.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::responder;
using ocsp::testing::CrlOptions;
using ocsp::testing::MakeRequest;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;
using metrics::Outcome;
using signer::CertStatus;
using signer::ResponseStatus;

namespace {

struct Fixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  TestCa unconfigured = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Unconfigured CA");
  FakeClock clock{SystemClock().Now()};
  store::Store store = *store::Store::Open(dir.path() / "store", {});
  store::IssuerDirectory issuers;
  std::unique_ptr<signer::SignerSet> signer;

  Fixture() {
    ca.Write(dir.path());
    REQUIRE(issuers.Add(*store::IssuerIdentity::FromCertificate(ca.certificate.get())).has_value());
    auto loaded = signer::Signer::Load({dir.path() / "responder.pem", dir.path() / "responder.key"},
                                       ca.certificate.get(), clock.Now());
    REQUIRE(loaded.has_value());
    std::vector<signer::Signer> one;
    one.push_back(std::move(*loaded));
    signer = std::make_unique<signer::SignerSet>(std::move(*signer::SignerSet::FromSigners(std::move(one))));
  }

  void ImportCrl(const CrlOptions& options) { REQUIRE(Import(ca, options).has_value()); }

  Result<importer::ImportReport> Import(const TestCa& issuer, const CrlOptions& options) {
    const auto path = dir.path() / ("crl-" + std::to_string(++written) + ".der");
    ocsp::testing::WriteFile(path, ToDer(issuer.Crl(options).get()));
    importer::ImportOptions import_options;
    import_options.allow_expired = true;
    return importer::Importer(store, dir.path() / "store", clock, import_options)
        .Import(issuer.certificate.get(), {{path, path.string()}});
  }
  int written = 0;

  Decision Decide(const Bytes& request_der, UnixSeconds grace = 0, const IssuedSerials* issued = nullptr) {
    StatusAuthority authority(store, issuers, {signer.get()}, clock, grace, 10 * 86400, {issued});
    auto decoded = DecodeRequest(request_der, {});
    REQUIRE(decoded.has_value());
    auto txn = store.BeginRead();
    REQUIRE(txn.has_value());
    decoded_ = std::move(*decoded);
    return authority.Decide(txn->get(), decoded_);
  }

  DecodedRequest decoded_;
};

CrlOptions StandardCrl(UnixSeconds now) {
  CrlOptions options;
  options.number = 3;
  options.this_update = now - 600;
  options.next_update = now + 86400;
  options.revoked = {{Serial(0x1002), now - 7200, 1, now - 86400}, {Serial(0x1005), now - 3600, 6, std::nullopt}};
  return options;
}

}  // namespace

TEST_CASE("authority: before any CRL, a configured issuer's serials are unknown without nextUpdate") {
  Fixture f;
  Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
  REQUIRE_FALSE(decision.exception.has_value());
  CHECK(decision.outcome == Outcome::kUnknown);
  REQUIRE(decision.answers.size() == 1);
  CHECK(decision.answers[0].status == CertStatus::kUnknown);
  CHECK_FALSE(decision.answers[0].next_update.has_value());
  CHECK_FALSE(decision.next_update.has_value());
}

TEST_CASE("authority: with a current CRL, listed serials are revoked and the others good") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.ImportCrl(StandardCrl(now));
  SUBCASE("revoked, with the entry's time, reason and invalidity date") {
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1002)}, EVP_sha256()));
    REQUIRE(decision.answers.size() == 1);
    const auto& answer = decision.answers[0];
    CHECK(decision.outcome == Outcome::kRevoked);
    CHECK(answer.status == CertStatus::kRevoked);
    CHECK(answer.revocation_time == now - 7200);
    CHECK(answer.reason == 1);
    CHECK(answer.invalidity_date == now - 86400);
    CHECK(answer.this_update == now - 600);
    CHECK(answer.next_update == now + 86400);
    CHECK(decision.signer == f.signer->signers()[0].get());
  }
  SUBCASE("certificateHold is answered revoked (JPKI never releases a hold)") {
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1005)}, EVP_sha1()));
    CHECK(decision.answers[0].status == CertStatus::kRevoked);
    CHECK(decision.answers[0].reason == 6);
  }
  SUBCASE("good, with the CRL's times") {
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
    CHECK(decision.outcome == Outcome::kGood);
    CHECK(decision.answers[0].status == CertStatus::kGood);
    CHECK(decision.answers[0].this_update == now - 600);
    CHECK(decision.next_update == now + 86400);
  }
  SUBCASE("several CertIDs are answered together and counted by the most serious") {
    Decision decision =
        f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001), Serial(0x1002)}, EVP_sha1()));
    REQUIRE(decision.answers.size() == 2);
    CHECK(decision.answers[0].status == CertStatus::kGood);
    CHECK(decision.answers[1].status == CertStatus::kRevoked);
    CHECK(decision.outcome == Outcome::kRevoked);
  }
}

TEST_CASE("authority: an issuer that is not configured is unauthorized, even with a CRL in the store") {
  Fixture f;
  CrlOptions options;
  REQUIRE(f.Import(f.unconfigured, options).has_value());
  Decision decision = f.Decide(MakeRequest(f.unconfigured.certificate.get(), {Serial(1)}, EVP_sha1()));
  REQUIRE(decision.exception.has_value());
  CHECK(*decision.exception == ResponseStatus::kUnauthorized);
  CHECK(decision.outcome == Outcome::kUnauthorized);
}

TEST_CASE("authority: a request mixing a served and an unserved issuer is unauthorized") {
  Fixture f;
  f.ImportCrl(StandardCrl(f.clock.Now()));
  Bytes der;
  {
    UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
    OCSP_request_add0_id(request.get(), ocsp::testing::MakeCertId(f.ca.certificate.get(), Serial(1), EVP_sha1()).release());
    OCSP_request_add0_id(request.get(),
                         ocsp::testing::MakeCertId(f.unconfigured.certificate.get(), Serial(1), EVP_sha1()).release());
    der.resize(static_cast<std::size_t>(i2d_OCSP_REQUEST(request.get(), nullptr)));
    unsigned char* cursor = der.data();
    i2d_OCSP_REQUEST(request.get(), &cursor);
  }
  Decision decision = f.Decide(der);
  REQUIRE(decision.exception.has_value());
  CHECK(*decision.exception == ResponseStatus::kUnauthorized);
}

TEST_CASE("authority: past the CRL's nextUpdate plus grace the answer is tryLater, never an expired response") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.ImportCrl(StandardCrl(now));
  const Bytes request = MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1());
  f.clock.Set(now + 86400 + 30);
  SUBCASE("no grace") {
    Decision decision = f.Decide(request);
    REQUIRE(decision.exception.has_value());
    CHECK(*decision.exception == ResponseStatus::kTryLater);
    CHECK(decision.outcome == Outcome::kTryLater);
  }
  SUBCASE("within the grace period") {
    Decision decision = f.Decide(request, 60);
    CHECK_FALSE(decision.exception.has_value());
    CHECK(decision.outcome == Outcome::kGood);
  }
}

TEST_CASE("authority: a CA whose key is declared compromised answers every serial revoked with cACompromise") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.ImportCrl(StandardCrl(now));
  {
    auto txn = f.store.BeginWrite();
    auto issuer = f.store.GetIssuer(txn->get(), f.issuers.at(0).id);
    REQUIRE(f.store.SetCompromise(*txn, **issuer, {now - 3600, now, "operator on duty"}).has_value());
    REQUIRE(txn->Commit().has_value());
  }
  Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
  REQUIRE(decision.answers.size() == 1);
  CHECK(decision.answers[0].status == CertStatus::kRevoked);
  CHECK(decision.answers[0].reason == 2);
  CHECK(decision.answers[0].revocation_time == now - 3600);
}

TEST_CASE("authority: with an expected partition missing, an unlisted serial is tryLater, a listed one revoked") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  auto partition = [&](const std::string& name, std::vector<ocsp::testing::RevokedSpec> revoked) {
    CrlOptions options = StandardCrl(now);
    options.revoked = std::move(revoked);
    ocsp::testing::DistributionPointSpec point;
    point.uri = "http://crl.test/" + name + ".crl";
    options.distribution_point = point;
    return options;
  };
  f.ImportCrl(partition("a", {{Serial(0x1002), now - 60, 1, std::nullopt}}));
  f.ImportCrl(partition("b", {}));
  {
    auto txn = f.store.BeginWrite();
    auto issuer = f.store.GetIssuer(txn->get(), f.issuers.at(0).id);
    REQUIRE(f.store.PinPartitions(*txn, **issuer, true).has_value());
    // Partition b is lost (what an operator's mistake or a failed sync would leave).
    auto partitions = f.store.ListPartitions(txn->get(), (*issuer)->state.issuer_no);
    REQUIRE(partitions->size() == 2);
    auto lost = (*partitions)[1];
    lost.base.reset();
    REQUIRE(f.store.PutPartition(*txn, (*issuer)->state.issuer_no, lost).has_value());
    REQUIRE(f.store.UpdateIssuer(*txn, **issuer).has_value());
    REQUIRE(txn->Commit().has_value());
  }
  Decision unlisted = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
  REQUIRE(unlisted.exception.has_value());
  CHECK(*unlisted.exception == ResponseStatus::kTryLater);
  Decision listed = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1002)}, EVP_sha1()));
  REQUIRE_FALSE(listed.exception.has_value());
  CHECK(listed.answers[0].status == CertStatus::kRevoked);
}

TEST_CASE("authority: when every responder certificate of the issuer has expired, the answer is tryLater") {
  Fixture f;
  f.clock.Set(*ToUnixSeconds(X509_get0_notAfter(f.ca.responder_certificate.get())) + 1);
  Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
  REQUIRE(decision.exception.has_value());
  CHECK(*decision.exception == ResponseStatus::kTryLater);
  CHECK(decision.reason.find("no responder certificate") != std::string::npos);
}

TEST_CASE("authority: with an issued-serials list, a serial never issued is unknown, not good") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  f.ImportCrl(StandardCrl(now));
  const IssuedSerials issued = *IssuedSerials::Parse("1000-10ff\n");
  SUBCASE("an issued serial absent from the CRL is good") {
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()), 0, &issued);
    CHECK(decision.answers[0].status == CertStatus::kGood);
  }
  SUBCASE("a serial outside the list is unknown, without nextUpdate, so not cached for long") {
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x2001)}, EVP_sha1()), 0, &issued);
    CHECK(decision.outcome == Outcome::kUnknown);
    CHECK(decision.answers[0].status == CertStatus::kUnknown);
    CHECK_FALSE(decision.next_update.has_value());
  }
  SUBCASE("the CRL still wins: a listed revocation is revoked even outside the list") {
    const IssuedSerials narrow = *IssuedSerials::Parse("1\n");
    Decision decision = f.Decide(MakeRequest(f.ca.certificate.get(), {Serial(0x1002)}, EVP_sha1()), 0, &narrow);
    CHECK(decision.answers[0].status == CertStatus::kRevoked);
  }
}
