#include <doctest/doctest.h>

#include <algorithm>
#include <functional>

#include "store/store.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::store;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;

namespace {

RevokedEntry Revoked(std::optional<Reason> reason, std::uint32_t partition = 1, UnixSeconds when = 1'699'000'000) {
  return RevokedEntry{when, reason, std::nullopt, partition, false};
}

struct Fixture {
  TempDir dir;
  Store store = *Store::Open(dir.path(), {});
  TestCa ca = TestCa::Create();
  IssuerIdentity identity = *IssuerIdentity::FromCertificate(ca.certificate.get());

  // Merges `entries` (serial, entry) into the issuer in one transaction.
  EntryMerge::Counts Merge(EntryMerge::Mode mode, std::vector<bool> replaced,
                           const std::vector<std::pair<std::uint64_t, RevokedEntry>>& entries) {
    auto txn = store.BeginWrite();
    REQUIRE(txn.has_value());
    auto issuer = store.EnsureIssuer(*txn, identity);
    REQUIRE(issuer.has_value());
    auto merge = EntryMerge::Begin(store, *txn, issuer->state.issuer_no, mode, std::move(replaced));
    REQUIRE(merge.has_value());
    for (const auto& [serial, entry] : entries) REQUIRE(merge->Add(Serial(serial), entry).has_value());
    auto counts = merge->Finish();
    REQUIRE(counts.has_value());
    REQUIRE(txn->Commit().has_value());
    return *counts;
  }

  std::optional<RevokedEntry> Lookup(std::uint64_t serial) {
    auto txn = store.BeginRead();
    auto state = *store.GetIssuerState(txn->get(), identity.id);
    REQUIRE(state.has_value());
    return *store.GetRevoked(txn->get(), state->issuer_no, Serial(serial));
  }
};

}  // namespace

