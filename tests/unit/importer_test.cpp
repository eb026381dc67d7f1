#include <doctest/doctest.h>

#include "importer/crl_import.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::importer;
using ocsp::testing::CrlOptions;
using ocsp::testing::RevokedSpec;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;
using ocsp::testing::ToPem;

namespace {

struct Fixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  SystemClock clock;
  store::Store store = *store::Store::Open(dir.path() / "store", {});

  Result<ImportReport> Import(const CrlOptions& options, ImportOptions import_options = {}) {
    return CrlImporter(store, clock, import_options).Import(ca.certificate.get(), ToDer(ca.Crl(options).get()));
  }
  Bytes DataFile() const { return *ReadFile(dir.path() / "store" / "data.mdb"); }
  std::optional<store::IssuerState> State() {
    auto txn = store.BeginRead();
    auto identity = store::IssuerIdentity::FromCertificate(ca.certificate.get());
    return *store.GetIssuerState(txn->get(), identity->id);
  }
};

CrlOptions Numbered(long number, std::vector<RevokedSpec> revoked = {}) {
  CrlOptions options;
  options.number = number;
  options.revoked = std::move(revoked);
  return options;
}

// Every refusal must leave the data file exactly as it was.
void CheckRefusedAndUnchanged(Fixture& fixture, const Result<ImportReport>& result, const Bytes& before,
                              std::string_view expected_words) {
  REQUIRE_FALSE(result.has_value());
  INFO(result.error().message);
  CHECK(result.error().message.find(expected_words) != std::string::npos);
  CHECK(fixture.DataFile() == before);
}

}  // namespace

TEST_CASE("import: a valid CRL becomes the issuer's current CRL with every entry") {
  Fixture fixture;
  const UnixSeconds now = fixture.clock.Now();
  auto report = fixture.Import(Numbered(5, {{Serial(0x1002), now - 7200, 1, now - 86400},
                                            {Serial(0x1003), now - 3600, 3, std::nullopt},
                                            {Serial(0x1004), now - 3600, std::nullopt, std::nullopt}}));
  REQUIRE(report.has_value());
  CHECK(report->outcome == ImportReport::Outcome::kImported);
  CHECK(report->entries == 3);
  CHECK(report->number.ToString() == "5");
  auto state = fixture.State();
  REQUIRE(state.has_value());
  REQUIRE(state->current_crl.has_value());
  CHECK(state->current_crl->entry_count == 3);

  auto txn = fixture.store.BeginRead();
  auto entry = fixture.store.GetRevoked(txn->get(), state->issuer_no, Serial(0x1002));
  REQUIRE(entry->has_value());
  CHECK((*entry)->reason == store::Reason::kKeyCompromise);
  CHECK((*entry)->revocation_time == now - 7200);
  CHECK((*entry)->invalidity_date == now - 86400);
}

TEST_CASE("import: PEM and DER of the same CRL are the same content") {
  Fixture fixture;
  auto crl = fixture.ca.Crl(Numbered(1, {{Serial(9), 0, 4, std::nullopt}}));
  CrlImporter importer(fixture.store, fixture.clock);
  REQUIRE(importer.Import(fixture.ca.certificate.get(), ToDer(crl.get())).has_value());
  auto again = importer.Import(fixture.ca.certificate.get(), AsBytes(ToPem(crl.get())));
  REQUIRE(again.has_value());
  CHECK(again->outcome == ImportReport::Outcome::kUnchanged);
}

TEST_CASE("import: re-importing the identical file is a no-op that changes nothing") {
  Fixture fixture;
  auto crl = ToDer(fixture.ca.Crl(Numbered(1)).get());
  CrlImporter importer(fixture.store, fixture.clock);
  REQUIRE(importer.Import(fixture.ca.certificate.get(), crl).has_value());
  const Bytes before = fixture.DataFile();
  auto again = importer.Import(fixture.ca.certificate.get(), crl);
  REQUIRE(again.has_value());
  CHECK(again->outcome == ImportReport::Outcome::kUnchanged);
  CHECK(fixture.DataFile() == before);
}

TEST_CASE("import: a CRL number that does not increase is refused and the store is unchanged") {
  Fixture fixture;
  REQUIRE(fixture.Import(Numbered(7, {{Serial(1), 0, 1, std::nullopt}})).has_value());
  const Bytes before = fixture.DataFile();
  SUBCASE("lower") {
    CheckRefusedAndUnchanged(fixture, fixture.Import(Numbered(6)), before, "lower than the held CRL number 7");
  }
  SUBCASE("equal with other content") {
    CheckRefusedAndUnchanged(fixture, fixture.Import(Numbered(7, {{Serial(2), 0, 1, std::nullopt}})), before,
                             "already held with different content");
  }
  auto state = fixture.State();
  CHECK(state->current_crl->number.ToString() == "7");
  CHECK(state->current_crl->entry_count == 1);
}

