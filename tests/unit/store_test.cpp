#include <doctest/doctest.h>

#include "store/store.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::store;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;

namespace {

CrlSummary Summary(std::uint8_t number) {
  CrlSummary crl;
  crl.number = *CrlNumber::FromMagnitude(Bytes{number});
  crl.this_update = 1'700'000'000;
  crl.next_update = 1'700'086'400;
  crl.imported_at = 1'700'000'100;
  crl.sha256.fill(number);
  return crl;
}

NewEntry Revoked(std::uint64_t serial, std::optional<Reason> reason, std::optional<UnixSeconds> invalidity = {}) {
  return NewEntry{Serial(serial), RevokedEntry{1'699'000'000, reason, invalidity, 0}};
}

}  // namespace

TEST_CASE("store: a new store records its format version and reopens") {
  TempDir dir;
  { REQUIRE(Store::Open(dir.path(), {}).has_value()); }
  auto reopened = Store::Open(dir.path(), {.map_size_bytes = std::size_t{1} << 30, .read_only = true});
  REQUIRE(reopened.has_value());
}

TEST_CASE("store: a read-only open of a missing store says there is no store") {
  TempDir dir;
  auto store = Store::Open(dir.path() / "absent", {.map_size_bytes = std::size_t{1} << 30, .read_only = true});
  REQUIRE_FALSE(store.has_value());
}

TEST_CASE("store: a store of another format version is refused with both versions named") {
  TempDir dir;
  {
    auto store = Store::Open(dir.path(), {});
    REQUIRE(store.has_value());
  }
  {  // Rewrite the version key as a future format would.
    auto env = Environment::Open(dir.path(), {});
    REQUIRE(env.has_value());
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env->get(), nullptr, 0, &txn) == 0);
    MDB_dbi meta = 0;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    Bytes version;
    AppendU32(version, 99);
    REQUIRE(Put(txn, meta, AsBytes("format_version"), version).has_value());
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  auto store = Store::Open(dir.path(), {});
  REQUIRE_FALSE(store.has_value());
  CHECK(store.error().message.find("99") != std::string::npos);
  CHECK(store.error().message.find(std::to_string(kFormatVersion)) != std::string::npos);
}

TEST_CASE("store: ReplaceCrl makes the CRL current and its entries answer lookups") {
  TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.has_value());
  const TestCa ca = TestCa::Create();
  auto identity = IssuerIdentity::FromCertificate(ca.certificate.get());
  REQUIRE(identity.has_value());