TEST_CASE("store: SerialLess orders serials of every size as numbers, one differing octet at a time") {
  // The reference: shorter minimal magnitudes are smaller, equal sizes compare octet by octet.
  auto reference = [](const Bytes& a, const Bytes& b) {
    if (a.size() != b.size()) return a.size() < b.size();
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  };
  std::uint32_t state = 12345;
  auto next_octet = [&] {
    state = state * 1103515245u + 12345u;
    return static_cast<std::uint8_t>(state >> 16);
  };
  int compared = 0;
  for (std::size_t size = 1; size <= 20; ++size) {
    for (int round = 0; round < 50; ++round) {
      Bytes a(size);
      for (auto& octet : a) octet = next_octet();
      a[0] |= 1;  // minimal: no leading zero octet
      // b differs from a in one octet (every position in turn, the words' overlap included), or is equal.
      for (std::size_t at = 0; at <= size; ++at) {
        Bytes b = a;
        if (at < size) b[at] = static_cast<std::uint8_t>(b[at] + 1 + next_octet() % 255);
        if (b[0] == 0) b[0] = 1;
        CHECK(SerialLess(a, b) == reference(a, b));
        CHECK(SerialLess(b, a) == reference(b, a));
        compared += 2;
      }
    }
  }
  CHECK_FALSE(SerialLess(Bytes{0x01, 0x00}, Bytes{0xff}));  // the longer is larger
  CHECK(SerialLess(Bytes{0xff}, Bytes{0x01, 0x00}));
  CHECK(compared > 20'000);
}

TEST_CASE("store: a new store records its format version and reopens read-only") {
  TempDir dir;
  { REQUIRE(Store::Open(dir.path(), {}).has_value()); }
  CHECK(Store::Open(dir.path(), {.map_size_bytes = std::size_t{1} << 30, .read_only = true}).has_value());
  CHECK_FALSE(Store::Open(dir.path() / "absent", {.map_size_bytes = std::size_t{1} << 30, .read_only = true}).has_value());
}

TEST_CASE("store: a store of another format version is refused with both versions named") {
  TempDir dir;
  { REQUIRE(Store::Open(dir.path(), {}).has_value()); }
  {
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

TEST_CASE("store: a merge writes new entries and answers lookups with every field") {
  Fixture f;
  RevokedEntry compromised{1'699'000'000, Reason::kKeyCompromise, 1'698'000'000, 1, false};
  const auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
                              {{0x1002, compromised}, {0x1003, Revoked(std::nullopt)}, {0x100000, Revoked(Reason::kSuperseded)}});
  CHECK(counts.added == 3);
  auto hit = f.Lookup(0x1002);
  REQUIRE(hit.has_value());
  CHECK(*hit == compromised);
  CHECK_FALSE(f.Lookup(0x1003)->reason.has_value());
  CHECK(f.Lookup(0x100000)->reason == Reason::kSuperseded);
  CHECK_FALSE(f.Lookup(0x1001).has_value());
}

TEST_CASE("store: an entry record is 11 octets for a JPKI entry and reads back whole in every combination") {
  Fixture f;
  std::vector<std::pair<std::uint64_t, RevokedEntry>> written;
  std::vector<std::size_t> sizes;
  std::uint64_t serial = 0x100;
  for (std::optional<Reason> reason : {std::optional<Reason>(), std::optional(Reason::kKeyCompromise), std::optional(Reason::kAaCompromise)}) {
    for (std::optional<UnixSeconds> invalidity : {std::optional<UnixSeconds>(), std::optional<UnixSeconds>(1'650'000'001)}) {
      for (bool hold_kept : {false, true}) {
        for (std::uint32_t partition : {1u, 0xffffu, 0x10000u, 0x7fff'fffeu}) {
          written.emplace_back(serial++, RevokedEntry{1'699'000'123, reason, invalidity, partition, hold_kept});
          sizes.push_back(11 + (invalidity ? 4 : 0) + (partition > 0xffff ? 2 : 0));
        }
      }
    }
  }
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true}, written);
  auto txn = f.store.BeginRead();
  REQUIRE(txn.has_value());
  MDB_dbi entries = 0;
  REQUIRE(mdb_dbi_open(txn->get(), "entries", 0, &entries) == 0);
  const auto state = *f.store.GetIssuerState(txn->get(), f.identity.id);
  REQUIRE(state.has_value());
  for (std::size_t i = 0; i < written.size(); ++i) {
    const auto& [number, entry] = written[i];
    CAPTURE(number);
    auto read = f.store.GetRevoked(txn->get(), state->issuer_no, Serial(number));
    REQUIRE(read.has_value());
    REQUIRE(read->has_value());
    CHECK(**read == entry);
    CHECK((*read)->hold_kept == entry.hold_kept);
    Bytes key{0, 0, 0, 0, 2};
    for (int b = 0; b < 4; ++b) key[b] = static_cast<std::uint8_t>(state->issuer_no >> (24 - 8 * b));
    key.push_back(static_cast<std::uint8_t>(number >> 8));
    key.push_back(static_cast<std::uint8_t>(number));
    auto record = Get(txn->get(), entries, key);
    REQUIRE(record.has_value());
    REQUIRE(record->has_value());
    CHECK((*record)->size() == sizes[i]);
  }
}

TEST_CASE("store: replacing a partition writes only the differences and leaves other partitions alone") {
  Fixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true, true},
          {{1, Revoked(Reason::kSuperseded, 1)}, {2, Revoked(Reason::kSuperseded, 2)}, {3, Revoked(Reason::kSuperseded, 1)},
           {4, Revoked(Reason::kSuperseded, 1)}});
  // Partition 1 again: serial 1 unchanged, 3 changed, 4 gone, 5 new. Partition 2 is not being replaced.
  const auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true, false},
                              {{1, Revoked(Reason::kSuperseded, 1)}, {3, Revoked(Reason::kKeyCompromise, 1)},
                               {5, Revoked(Reason::kAffiliationChanged, 1)}});
  CHECK(counts.unchanged == 1);
  CHECK(counts.changed == 1);
  CHECK(counts.removed == 1);
  CHECK(counts.added == 1);
  CHECK(f.Lookup(2).has_value());  // partition 2's entry survives
  CHECK(f.Lookup(3)->reason == Reason::kKeyCompromise);
  CHECK_FALSE(f.Lookup(4).has_value());
  CHECK(f.Lookup(5).has_value());
}

TEST_CASE("store: a certificateHold that a newer CRL drops stays revoked and is counted") {
  Fixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
          {{7, Revoked(Reason::kCertificateHold)}, {8, Revoked(Reason::kSuperseded)}});
  const auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true}, {{8, Revoked(Reason::kSuperseded)}});
  CHECK(counts.holds_kept == 1);
  auto kept = f.Lookup(7);
  REQUIRE(kept.has_value());
  CHECK(kept->reason == Reason::kCertificateHold);
  CHECK(kept->hold_kept);
}

TEST_CASE("store: a delta adds and updates, and removeFromCRL removes, but never a hold") {
  Fixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
          {{1, Revoked(Reason::kSuperseded)}, {2, Revoked(Reason::kCertificateHold)}, {3, Revoked(Reason::kSuperseded)}});
  const auto counts = f.Merge(EntryMerge::Mode::kApplyDelta, {},
                              {{1, Revoked(Reason::kRemoveFromCrl)}, {2, Revoked(Reason::kRemoveFromCrl)},
                               {4, Revoked(Reason::kKeyCompromise)}});
  CHECK(counts.removed == 1);
  CHECK(counts.holds_kept == 1);
  CHECK(counts.added == 1);
  CHECK_FALSE(f.Lookup(1).has_value());
  CHECK(f.Lookup(2).has_value());
  CHECK(f.Lookup(3).has_value());  // a delta removes nothing it does not name
  CHECK(f.Lookup(4)->reason == Reason::kKeyCompromise);
}