TEST_CASE("import: a CRL signed by another key is refused and the store is unchanged") {
  Fixture fixture;
  REQUIRE(fixture.Import(Numbered(1)).has_value());
  const Bytes before = fixture.DataFile();
  // Same issuer name, signed by a different key: what a forged or mismatched-generation CRL looks like.
  auto impostor_key = ocsp::testing::GenerateKey();
  auto forged = ocsp::testing::MakeCrl(fixture.ca.certificate.get(), impostor_key.get(), Numbered(2));
  auto result = CrlImporter(fixture.store, fixture.clock).Import(fixture.ca.certificate.get(), ToDer(forged.get()));
  CheckRefusedAndUnchanged(fixture, result, before, "signature does not verify");
}

TEST_CASE("import: a CRL of another CA is refused, naming both") {
  Fixture fixture;
  REQUIRE(fixture.Import(Numbered(1)).has_value());
  const Bytes before = fixture.DataFile();
  const TestCa other = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Other CA");
  auto result = CrlImporter(fixture.store, fixture.clock)
                    .Import(fixture.ca.certificate.get(), ToDer(other.Crl(Numbered(2)).get()));
  CheckRefusedAndUnchanged(fixture, result, before, "issued by OU=Other CA");
}

TEST_CASE("import: a CRL of another key generation with the same name is refused by its key identifier") {
  Fixture fixture;
  const TestCa next_generation = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA");
  REQUIRE(fixture.Import(Numbered(1)).has_value());
  const Bytes before = fixture.DataFile();
  auto result = CrlImporter(fixture.store, fixture.clock)
                    .Import(fixture.ca.certificate.get(), ToDer(next_generation.Crl(Numbered(2)).get()));
  CheckRefusedAndUnchanged(fixture, result, before, "authority key identifier");
}

TEST_CASE("import: CRLs this version cannot answer from correctly are refused") {
  Fixture fixture;
  REQUIRE(fixture.Import(Numbered(1)).has_value());
  const Bytes before = fixture.DataFile();
  const UnixSeconds now = fixture.clock.Now();
  SUBCASE("delta CRL") {
    CrlOptions options = Numbered(2);
    options.delta = true;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "delta CRL");
  }
  SUBCASE("partition") {
    CrlOptions options = Numbered(2);
    options.issuing_distribution_point = true;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "issuing distribution point");
  }
  SUBCASE("unknown critical CRL extension") {
    CrlOptions options = Numbered(2);
    options.unknown_critical_extension = true;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "unknown critical extension");
  }
  SUBCASE("unknown critical entry extension") {
    RevokedSpec entry{Serial(5), 0, 1, std::nullopt, true};
    CheckRefusedAndUnchanged(fixture, fixture.Import(Numbered(2, {entry})), before, "unknown critical extension");
  }
  SUBCASE("no CRL number") {
    CrlOptions options = Numbered(2);
    options.include_number = false;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "no CRL number");
  }
  SUBCASE("no nextUpdate") {
    CrlOptions options = Numbered(2);
    options.omit_next_update = true;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "no nextUpdate");
  }
  SUBCASE("expired") {
    CrlOptions options = Numbered(2);
    options.this_update = now - 3 * 86400;
    options.next_update = now - 86400;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "expired");
  }
  SUBCASE("thisUpdate in the future") {
    CrlOptions options = Numbered(2);
    options.this_update = now + 3600;
    CheckRefusedAndUnchanged(fixture, fixture.Import(options), before, "in the future");
  }
  SUBCASE("removeFromCRL in a full CRL") {
    CheckRefusedAndUnchanged(fixture, fixture.Import(Numbered(2, {{Serial(5), 0, 8, std::nullopt}})), before,
                             "removeFromCRL");
  }
  SUBCASE("not a CRL at all") {
    auto result = CrlImporter(fixture.store, fixture.clock).Import(fixture.ca.certificate.get(), AsBytes("garbage"));
    CheckRefusedAndUnchanged(fixture, result, before, "not a CRL");
  }
}

TEST_CASE("import: an expired CRL is imported when the operator forces it") {
  Fixture fixture;
  const UnixSeconds now = fixture.clock.Now();
  CrlOptions options = Numbered(1);
  options.this_update = now - 3 * 86400;
  options.next_update = now - 86400;
  ImportOptions forced;
  forced.allow_expired = true;
  CHECK(fixture.Import(options, forced).has_value());
}

TEST_CASE("import: a certificate that is not a CA cannot vouch for a CRL") {
  Fixture fixture;
  auto crl = ToDer(fixture.ca.Crl(Numbered(1)).get());
  auto result = CrlImporter(fixture.store, fixture.clock).Import(fixture.ca.responder_certificate.get(), crl);
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().message.find("not a CA") != std::string::npos);
}