  std::vector<NewEntry> entries{Revoked(0x1002, Reason::kKeyCompromise, 1'698'000'000),
                                Revoked(0x1003, std::nullopt)};
  {
    auto txn = store->BeginWrite();
    REQUIRE(txn.has_value());
    auto issuer = store->EnsureIssuer(*txn, *identity);
    REQUIRE(issuer.has_value());
    CHECK_FALSE(issuer->state.current_crl.has_value());
    auto id = store->ReplaceCrl(*txn, *issuer, Summary(1), entries);
    REQUIRE(id.has_value());
    CHECK(*id == 1);
    REQUIRE(txn->Commit().has_value());
  }
  auto read = store->BeginRead();
  REQUIRE(read.has_value());
  auto state = store->GetIssuerState(read->get(), identity->id);
  REQUIRE(state.has_value());
  REQUIRE(state->has_value());
  REQUIRE((*state)->current_crl.has_value());
  CHECK((*state)->current_crl->number.ToString() == "1");
  CHECK((*state)->current_crl->entry_count == 2);
  CHECK((*state)->current_crl->next_update == 1'700'086'400);

  auto hit = store->GetRevoked(read->get(), (*state)->issuer_no, Serial(0x1002));
  REQUIRE(hit.has_value());
  REQUIRE(hit->has_value());
  CHECK((*hit)->reason == Reason::kKeyCompromise);
  CHECK((*hit)->invalidity_date == 1'698'000'000);
  CHECK((*hit)->revocation_time == 1'699'000'000);
  CHECK((*hit)->crl_id == 1);

  auto no_reason = store->GetRevoked(read->get(), (*state)->issuer_no, Serial(0x1003));
  REQUIRE(no_reason.has_value());
  REQUIRE(no_reason->has_value());
  CHECK_FALSE((*no_reason)->reason.has_value());
  CHECK_FALSE((*no_reason)->invalidity_date.has_value());

  auto miss = store->GetRevoked(read->get(), (*state)->issuer_no, Serial(0x1001));
  REQUIRE(miss.has_value());
  CHECK_FALSE(miss->has_value());
}

TEST_CASE("store: a new CRL replaces only its own issuer's entries and keeps the history") {
  TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.has_value());
  const TestCa first = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Same Name");
  const TestCa second = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Same Name");  // another key generation
  auto first_id = IssuerIdentity::FromCertificate(first.certificate.get());
  auto second_id = IssuerIdentity::FromCertificate(second.certificate.get());
  REQUIRE(first_id.has_value());
  REQUIRE(second_id.has_value());
  CHECK(first_id->id != second_id->id);

  auto write = [&](const IssuerIdentity& identity, std::uint8_t number, std::vector<NewEntry> entries) {
    auto txn = store->BeginWrite();
    REQUIRE(txn.has_value());
    auto issuer = store->EnsureIssuer(*txn, identity);
    REQUIRE(issuer.has_value());
    REQUIRE(store->ReplaceCrl(*txn, *issuer, Summary(number), entries).has_value());
    REQUIRE(txn->Commit().has_value());
  };
  write(*first_id, 1, {Revoked(1, Reason::kSuperseded), Revoked(2, Reason::kSuperseded)});
  write(*second_id, 1, {Revoked(1, Reason::kCessationOfOperation)});
  write(*first_id, 2, {Revoked(3, Reason::kAffiliationChanged)});

  auto read = store->BeginRead();
  REQUIRE(read.has_value());
  auto first_state = *store->GetIssuerState(read->get(), first_id->id);
  auto second_state = *store->GetIssuerState(read->get(), second_id->id);
  REQUIRE(first_state.has_value());
  REQUIRE(second_state.has_value());
  CHECK(first_state->issuer_no != second_state->issuer_no);
  CHECK(*store->CountRevoked(read->get(), first_state->issuer_no) == 1);
  CHECK(*store->CountRevoked(read->get(), second_state->issuer_no) == 1);
  CHECK_FALSE(store->GetRevoked(read->get(), first_state->issuer_no, Serial(1))->has_value());
  CHECK(store->GetRevoked(read->get(), second_state->issuer_no, Serial(1))->has_value());
  CHECK((*store->GetRevoked(read->get(), first_state->issuer_no, Serial(3)))->crl_id == 2);

  auto history = store->GetCrl(read->get(), first_state->issuer_no, 1);
  REQUIRE(history.has_value());
  REQUIRE(history->has_value());
  CHECK((*history)->number.ToString() == "1");
  CHECK((*history)->entry_count == 2);
  CHECK(store->ListIssuers(read->get())->size() == 2);
}

TEST_CASE("store: unsorted entries are refused rather than stored twice") {
  TempDir dir;
  auto store = Store::Open(dir.path(), {});
  const TestCa ca = TestCa::Create();
  auto identity = IssuerIdentity::FromCertificate(ca.certificate.get());
  auto txn = store->BeginWrite();
  auto issuer = store->EnsureIssuer(*txn, *identity);
  std::vector<NewEntry> entries{Revoked(5, std::nullopt), Revoked(5, std::nullopt)};
  CHECK_FALSE(store->ReplaceCrl(*txn, *issuer, Summary(1), entries).has_value());
}

TEST_CASE("store: CRL numbers compare as integers of up to 20 octets") {
  auto small = *CrlNumber::FromMagnitude(Bytes{0x09});
  auto larger = *CrlNumber::FromMagnitude(Bytes{0x01, 0x00});
  auto padded = *CrlNumber::FromMagnitude(Bytes{0x00, 0x09});
  CHECK(small < larger);
  CHECK(small == padded);
  CHECK(larger.ToString() == "256");
  CHECK(CrlNumber::FromMagnitude(Bytes(20, 0xff)).has_value());
  CHECK(CrlNumber::FromMagnitude(Bytes(20, 0xff))->ToString() == "1461501637330902918203684832716283019655932542975");
  CHECK_FALSE(CrlNumber::FromMagnitude(Bytes(21, 0x01)).has_value());
}