TEST_CASE("store: a serial listed twice, out of order, or by two partitions is refused") {
  Fixture f;
  auto txn = f.store.BeginWrite();
  auto issuer = f.store.EnsureIssuer(*txn, f.identity);
  {
    auto merge = EntryMerge::Begin(f.store, *txn, issuer->state.issuer_no, EntryMerge::Mode::kReplacePartitions, {false, true});
    REQUIRE(merge->Add(Serial(5), Revoked(std::nullopt)).has_value());
    CHECK_FALSE(merge->Add(Serial(5), Revoked(std::nullopt)).has_value());
    CHECK_FALSE(merge->Add(Serial(4), Revoked(std::nullopt)).has_value());
  }
  txn->Abort();
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true, false}, {{9, Revoked(std::nullopt, 1)}});
  auto second = f.store.BeginWrite();
  auto again = f.store.EnsureIssuer(*second, f.identity);
  auto merge = EntryMerge::Begin(f.store, *second, again->state.issuer_no, EntryMerge::Mode::kReplacePartitions,
                                 {false, false, true});
  auto refused = merge->Add(Serial(9), Revoked(std::nullopt, 2));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message.find("another partition") != std::string::npos);
}

TEST_CASE("store: serials of different lengths keep numeric order") {
  Fixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
          {{0xff, Revoked(std::nullopt)}, {0x100, Revoked(std::nullopt)}, {0x1000000, Revoked(std::nullopt)}});
  const auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
                              {{0xff, Revoked(std::nullopt)}, {0x1000000, Revoked(std::nullopt)}});
  CHECK(counts.unchanged == 2);
  CHECK(counts.removed == 1);
  CHECK_FALSE(f.Lookup(0x100).has_value());
}

TEST_CASE("store: coverage is complete with a full CRL, or with every pinned partition held") {
  Fixture f;
  auto txn = f.store.BeginWrite();
  auto issuer = f.store.EnsureIssuer(*txn, f.identity);
  auto a = f.store.EnsurePartition(*txn, *issuer, PartitionScope::kUserCerts, AsBytes("dp-a"), "A");
  auto b = f.store.EnsurePartition(*txn, *issuer, PartitionScope::kUserCerts, AsBytes("dp-b"), "B");
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(b->partition_no == a->partition_no + 1);
  auto again = f.store.EnsurePartition(*txn, *issuer, PartitionScope::kUserCerts, AsBytes("dp-a"), "A");
  CHECK(again->partition_no == a->partition_no);
  CrlSummary crl;
  crl.number = *CrlNumber::FromMagnitude(Bytes{1});
  crl.this_update = 100;
  crl.next_update = 500;
  a->base = crl;
  REQUIRE(f.store.PutPartition(*txn, issuer->state.issuer_no, *a).has_value());
  REQUIRE(f.store.UpdateIssuer(*txn, *issuer).has_value());
  CHECK_FALSE(issuer->state.coverage.complete);  // not pinned: nothing says which partitions exist
  CHECK(issuer->state.coverage.partitions_held == 1);
  CHECK(issuer->state.coverage.earliest_next_update == 500);

  crl.next_update = 300;
  crl.this_update = 50;
  b->base = crl;
  REQUIRE(f.store.PutPartition(*txn, issuer->state.issuer_no, *b).has_value());
  REQUIRE(f.store.PinPartitions(*txn, *issuer, true).has_value());
  CHECK(issuer->state.coverage.partitions_expected == 2);
  CHECK(issuer->state.coverage.complete);
  CHECK(issuer->state.coverage.earliest_next_update == 300);
  CHECK(issuer->state.coverage.oldest_this_update == 50);

  auto lost = *f.store.GetPartition(txn->get(), issuer->state.issuer_no, b->partition_no);
  CHECK(lost->expected);
  lost->base.reset();  // the pinned partition B is lost
  REQUIRE(f.store.PutPartition(*txn, issuer->state.issuer_no, *lost).has_value());
  auto reread = f.store.GetIssuer(txn->get(), f.identity.id);
  REQUIRE(f.store.UpdateIssuer(*txn, **reread).has_value());
  CHECK_FALSE((*reread)->state.coverage.complete);
}

TEST_CASE("store: CRL numbers compare as integers of up to 20 octets") {
  auto small = *CrlNumber::FromMagnitude(Bytes{0x09});
  auto larger = *CrlNumber::FromMagnitude(Bytes{0x01, 0x00});
  CHECK(small < larger);
  CHECK(small == *CrlNumber::FromMagnitude(Bytes{0x00, 0x09}));
  CHECK(larger.ToString() == "256");
  CHECK(CrlNumber::FromMagnitude(Bytes(20, 0xff))->ToString() == "1461501637330902918203684832716283019655932542975");
  CHECK_FALSE(CrlNumber::FromMagnitude(Bytes(21, 0x01)).has_value());
}

namespace {

StoredResponseInfo GoodInfo(std::uint32_t hour = 100) {
  StoredResponseInfo info;
  info.status = StoredStatus::kGood;
  info.signer_id = 7;
  info.this_update = 1'700'000'000;
  info.next_update = 1'700'086'400;
  info.produced_at = 1'700'000'100;
  info.requested_hour = hour;
  return info;
}

struct ResponseFixture : Fixture {
  std::uint32_t issuer_no = 0;
  ResponseFixture() {
    auto txn = store.BeginWrite();
    issuer_no = store.EnsureIssuer(*txn, identity)->state.issuer_no;
    REQUIRE(txn->Commit().has_value());
  }
  void Put(std::uint64_t serial, HashAlgorithm algorithm, const StoredResponseInfo& info, std::string_view der) {
    auto txn = store.BeginWrite();
    REQUIRE(store.PutResponse(*txn, issuer_no, algorithm, Serial(serial), info, AsBytes(der)).has_value());
    REQUIRE(txn->Commit().has_value());
  }
  std::optional<std::string> Der(std::uint64_t serial, HashAlgorithm algorithm = HashAlgorithm::kSha1) {
    auto txn = store.BeginRead();
    auto found = store.GetResponse(txn->get(), issuer_no, algorithm, Serial(serial));
    REQUIRE(found.has_value());
    if (!*found) return std::nullopt;
    return std::string((*found)->der.begin(), (*found)->der.end());
  }
  StoredResponseCounts Counts() {
    auto txn = store.BeginRead();
    return *store.CountResponses(txn->get());
  }
};

}  // namespace

TEST_CASE("store: a stored response is kept per serial and algorithm with its header") {
  ResponseFixture f;
  f.Put(0x10, HashAlgorithm::kSha1, GoodInfo(), "sha1-response");
  f.Put(0x10, HashAlgorithm::kSha256, GoodInfo(), "sha256-response");
  CHECK(f.Der(0x10) == "sha1-response");
  CHECK(f.Der(0x10, HashAlgorithm::kSha256) == "sha256-response");
  CHECK_FALSE(f.Der(0x11).has_value());
  auto txn = f.store.BeginRead();
  auto found = *f.store.GetResponse(txn->get(), f.issuer_no, HashAlgorithm::kSha1, Serial(0x10));
  REQUIRE(found.has_value());
  CHECK(found->info.signer_id == 7);
  CHECK(found->info.next_update == 1'700'086'400);
  CHECK(found->info.requested_hour == 100);
  txn = f.store.BeginRead();
  CHECK(f.Counts().good == 2);
  f.Put(0x10, HashAlgorithm::kSha1, GoodInfo(), "replaced");  // replacing does not count twice
  CHECK(f.Counts().good == 2);
  CHECK(f.Der(0x10) == "replaced");
}

TEST_CASE("store: an import that changes a serial's entry drops its stored responses, and only those") {
  ResponseFixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
          {{0x20, Revoked(Reason::kCertificateHold)}, {0x21, Revoked(Reason::kKeyCompromise)},
           {0x22, Revoked(Reason::kSuperseded)}});
  StoredResponseInfo revoked = GoodInfo();
  revoked.status = StoredStatus::kRevoked;
  for (std::uint64_t serial : {0x20, 0x21, 0x22}) f.Put(serial, HashAlgorithm::kSha1, revoked, "revoked");
  f.Put(0x30, HashAlgorithm::kSha1, GoodInfo(), "good-30");
  f.Put(0x30, HashAlgorithm::kSha256, GoodInfo(), "good-30-256");
  f.Put(0x31, HashAlgorithm::kSha1, GoodInfo(), "good-31");
  CHECK(f.Counts().good == 3);
  CHECK(f.Counts().revoked == 3);

  // Next CRL: 0x21 changes reason, 0x22 disappears, 0x30 becomes revoked, 0x20 (a hold) is dropped but kept.
  auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
                        {{0x21, Revoked(Reason::kCaCompromise)}, {0x30, Revoked(Reason::kKeyCompromise)}});
  CHECK(counts.responses_dropped == 4);
  CHECK(f.Der(0x20) == "revoked");  // still a hold: still true
  CHECK_FALSE(f.Der(0x21).has_value());
  CHECK_FALSE(f.Der(0x22).has_value());
  CHECK_FALSE(f.Der(0x30).has_value());
  CHECK_FALSE(f.Der(0x30, HashAlgorithm::kSha256).has_value());
  CHECK(f.Der(0x31) == "good-31");
  CHECK(f.Counts().good == 1);
  CHECK(f.Counts().revoked == 1);
}

TEST_CASE("store: a declared CA compromise drops every stored response of the issuer") {
  ResponseFixture f;
  f.Put(0x40, HashAlgorithm::kSha1, GoodInfo(), "good");
  f.Put(0x41, HashAlgorithm::kSha256, GoodInfo(), "good");
  auto txn = f.store.BeginWrite();
  auto issuer = *f.store.GetIssuer(txn->get(), f.identity.id);
  REQUIRE(issuer.has_value());
  REQUIRE(f.store.SetCompromise(*txn, *issuer, {1'690'000'000, 1'700'000'000, "test"}).has_value());
  REQUIRE(txn->Commit().has_value());
  CHECK_FALSE(f.Der(0x40).has_value());
  CHECK_FALSE(f.Der(0x41, HashAlgorithm::kSha256).has_value());
  CHECK(f.Counts().good == 0);
}

TEST_CASE("store: good responses are evicted least recently requested first, and a touch moves one up") {
  ResponseFixture f;
  for (std::uint64_t serial = 1; serial <= 5; ++serial) {
    f.Put(serial, HashAlgorithm::kSha1, GoodInfo(static_cast<std::uint32_t>(100 + serial)), "good");
  }
  {
    auto txn = f.store.BeginWrite();
    CHECK(*f.store.TouchResponse(*txn, f.issuer_no, HashAlgorithm::kSha1, Serial(1), 200));
    CHECK_FALSE(*f.store.TouchResponse(*txn, f.issuer_no, HashAlgorithm::kSha1, Serial(99), 200));
    CHECK(*f.store.EvictGoodResponses(*txn, 3) == 2);
    REQUIRE(txn->Commit().has_value());
  }
  CHECK(f.Der(1).has_value());  // touched: now the most recent
  CHECK_FALSE(f.Der(2).has_value());
  CHECK_FALSE(f.Der(3).has_value());
  CHECK(f.Der(4).has_value());
  CHECK(f.Der(5).has_value());
  CHECK(f.Counts().good == 3);
}

TEST_CASE("store: walking an issuer's revoked entries yields each with its stored responses") {
  ResponseFixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true},
          {{0x05, Revoked(Reason::kKeyCompromise)}, {0x0100, Revoked(std::nullopt)}, {0x0200, Revoked(std::nullopt)}});
  StoredResponseInfo revoked = GoodInfo();
  revoked.status = StoredStatus::kRevoked;
  f.Put(0x0100, HashAlgorithm::kSha256, revoked, "r");
  f.Put(0x07, HashAlgorithm::kSha1, GoodInfo(), "g");  // a good serial between two revoked ones
  std::vector<std::pair<std::string, int>> seen;
  auto txn = f.store.BeginRead();
  REQUIRE(f.store
              .WalkRevoked(txn->get(), f.issuer_no,
                           [&](ByteView serial, const RevokedEntry&, const auto& stored) {
                             int mask = 0;
                             for (std::size_t i = 0; i < stored.size(); ++i) mask |= stored[i] ? (1 << i) : 0;
                             seen.emplace_back(ToHex(serial), mask);
                           })
              .has_value());
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<std::string, int>{"05", 0});
  CHECK(seen[1] == std::pair<std::string, int>{"0100", 2});
  CHECK(seen[2] == std::pair<std::string, int>{"0200", 0});
  int responses = 0;
  REQUIRE(f.store.WalkResponses(txn->get(), f.issuer_no, [&](ByteView, HashAlgorithm, const auto&) { ++responses; })
              .has_value());
  CHECK(responses == 2);
}

TEST_CASE("store: an entry re-imported with the same fingerprint is skipped, counted unchanged, and never decoded") {
  Fixture f;
  auto txn = f.store.BeginWrite();
  auto issuer = f.store.EnsureIssuer(*txn, f.identity);
  {
    auto merge = EntryMerge::Begin(f.store, *txn, issuer->state.issuer_no, EntryMerge::Mode::kReplacePartitions, {false, true});
    REQUIRE(merge->Add(Serial(1), Revoked(Reason::kSuperseded), 11).has_value());
    REQUIRE(merge->Add(Serial(2), Revoked(Reason::kSuperseded), 22).has_value());
    REQUIRE(merge->Add(Serial(3), Revoked(Reason::kSuperseded), 33).has_value());
    REQUIRE(merge->Finish().has_value());
  }
  REQUIRE(txn->Commit().has_value());
  txn = f.store.BeginWrite();
  auto merge = EntryMerge::Begin(f.store, *txn, issuer->state.issuer_no, EntryMerge::Mode::kReplacePartitions, {false, true});
  CHECK(*merge->SkipIfUnchanged(Serial(1), 11, 1));        // same bytes: skipped
  CHECK_FALSE(*merge->SkipIfUnchanged(Serial(3), 99, 1));  // serial 2 is dropped on the way; 3 has other bytes
  REQUIRE(merge->Add(Serial(3), Revoked(Reason::kKeyCompromise), 99).has_value());
  CHECK_FALSE(*merge->SkipIfUnchanged(Serial(4), 44, 1));  // not held
  REQUIRE(merge->Add(Serial(4), Revoked(Reason::kSuperseded), 44).has_value());
  auto counts = merge->Finish();
  REQUIRE(counts.has_value());
  CHECK(counts->unchanged == 1);
  CHECK(counts->removed == 1);
  CHECK(counts->changed == 1);
  CHECK(counts->added == 1);
  CHECK(*f.store.GetEntryFingerprint(txn->get(), issuer->state.issuer_no, Serial(3)) == 99);
  CHECK(f.store.GetRevoked(txn->get(), issuer->state.issuer_no, Serial(3)).value()->reason == Reason::kKeyCompromise);
}

TEST_CASE("store: the fingerprint of another partition's entry or of a kept hold never skips it") {
  Fixture f;
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true}, {{7, Revoked(Reason::kCertificateHold)}});
  f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true}, {});  // the hold is dropped: kept, flagged
  auto txn = f.store.BeginWrite();
  auto issuer = f.store.EnsureIssuer(*txn, f.identity);
  auto merge = EntryMerge::Begin(f.store, *txn, issuer->state.issuer_no, EntryMerge::Mode::kReplacePartitions, {false, true});
  CHECK_FALSE(*merge->SkipIfUnchanged(Serial(7), 0, 1));  // no fingerprint never matches
  REQUIRE(merge->Finish().has_value());
  CHECK(f.store.GetRevoked(txn->get(), issuer->state.issuer_no, Serial(7)).value()->hold_kept);
}

TEST_CASE("store: the entry fingerprint is SipHash-2-4 (the reference vector) and never 0") {
  std::array<std::uint8_t, 16> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  Bytes message;
  for (std::uint8_t i = 0; i < 15; ++i) message.push_back(i);
  // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
  CHECK(EntryFingerprinter(key)(message) == 0xa129ca6149be45e5ULL);
  CHECK(EntryFingerprinter(key)({}) == 0x726fdb47dd0e0e31ULL);
}

namespace {

// An older release's store, as it wrote it: its databases, and format_version `version` in meta. The write
// transaction is left open for the test to add its records and commit.
struct OldStore {
  MDB_txn* txn = nullptr;
  MDB_dbi meta = 0;
  MDB_dbi entries = 0;
};

OldStore BeginOldStore(MDB_env* env, std::uint32_t version) {
  OldStore old;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &old.txn) == 0);
  REQUIRE(mdb_dbi_open(old.txn, "meta", MDB_CREATE, &old.meta) == 0);
  for (const char* name : {"issuers", "partitions", "partition_ids", "crls", "compromises", "responses", "response_lru"}) {
    MDB_dbi other = 0;
    REQUIRE(mdb_dbi_open(old.txn, name, MDB_CREATE, &other) == 0);
  }
  REQUIRE(mdb_dbi_open(old.txn, "entries", MDB_CREATE, &old.entries) == 0);
  Bytes value;
  AppendU32(value, version);
  REQUIRE(Put(old.txn, old.meta, AsBytes("format_version"), value).has_value());
  return old;
}

// The entry both old-store tests write (issuer 1, serial 5, superseded at 0x6553f100) reads as written.
void CheckOldEntry(const Store& store, MDB_txn* txn) {
  auto entry = store.GetRevoked(txn, 1, Serial(5));
  REQUIRE(entry.has_value());
  REQUIRE(entry->has_value());
  CHECK((*entry)->reason == Reason::kSuperseded);
  CHECK((*entry)->revocation_time == 0x6553f100);
}

// An older store is taken as it is by a reader, then opened for writing (which upgrades it): `check` gets the
// store and a write transaction in which the old entry (issuer 1, serial 5) reads as written, and its
// changes are committed.
void OpenForWriting(const std::filesystem::path& directory, const std::function<void(Store&, WriteTxn&)>& check) {
  CHECK(Store::Open(directory, {.map_size_bytes = std::size_t{1} << 30, .read_only = true}).has_value());
  auto store = Store::Open(directory, {});
  REQUIRE(store.has_value());
  auto txn = store->BeginWrite();
  REQUIRE(txn.has_value());
  CheckOldEntry(*store, txn->get());
  check(*store, *txn);
  REQUIRE(txn->Commit().has_value());
}

// After the upgrade, read raw: the format version in meta, and the size of each entry record under `keys`.
struct UpgradedStore {
  std::uint32_t version = 0;
  std::vector<std::size_t> record_sizes;
};

UpgradedStore ReadUpgraded(const std::filesystem::path& directory, const std::vector<Bytes>& keys) {
  auto env = Environment::Open(directory, {});
  REQUIRE(env.has_value());
  auto txn = ReadTxn::Begin(env->get());
  REQUIRE(txn.has_value());
  MDB_dbi meta = 0;
  MDB_dbi entries = 0;
  REQUIRE(mdb_dbi_open(txn->get(), "meta", 0, &meta) == 0);
  REQUIRE(mdb_dbi_open(txn->get(), "entries", 0, &entries) == 0);
  auto version = Get(txn->get(), meta, AsBytes("format_version"));
  REQUIRE(version.has_value());
  REQUIRE(version->has_value());
  UpgradedStore upgraded{ReadU32((*version)->data()), {}};
  for (const Bytes& key : keys) {
    auto record = Get(txn->get(), entries, key);
    REQUIRE(record.has_value());
    REQUIRE(record->has_value());
    upgraded.record_sizes.push_back((*record)->size());
  }
  return upgraded;
}

}  // namespace

TEST_CASE("store: a version-3 store is upgraded on a writable open: its entries read as before and gain fingerprints") {
  TempDir dir;
  {
    // A version-3 store with one 16-byte entry record, as the previous release wrote it.
    auto env = Environment::Open(dir.path(), {});
    REQUIRE(env.has_value());
    auto [txn, meta, entries] = BeginOldStore(env->get(), 3);
    const Bytes key{0, 0, 0, 1, 1, 0x05};  // issuer 1, serial 5
    const Bytes value{2, 0x01, 4, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
    REQUIRE(Put(txn, entries, key, value).has_value());
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  OpenForWriting(dir.path(), [](Store& store, WriteTxn& txn) {
    CHECK(*store.GetEntryFingerprint(txn.get(), 1, Serial(5)) == 0);
    auto merge = EntryMerge::Begin(store, txn, 1, EntryMerge::Mode::kReplacePartitions, {false, true});
    CHECK_FALSE(*merge->SkipIfUnchanged(Serial(5), 77, 1));
    REQUIRE(merge->Add(Serial(5), RevokedEntry{0x6553f100, Reason::kSuperseded, std::nullopt, 1, false}, 77).has_value());
    auto counts = merge->Finish();
    REQUIRE(counts.has_value());
    CHECK(counts->unchanged == 1);  // the same status: not a change, though the record now has a fingerprint
    CHECK(counts->changed == 0);
    CHECK(*store.GetEntryFingerprint(txn.get(), 1, Serial(5)) == 77);
  });
  // The upgrade is recorded: this build's version from now on.
  CHECK(ReadUpgraded(dir.path(), {}).version == kFormatVersion);
}

TEST_CASE("store: a version-4 store is upgraded in place, and its 64-bit fingerprints still match and are not rewritten") {
  TempDir dir;
  const Bytes key{0, 0, 0, 1, 1, 0x05};  // issuer 1, serial 5
  const std::uint64_t fingerprint = 0x1234'5678'0000'0099ULL;
  {
    // A version-4 store with one 24-byte entry record (record version 4, u64 fingerprint), as 0.4 wrote it.
    auto env = Environment::Open(dir.path(), {});
    REQUIRE(env.has_value());
    auto [txn, meta, entries] = BeginOldStore(env->get(), 4);
    REQUIRE(Put(txn, meta, AsBytes("entry_fingerprint_key"), Bytes(16, 7)).has_value());
    Bytes value{4, 0x01, 4, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
    AppendU64(value, fingerprint);
    REQUIRE(Put(txn, entries, key, value).has_value());
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  OpenForWriting(dir.path(), [&](Store& store, WriteTxn& txn) {
    CHECK(*store.GetEntryFingerprint(txn.get(), 1, Serial(5)) == 0x99);  // the low 32 bits
    auto merge = EntryMerge::Begin(store, txn, 1, EntryMerge::Mode::kReplacePartitions, {false, true});
    CHECK(*merge->SkipIfUnchanged(Serial(5), fingerprint, 1));  // the same CRL entry as before the upgrade
    auto counts = merge->Finish();
    REQUIRE(counts.has_value());
    CHECK(counts->unchanged == 1);
  });
  const UpgradedStore upgraded = ReadUpgraded(dir.path(), {key});
  CHECK(upgraded.version == kFormatVersion);
  CHECK(upgraded.record_sizes == std::vector<std::size_t>{24});  // skipped, so not rewritten
}

TEST_CASE("store: a version-5 store is upgraded in place: its 20-octet entries read, match and stay, and changed ones shrink") {
  TempDir dir;
  const Bytes kept_key{0, 0, 0, 1, 1, 0x05};     // issuer 1, serial 5
  const Bytes changed_key{0, 0, 0, 1, 1, 0x06};  // issuer 1, serial 6
  {
    // A version-5 store with two 20-byte entry records (record version 5, u32 fingerprint), as the previous release wrote them.
    auto env = Environment::Open(dir.path(), {});
    REQUIRE(env.has_value());
    auto [txn, meta, entries] = BeginOldStore(env->get(), 5);
    REQUIRE(Put(txn, meta, AsBytes("entry_fingerprint_key"), Bytes(16, 7)).has_value());
    REQUIRE(Put(txn, entries, kept_key, Bytes{5, 0x01, 4, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x99})
                .has_value());
    REQUIRE(Put(txn, entries, changed_key, Bytes{5, 0x01, 4, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x98})
                .has_value());
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  OpenForWriting(dir.path(), [](Store& store, WriteTxn& txn) {
    CHECK(*store.GetEntryFingerprint(txn.get(), 1, Serial(5)) == 0x99);
    auto merge = EntryMerge::Begin(store, txn, 1, EntryMerge::Mode::kReplacePartitions, {false, true});
    CHECK(*merge->SkipIfUnchanged(Serial(5), 0x99, 1));  // the same CRL entry as before the upgrade
    CHECK_FALSE(*merge->SkipIfUnchanged(Serial(6), 0x97, 1));
    REQUIRE(merge->Add(Serial(6), RevokedEntry{0x6553f100, Reason::kKeyCompromise, std::nullopt, 1, false}, 0x97).has_value());
    auto counts = merge->Finish();
    REQUIRE(counts.has_value());
    CHECK(counts->unchanged == 1);
    CHECK(counts->changed == 1);
    CHECK((*store.GetRevoked(txn.get(), 1, Serial(6)))->reason == Reason::kKeyCompromise);
    CHECK(*store.GetEntryFingerprint(txn.get(), 1, Serial(6)) == 0x97);
  });
  const UpgradedStore upgraded = ReadUpgraded(dir.path(), {kept_key, changed_key});
  CHECK(upgraded.version == kFormatVersion);
  // The unchanged entry was skipped, so not rewritten; the changed one is written in this format.
  CHECK(upgraded.record_sizes == std::vector<std::size_t>{20, 11});
}

TEST_CASE("store: a bulk-loaded issuer's entries are exactly its serials, with room left in its leaf pages") {
  Fixture f;
  constexpr std::uint64_t kCount = 20'000;
  std::vector<std::pair<std::uint64_t, RevokedEntry>> entries;
  for (std::uint64_t i = 1; i <= kCount; ++i) entries.emplace_back(i * 3, Revoked(Reason::kSuperseded));
  const auto counts = f.Merge(EntryMerge::Mode::kReplacePartitions, {false, true}, entries);
  CHECK(counts.added == kCount);
  auto txn = f.store.BeginRead();
  auto state = *f.store.GetIssuerState(txn->get(), f.identity.id);
  REQUIRE(state.has_value());
  CHECK(*f.store.CountRevoked(txn->get(), state->issuer_no) == kCount);
  std::uint64_t walked = 0;
  REQUIRE(f.store.WalkRevoked(txn->get(), state->issuer_no, [&](ByteView serial, const RevokedEntry&, const auto&) {
    CHECK(serial.size() <= 3);  // no spacer (a key one octet longer) is left behind
    ++walked;
  }).has_value());
  CHECK(walked == kCount);
  auto leaf_pages = [&](MDB_txn* in) {
    MDB_dbi dbi = 0;
    REQUIRE(mdb_dbi_open(in, "entries", 0, &dbi) == 0);
    MDB_stat stat{};
    REQUIRE(mdb_stat(in, dbi, &stat) == 0);
    CHECK(stat.ms_entries == walked);
    return stat.ms_leaf_pages;
  };
  const std::size_t before = leaf_pages(txn->get());
  txn->Reset();
  // The next day's insertions, one every 100 serials: each lands in a page of its own (about 105 of these
  // entries fill a page), which has room for it, so no page splits. Without the room, each one would.
  std::vector<std::pair<std::uint64_t, RevokedEntry>> inserted;
  for (std::uint64_t j = 0; j < kCount / 100; ++j) inserted.emplace_back(3 * (100 * j + 50) + 1, Revoked(Reason::kKeyCompromise));
  CHECK(f.Merge(EntryMerge::Mode::kApplyDelta, {}, inserted).added == inserted.size());
  walked += inserted.size();
  REQUIRE(txn->Renew().has_value());
  CHECK(leaf_pages(txn->get()) <= before + 2);
}
