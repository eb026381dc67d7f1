#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/file_descriptor.h"
#include "importer/import.h"
#include "importer/page_cache_trail.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::importer;
using ocsp::testing::CrlOptions;
using ocsp::testing::DistributionPointSpec;
using ocsp::testing::RevokedSpec;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;
using ocsp::testing::ToPem;
using ocsp::testing::WriteFile;

namespace {

struct Fixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  SystemClock clock;
  std::filesystem::path store_directory = dir.path() / "store";
  store::Store store = *store::Store::Open(store_directory, {});
  ImportOptions options;
  int files_written = 0;

  std::filesystem::path Write(const CrlOptions& crl_options, const TestCa* signer = nullptr) {
    const auto path = dir.path() / ("crl-" + std::to_string(++files_written) + ".der");
    WriteFile(path, ToDer((signer ? *signer : ca).Crl(crl_options).get()));
    return path;
  }
  Result<ImportReport> ImportPaths(const std::vector<std::filesystem::path>& paths) {
    std::vector<ImportInput> inputs;
    for (const auto& path : paths) inputs.push_back({path, path.filename().string()});
    return Importer(store, store_directory, clock, options).Import(ca.certificate.get(), inputs);
  }
  Result<ImportReport> Import(const CrlOptions& crl_options) { return ImportPaths({Write(crl_options)}); }
  Bytes DataFile() const { return *ReadFile(store_directory / "data.mdb"); }
  store::IssuerState State() {
    auto txn = store.BeginRead();
    auto identity = store::IssuerIdentity::FromCertificate(ca.certificate.get());
    auto state = *store.GetIssuerState(txn->get(), identity->id);
    REQUIRE(state.has_value());
    return *state;
  }
  std::optional<store::RevokedEntry> Lookup(std::uint64_t serial) {
    auto txn = store.BeginRead();
    return *store.GetRevoked(txn->get(), State().issuer_no, Serial(serial));
  }
};

CrlOptions Numbered(long number, std::vector<RevokedSpec> revoked = {}) {
  CrlOptions options;
  options.number = number;
  options.revoked = std::move(revoked);
  return options;
}

CrlOptions Partition(long number, const std::string& municipality, std::vector<RevokedSpec> revoked) {
  CrlOptions options = Numbered(number, std::move(revoked));
  DistributionPointSpec point;
  point.directory_name = "/C=JP/OU=CRL Distribution Points/OU=Tokyo/CN=" + municipality + " CRLDP";
  options.distribution_point = point;
  return options;
}

CrlOptions Delta(long number, long base, std::vector<RevokedSpec> revoked) {
  CrlOptions options = Numbered(number, std::move(revoked));
  options.delta = true;
  options.delta_base_magnitude = Serial(static_cast<std::uint64_t>(base));
  return options;
}

// A fixed revocation time: with the default (an hour before each CRL's own thisUpdate) the same entry in two
// CRLs made a second apart differs, and a test expecting it unchanged fails when the clock ticks between them.
constexpr UnixSeconds kRevokedAt = 1'700'000'000;
RevokedSpec Entry(std::uint64_t serial, std::optional<int> reason = 3) {
  return {Serial(serial), kRevokedAt, reason, std::nullopt};
}

void CheckRefused(Fixture& fixture, const Result<ImportReport>& result, const Bytes& before, std::string_view words) {
  REQUIRE_FALSE(result.has_value());
  INFO(result.error().message);
  CHECK(result.error().message.find(words) != std::string::npos);
  CHECK(fixture.DataFile() == before);
}

// Pages of `path` in the page cache (mincore through a mapping, which faults nothing in). The file is
// written back first: the kernel drops only clean pages.
std::size_t CachedPages(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ::fsync(fd);
  const auto size = static_cast<std::size_t>(::lseek(fd, 0, SEEK_END));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  REQUIRE(map != MAP_FAILED);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  REQUIRE(::mincore(map, size, resident.data()) == 0);
  ::munmap(map, size);
  return static_cast<std::size_t>(std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }));
}

}  // namespace

TEST_CASE("import: a valid CRL becomes the issuer's complete CRL with every entry") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  auto report = f.Import(Numbered(5, {{Serial(0x1002), now - 7200, 1, now - 86400}, {Serial(0x1003), now - 3600, 3, {}},
                                      {Serial(0x1004), now - 3600, std::nullopt, {}}}));
  REQUIRE(report.has_value());
  CHECK(report->added == 3);
  REQUIRE(report->files.size() == 1);
  CHECK(report->files[0].number == "5");
  CHECK(report->files[0].kind == CrlKind::kFull);
  const auto state = f.State();
  CHECK(state.coverage.complete);
  CHECK(state.coverage.partitions_held == 1);
  auto entry = f.Lookup(0x1002);
  REQUIRE(entry.has_value());
  CHECK(entry->reason == store::Reason::kKeyCompromise);
  CHECK(entry->revocation_time == now - 7200);
  CHECK(entry->invalidity_date == now - 86400);
}

TEST_CASE("import: re-importing the identical file, as DER or PEM, is a no-op that changes nothing") {
  Fixture f;
  auto crl = f.ca.Crl(Numbered(1, {Entry(9)}));
  const auto der = f.dir.path() / "crl.der";
  const auto pem = f.dir.path() / "crl.pem";
  WriteFile(der, ToDer(crl.get()));
  WriteFile(pem, ToPem(crl.get()));
  REQUIRE(f.ImportPaths({der}).has_value());
  const Bytes before = f.DataFile();
  for (const auto& path : {der, pem}) {
    auto again = f.ImportPaths({path});
    REQUIRE(again.has_value());
    CHECK(again->nothing_to_do());
  }
  CHECK(f.DataFile() == before);
}

TEST_CASE("import: a CRL number that does not increase is refused and the store is unchanged") {
  Fixture f;
  REQUIRE(f.Import(Numbered(7, {Entry(1)})).has_value());
  const Bytes before = f.DataFile();
  SUBCASE("lower") { CheckRefused(f, f.Import(Numbered(6)), before, "lower than the held CRL number 7"); }
  SUBCASE("equal with other content") {
    CheckRefused(f, f.Import(Numbered(7, {Entry(2)})), before, "already held with different content");
  }
}

TEST_CASE("import: wrong signatures and wrong issuers are refused, naming what was looked for") {
  Fixture f;
  REQUIRE(f.Import(Numbered(1)).has_value());
  const Bytes before = f.DataFile();
  SUBCASE("signed by another key under the same name") {
    auto impostor = ocsp::testing::GenerateKey();
    const auto path = f.dir.path() / "forged.der";
    WriteFile(path, ToDer(ocsp::testing::MakeCrl(f.ca.certificate.get(), impostor.get(), Numbered(2)).get()));
    CheckRefused(f, f.ImportPaths({path}), before, "signature does not verify");
  }
  SUBCASE("another CA") {
    const TestCa other = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Other CA");
    CheckRefused(f, f.ImportPaths({f.Write(Numbered(2), &other)}), before, "issued by OU=Other CA");
  }
  SUBCASE("another key generation of the same CA name") {
    const TestCa next_generation = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA");
    CheckRefused(f, f.ImportPaths({f.Write(Numbered(2), &next_generation)}), before, "authority key identifier");
  }
}

TEST_CASE("import: CRLs that cannot be answered from correctly are refused") {
  Fixture f;
  REQUIRE(f.Import(Numbered(1)).has_value());
  const Bytes before = f.DataFile();
  const UnixSeconds now = f.clock.Now();
  SUBCASE("unknown critical CRL extension") {
    CrlOptions options = Numbered(2);
    options.unknown_critical_extension = true;
    CheckRefused(f, f.Import(options), before, "unknown critical extension");
  }
  SUBCASE("unknown critical entry extension") {
    CheckRefused(f, f.Import(Numbered(2, {{Serial(5), 0, 1, std::nullopt, true}})), before, "unknown critical extension");
  }
  SUBCASE("no CRL number") {
    CrlOptions options = Numbered(2);
    options.include_number = false;
    CheckRefused(f, f.Import(options), before, "no CRL number");
  }
  SUBCASE("no nextUpdate") {
    CrlOptions options = Numbered(2);
    options.omit_next_update = true;
    CheckRefused(f, f.Import(options), before, "no nextUpdate");
  }
  SUBCASE("expired") {
    CrlOptions options = Numbered(2);
    options.this_update = now - 3 * 86400;
    options.next_update = now - 86400;
    CheckRefused(f, f.Import(options), before, "expired");
  }
  SUBCASE("thisUpdate in the future") {
    CrlOptions options = Numbered(2);
    options.this_update = now + 3600;
    CheckRefused(f, f.Import(options), before, "in the future");
  }
  SUBCASE("removeFromCRL in a complete CRL") {
    CheckRefused(f, f.Import(Numbered(2, {Entry(5, 8)})), before, "removeFromCRL");
  }
  SUBCASE("not a CRL at all") {
    const auto path = f.dir.path() / "garbage.der";
    WriteFile(path, std::string_view("garbage"));
    CheckRefused(f, f.ImportPaths({path}), before, "CertificateList");
  }
}

TEST_CASE("import: an expired CRL is imported when the operator forces it") {
  Fixture f;
  CrlOptions options = Numbered(1);
  options.this_update = f.clock.Now() - 3 * 86400;
  options.next_update = f.clock.Now() - 86400;
  f.options.allow_expired = true;
  CHECK(f.Import(options).has_value());
}

TEST_CASE("import: partitions are imported together, and each replaces only its own entries") {
  Fixture f;
  auto report = f.ImportPaths({f.Write(Partition(1, "Chiyoda", {Entry(10), Entry(30)})),
                               f.Write(Partition(1, "Minato", {Entry(20), Entry(40)}))});
  REQUIRE(report.has_value());
  CHECK(report->added == 4);
  CHECK(f.State().coverage.partitions_held == 2);
  CHECK_FALSE(f.State().coverage.complete);  // until the operator pins the expected set

  // Chiyoda's next CRL: 30 leaves (expired), 50 is new. Minato's entries must stay.
  auto next = f.ImportPaths({f.Write(Partition(2, "Chiyoda", {Entry(10), Entry(50)}))});
  REQUIRE(next.has_value());
  CHECK(next->removed == 1);
  CHECK(next->added == 1);
  CHECK(next->unchanged == 1);
  CHECK(f.Lookup(20).has_value());
  CHECK(f.Lookup(40).has_value());
  CHECK_FALSE(f.Lookup(30).has_value());
  CHECK(f.Lookup(50).has_value());
}

TEST_CASE("import: once an import commits, its CRL files leave the page cache, and one refused before its walk stays") {
  Fixture f;
  std::vector<RevokedSpec> even;
  std::vector<RevokedSpec> odd;
  for (std::uint64_t serial = 1; serial <= 2'000; ++serial) {
    even.push_back(Entry(serial * 2));
    odd.push_back(Entry(serial * 2 + 1));
  }
  const auto chiyoda = f.Write(Partition(1, "Chiyoda", even));
  const auto minato = f.Write(Partition(1, "Minato", odd));
  REQUIRE(CachedPages(chiyoda) > 0);  // just written: cached, so the check below can see a change
  REQUIRE(CachedPages(minato) > 0);
  const auto refused = f.Write(Partition(1, "Chiyoda", odd));  // a second CRL for Chiyoda in the same call
  CHECK_FALSE(f.ImportPaths({chiyoda, refused}).has_value());
  CHECK(CachedPages(chiyoda) > 0);
  REQUIRE(f.ImportPaths({chiyoda, minato}).has_value());
  CHECK(CachedPages(chiyoda) == 0);
  CHECK(CachedPages(minato) == 0);
  CHECK(f.Lookup(2).has_value());
  CHECK(f.Lookup(3).has_value());
}

TEST_CASE("import: a partition set's files leave the page cache while they are walked, before the commit") {
  Fixture f;
  f.options.parallel_range_entries = 500;  // several ranges, walked on worker threads
  std::vector<RevokedSpec> even;
  std::vector<RevokedSpec> odd;
  for (std::uint64_t serial = 1; serial <= 3'000; ++serial) {
    even.push_back(Entry(serial * 2));
    odd.push_back(Entry(serial * 2 + 1));
  }
  const std::vector<std::filesystem::path> paths{f.Write(Partition(1, "Chiyoda", even)), f.Write(Partition(1, "Minato", odd))};
  for (const auto& path : paths) REQUIRE(CachedPages(path) > 0);  // synced, so that they can leave
  std::vector<ImportInput> inputs;
  for (const auto& path : paths) inputs.push_back({path, path.filename().string()});
  // Once the writing thread has the last range, every walk is done; the hasher may still be finishing a file,
  // and then it drops the file itself. Nothing has committed yet.
  bool left_before_commit = false;
  auto progress = [&](std::uint64_t done, std::uint64_t total) {
    if (done < total || left_before_commit) return;
    for (int tries = 0; tries < 1000 && !left_before_commit; ++tries) {
      left_before_commit = CachedPages(paths[0]) == 0 && CachedPages(paths[1]) == 0;
      if (!left_before_commit) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  REQUIRE(Importer(f.store, f.store_directory, f.clock, f.options).Import(f.ca.certificate.get(), inputs, progress));
  CHECK(left_before_commit);
  CHECK(f.Lookup(6'000).has_value());
  CHECK(f.Lookup(6'001).has_value());
}

TEST_CASE("page cache trail: a stretch leaves the cache once the walk, the hasher and the archive are past it") {
  TempDir dir;
  const auto path = dir.path() / "crl.der";
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  constexpr std::size_t kSize = std::size_t{1} << 20;
  {
    // Page by page: the page cache then holds the file in single pages, and the checks below can count them
    // (a file written or read in large chunks is cached in folios the kernel drops only whole).
    const FileDescriptor out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    REQUIRE(out);
    const Bytes chunk(page, 0x30);
    for (std::size_t at = 0; at < kSize; at += page) REQUIRE(::write(out.get(), chunk.data(), page) == static_cast<ssize_t>(page));
  }
  const std::size_t pages = kSize / page;
  REQUIRE(CachedPages(path) == pages);  // written back (CachedPages syncs), so every page can be dropped
  const FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(file);
  const int fd = file.get();
  PageCacheTrail trail(256 * 1024);

  trail.Follow(fd, 100 * 1024, kSize, true);  // less than a step walked: no call yet
  CHECK(trail.dropped() == 0);
  trail.Follow(fd, kSize, kSize, false, true);  // the archive has not read the file
  CHECK(trail.dropped() == 0);
  CHECK(CachedPages(path) == pages);

  trail.Follow(fd, 600 * 1024, 300 * 1024 + 100, true);  // the hasher is behind the walk: up to its last whole page
  CHECK(trail.dropped() == 300 * 1024);
  CHECK(CachedPages(path) == pages - 300 * 1024 / page);

  trail.Follow(fd, 500 * 1024, kSize, true);  // past the hasher again, but less than a step further
  CHECK(trail.dropped() == 300 * 1024);

  trail.Follow(fd, kSize, 900 * 1024, true, true);  // the walk is done, the hasher not yet: up to the hasher
  CHECK(trail.dropped() == 900 * 1024);
  CHECK(CachedPages(path) == pages - 900 * 1024 / page);

  trail.Follow(fd, kSize, kSize, true, true);  // everyone is done: the whole file
  CHECK(trail.dropped() == kSize);
  CHECK(CachedPages(path) == 0);
}

TEST_CASE("import: with the partition set pinned, a missing partition makes the coverage incomplete") {
  Fixture f;
  REQUIRE(f.ImportPaths({f.Write(Partition(1, "Chiyoda", {Entry(10)})), f.Write(Partition(1, "Minato", {Entry(20)}))}));
  {
    auto txn = f.store.BeginWrite();
    auto issuer = f.store.GetIssuer(txn->get(), store::IssuerIdentity::FromCertificate(f.ca.certificate.get())->id);
    REQUIRE(f.store.PinPartitions(*txn, **issuer, true).has_value());
    REQUIRE(txn->Commit().has_value());
  }
  CHECK(f.State().coverage.complete);
  // A third municipality appears: expected from now on, and held.
  REQUIRE(f.ImportPaths({f.Write(Partition(1, "Shibuya", {Entry(30)}))}));
  CHECK(f.State().coverage.partitions_expected == 3);
  CHECK(f.State().coverage.complete);
}

TEST_CASE("import: two CRLs for one partition in one import are refused") {
  Fixture f;
  auto result = f.ImportPaths({f.Write(Partition(1, "Chiyoda", {Entry(10)})), f.Write(Partition(2, "Chiyoda", {Entry(11)}))});
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().message.find("a second CRL") != std::string::npos);
}

TEST_CASE("import: delta CRLs apply on top of their base, and a newer complete CRL supersedes them") {
  Fixture f;
  REQUIRE(f.Import(Numbered(5, {Entry(1), Entry(2), Entry(3, 6)})));
  auto delta = f.Import(Delta(6, 5, {Entry(2, 8), Entry(3, 8), Entry(4, 1)}));
  REQUIRE(delta.has_value());
  CHECK(delta->files[0].kind == CrlKind::kDelta);
  CHECK_FALSE(f.Lookup(2).has_value());          // removeFromCRL
  CHECK(f.Lookup(3).has_value());                // a hold is never released
  CHECK(f.Lookup(4)->reason == store::Reason::kKeyCompromise);
  CHECK(f.Lookup(1).has_value());                // a delta removes only what it names
  const Bytes before = f.DataFile();
  SUBCASE("a delta based on a CRL newer than the one held is refused with both numbers") {
    CheckRefused(f, f.Import(Delta(9, 8, {Entry(7)})), before, "based on CRL number 8 but the held CRL number is 5");
  }
  SUBCASE("a delta that does not exceed the held one is refused") {
    CheckRefused(f, f.Import(Delta(6, 5, {Entry(8)})), before, "does not exceed");
  }
  SUBCASE("a newer complete CRL supersedes the delta") {
    REQUIRE(f.Import(Numbered(7, {Entry(1), Entry(3, 6), Entry(9)})));
    CHECK_FALSE(f.Lookup(4).has_value());
    CHECK(f.Lookup(9).has_value());
  }
}

TEST_CASE("import: a delta with no complete CRL held is refused") {
  Fixture f;
  auto result = f.Import(Delta(2, 1, {Entry(1)}));
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().message.find("no complete CRL is held") != std::string::npos);
}

TEST_CASE("import: a CRL much smaller than the one it replaces is refused unless the operator allows it") {
  Fixture f;
  std::vector<RevokedSpec> many;
  for (std::uint64_t serial = 1; serial <= 100; ++serial) many.push_back(Entry(serial));
  REQUIRE(f.Import(Numbered(1, many)));
  const Bytes before = f.DataFile();
  std::vector<RevokedSpec> half(many.begin(), many.begin() + 50);
  CheckRefused(f, f.Import(Numbered(2, half)), before, "would shrink from 100 to 50 entries");
  f.options.allow_shrink = true;
  CHECK(f.Import(Numbered(2, half)).has_value());
}

TEST_CASE("import: a certificateHold that disappears stays revoked and is reported") {
  Fixture f;
  std::vector<RevokedSpec> others;
  for (std::uint64_t serial = 10; serial < 30; ++serial) others.push_back(Entry(serial));
  std::vector<RevokedSpec> first = others;
  first.insert(first.begin(), Entry(5, 6));  // a hold
  REQUIRE(f.Import(Numbered(1, first)));
  auto report = f.Import(Numbered(2, others));
  REQUIRE(report.has_value());
  CHECK(report->holds_kept == 1);
  REQUIRE_FALSE(report->warnings.empty());
  auto kept = f.Lookup(5);
  REQUIRE(kept.has_value());
  CHECK(kept->hold_kept);
}

TEST_CASE("import: an ARL revoking the CA certificate for compromise marks the CA's key compromised") {
  Fixture f;
  REQUIRE(f.Import(Numbered(1, {Entry(100)})));
  const UnixSeconds now = f.clock.Now();  // read once: the real clock may tick before the check
  CrlOptions arl = Numbered(1, {{Serial(1), now - 600, 2, now - 7200}});  // the CA's own serial
  DistributionPointSpec point;
  point.uri = "http://crl.test/arl.crl";
  point.only_ca_certs = true;
  arl.distribution_point = point;
  auto report = f.Import(arl);
  REQUIRE(report.has_value());
  CHECK(report->files[0].kind == CrlKind::kAuthorityRevocationList);
  const auto state = f.State();
  REQUIRE(state.compromised_since.has_value());
  CHECK(*state.compromised_since == now - 7200);
  CHECK(state.coverage.partitions_held == 1);  // the ARL does not count for end-entity coverage
}

TEST_CASE("import: a CRL whose entries are not sorted by serial is imported all the same") {
  Fixture f;
  CrlOptions options = Numbered(1, {Entry(300), Entry(1), Entry(0x10000), Entry(20)});
  options.sort_entries = false;
  auto report = f.Import(options);
  REQUIRE(report.has_value());
  CHECK(report->added == 4);
  for (std::uint64_t serial : {1, 20, 300, 0x10000}) CHECK(f.Lookup(serial).has_value());
}

TEST_CASE("import: files imported together are all or nothing") {
  Fixture f;
  REQUIRE(f.ImportPaths({f.Write(Partition(1, "Chiyoda", {Entry(10)}))}));
  const Bytes before = f.DataFile();
  auto impostor = ocsp::testing::GenerateKey();
  const auto forged = f.dir.path() / "forged.der";
  WriteFile(forged, ToDer(ocsp::testing::MakeCrl(f.ca.certificate.get(), impostor.get(), Partition(1, "Minato", {Entry(20)})).get()));
  CheckRefused(f, f.ImportPaths({f.Write(Partition(2, "Chiyoda", {Entry(11)})), forged}), before, "forged.der");
  CHECK(f.Lookup(10).has_value());
  CHECK_FALSE(f.Lookup(11).has_value());
}

TEST_CASE("import: every attempt is in the history, and imported files are archived") {
  Fixture f;
  f.options.archive_directory = f.dir.path() / "archive";
  REQUIRE(f.Import(Numbered(3, {Entry(1)})));
  REQUIRE(f.ImportPaths({f.dir.path() / "crl-1.der"}));  // unchanged
  REQUIRE_FALSE(f.Import(Numbered(2)).has_value());       // refused
  auto history = ReadHistory(f.store_directory);
  REQUIRE(history.has_value());
  REQUIRE(history->size() == 3);
  CHECK((*history)[0].result == "imported");
  CHECK((*history)[0].number == "3");
  CHECK((*history)[0].sha256.size() == 64);
  CHECK((*history)[0].entries == 1);
  CHECK((*history)[1].result == "unchanged");
  CHECK((*history)[2].result == "refused");
  CHECK((*history)[2].reason.find("lower than the held CRL number 3") != std::string::npos);
  std::size_t archived = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(f.dir.path() / "archive")) {
    archived += entry.is_regular_file() ? 1 : 0;
  }
  CHECK(archived == 1);
}

TEST_CASE("import: a complete CRL and an older delta in one call: the delta is refused, nothing changes") {
  Fixture f;
  REQUIRE(f.Import(Numbered(5, {Entry(1)})));
  const Bytes before = f.DataFile();
  // CRL 7 revokes serial 4; delta 6 (on base 5) would remove it. Applying the delta over CRL 7 would answer
  // `good` for a serial that CRL 7 lists as revoked.
  auto result = f.ImportPaths({f.Write(Numbered(7, {Entry(1), Entry(4, 1)})), f.Write(Delta(6, 5, {Entry(4, 8)}))});
  CheckRefused(f, result, before, "does not exceed the held CRL number 7");
}

TEST_CASE("import: a complete CRL and a newer delta on it in one call are both applied") {
  Fixture f;
  REQUIRE(f.Import(Numbered(5, {Entry(1)})));
  auto result = f.ImportPaths({f.Write(Numbered(7, {Entry(1), Entry(4, 1)})), f.Write(Delta(8, 7, {Entry(9, 3)}))});
  REQUIRE(result.has_value());
  CHECK(f.Lookup(4).has_value());
  CHECK(f.Lookup(9).has_value());
}

TEST_CASE("import: a delta ARL that revokes the CA certificate marks the CA's key compromised") {
  Fixture f;
  CrlOptions arl = Numbered(1, {});
  DistributionPointSpec point;
  point.uri = "http://crl.test/arl.crl";
  point.only_ca_certs = true;
  arl.distribution_point = point;
  REQUIRE(f.Import(arl));
  CHECK_FALSE(f.State().compromised_since.has_value());
  const UnixSeconds revoked_at = f.clock.Now() - 600;  // read once: the real clock may tick before the check
  CrlOptions delta = Delta(2, 1, {{Serial(1), revoked_at, 2, std::nullopt}});  // the CA's own serial
  delta.distribution_point = point;
  REQUIRE(f.Import(delta));
  CHECK(f.State().compromised_since == revoked_at);
}

TEST_CASE("import: a delta of one partition may not remove or rewrite an entry another partition holds") {
  Fixture f;
  REQUIRE(f.ImportPaths({f.Write(Partition(1, "Chiyoda", {Entry(10)})), f.Write(Partition(1, "Minato", {Entry(20)}))}));
  const Bytes before = f.DataFile();
  CrlOptions delta = Partition(2, "Minato", {Entry(10, 8)});
  delta.delta = true;
  delta.delta_base_magnitude = Serial(1);
  CheckRefused(f, f.Import(delta), before, "another partition");
  CHECK(f.Lookup(10).has_value());
}

namespace {

// Every revoked entry of the CA in `store`, in serial order, with the fingerprint stored with it.
std::vector<std::tuple<Bytes, store::RevokedEntry, std::uint64_t>> Contents(store::Store& store, const TestCa& ca) {
  std::vector<std::tuple<Bytes, store::RevokedEntry, std::uint64_t>> out;
  auto txn = store.BeginRead();
  auto identity = store::IssuerIdentity::FromCertificate(ca.certificate.get());
  auto state = *store.GetIssuerState(txn->get(), identity->id);
  REQUIRE(state.has_value());
  REQUIRE(store
              .WalkRevoked(txn->get(), state->issuer_no,
                           [&](ByteView serial, const store::RevokedEntry& entry, const auto&) {
                             out.emplace_back(Bytes(serial.begin(), serial.end()), entry, 0);
                           })
              .has_value());
  for (auto& [serial, entry, fingerprint] : out) fingerprint = *store.GetEntryFingerprint(txn->get(), state->issuer_no, serial);
  return out;
}

}  // namespace

TEST_CASE("import: a next-day import leaves exactly what importing that day into an empty store leaves, with every change counted") {
  Fixture f;
  const UnixSeconds now = f.clock.Now();
  std::vector<RevokedSpec> day0;
  std::vector<RevokedSpec> day1;
  std::uint64_t removed = 0, added = 0, changed = 0, unchanged = 0;
  for (std::uint64_t serial = 100; serial < 400; ++serial) {
    const std::optional<int> reason = serial % 7 == 0 ? std::nullopt : std::optional<int>(static_cast<int>(serial % 6));
    const std::optional<UnixSeconds> invalidity = serial % 5 == 0 ? std::optional<UnixSeconds>(kRevokedAt - 86400) : std::nullopt;
    const RevokedSpec entry{Serial(serial), kRevokedAt, reason, invalidity};
    if (serial % 50 == 1) {  // dropped the next day (no holds among them: those are kept by policy)
      if (reason != 6) {
        day0.push_back(entry);
        ++removed;
      }
      continue;
    }
    if (serial % 40 == 3) {  // newly revoked the next day
      day1.push_back(entry);
      ++added;
      continue;
    }
    day0.push_back(entry);
    if (serial % 30 == 7) {  // the same serial, another reason (and so other bytes)
      RevokedSpec other = entry;
      other.reason = 4;  // these serials have reason 1 or none on day 0
      day1.push_back(other);
      ++changed;
    } else if (serial % 30 == 8) {  // the same serial, another revocation time
      RevokedSpec other = entry;
      other.revoked_at = now - 60;
      day1.push_back(other);
      ++changed;
    } else {
      day1.push_back(entry);
      ++unchanged;
    }
  }
  REQUIRE(f.Import(Numbered(1, day0)));
  const auto next_day_file = f.Write(Numbered(2, day1));
  auto report = f.ImportPaths({next_day_file});
  REQUIRE(report.has_value());
  CHECK(report->added == added);
  CHECK(report->removed == removed);
  CHECK(report->changed == changed);
  CHECK(report->unchanged == unchanged);

  // The same day imported into an empty store: the same entries, field for field. Fingerprints are keyed per
  // store, so they differ between the stores, but every entry has one in both.
  const auto fresh_directory = f.dir.path() / "fresh";
  store::Store fresh = *store::Store::Open(fresh_directory, {});
  REQUIRE(Importer(fresh, fresh_directory, f.clock, f.options).Import(f.ca.certificate.get(), {{next_day_file, "day1"}}));
  const auto merged = Contents(f.store, f.ca);
  const auto direct = Contents(fresh, f.ca);
  REQUIRE(merged.size() == direct.size());
  CHECK(merged.size() == day1.size());
  for (std::size_t i = 0; i < merged.size(); ++i) {
    CHECK(std::get<0>(merged[i]) == std::get<0>(direct[i]));
    CHECK(std::get<1>(merged[i]) == std::get<1>(direct[i]));
    CHECK(std::get<2>(merged[i]) != 0);
    CHECK(std::get<2>(direct[i]) != 0);
  }
}

TEST_CASE("import: a kept certificateHold listed again, byte for byte, is rewritten as listed and no longer flagged") {
  Fixture f;
  std::vector<RevokedSpec> others;
  for (std::uint64_t serial = 10; serial < 30; ++serial) others.push_back(Entry(serial));
  std::vector<RevokedSpec> with_hold = others;
  with_hold.insert(with_hold.begin(), Entry(5, 6));
  REQUIRE(f.Import(Numbered(1, with_hold)));
  REQUIRE(f.Import(Numbered(2, others)));
  REQUIRE(f.Lookup(5)->hold_kept);
  auto report = f.Import(Numbered(3, with_hold));  // the hold's entry is the same bytes as on day 1
  REQUIRE(report.has_value());
  auto entry = f.Lookup(5);
  REQUIRE(entry.has_value());
  CHECK(entry->reason == store::Reason::kCertificateHold);
  CHECK_FALSE(entry->hold_kept);
  CHECK(report->unchanged == others.size());
}

TEST_CASE("import: many partitions with interleaved serials, some empty, merge into one ordered set") {
  Fixture f;
  constexpr int kPartitions = 7;  // not a power of two: the merge tree has an uneven last level
  std::vector<std::vector<RevokedSpec>> entries(kPartitions);
  for (std::uint64_t serial = 1; serial <= 500; ++serial) {
    const auto partition = static_cast<std::size_t>((serial * 2654435761u) % (kPartitions - 2));  // last two stay empty
    // 8-octet serials that share their first 7 octets tie on the merge's sort key and are told apart by bytes.
    entries[partition].push_back(Entry(serial < 400 ? serial : 0x0100000000000000ULL + serial));
  }
  std::vector<std::filesystem::path> paths;
  for (int i = 0; i < kPartitions; ++i) paths.push_back(f.Write(Partition(1, "M" + std::to_string(i), entries[static_cast<std::size_t>(i)])));
  auto report = f.ImportPaths(paths);
  REQUIRE(report.has_value());
  CHECK(report->added == 500);
  for (std::uint64_t serial : {std::uint64_t{1}, std::uint64_t{250}, std::uint64_t{399}, std::uint64_t{0x0100000000000000ULL + 450}}) {
    CHECK(f.Lookup(serial).has_value());
  }
}

namespace {

// A partition set of `partitions` files whose serials interleave (a hash of the serial picks the file), with
// every kind of entry: reasons or none, invalidity dates, serials of 1 to 8 octets (8-octet ones that share
// their first 7 octets tie on the sort key and are told apart by bytes), and one empty file (the last).
std::vector<std::vector<RevokedSpec>> InterleavedSet(int partitions, std::uint64_t first, std::uint64_t count,
                                                     std::uint64_t day = 0) {
  std::vector<std::vector<RevokedSpec>> entries(static_cast<std::size_t>(partitions));
  for (std::uint64_t n = first; n < first + count; ++n) {
    if (day > 0 && n % 97 == day) continue;  // gone the next day
    const std::uint64_t serial = n % 11 == 0 ? 0x0100000000000000ULL + n : n % 13 == 0 ? n << 20 : n;
    const auto file = static_cast<std::size_t>((n * 2654435761u) % static_cast<std::uint64_t>(partitions - 1));
    const std::optional<int> reason = n % 7 == 0 ? std::nullopt : std::optional<int>(static_cast<int>(n % 6));
    const std::optional<UnixSeconds> invalidity = n % 5 == 0 ? std::optional<UnixSeconds>(kRevokedAt - 86400) : std::nullopt;
    const UnixSeconds revoked_at = day > 0 && n % 89 == day ? kRevokedAt + 60 : kRevokedAt;  // changed the next day
    entries[file].push_back({Serial(serial), revoked_at, reason, invalidity});
  }
  return entries;
}

std::vector<std::filesystem::path> WriteSet(Fixture& f, long number, const std::vector<std::vector<RevokedSpec>>& entries) {
  std::vector<std::filesystem::path> paths;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    paths.push_back(f.Write(Partition(number, "M" + std::to_string(i), entries[i])));
  }
  return paths;
}

void CheckSameEntries(store::Store& a, store::Store& b, const TestCa& ca) {
  const auto left = Contents(a, ca);
  const auto right = Contents(b, ca);
  REQUIRE(left.size() == right.size());
  for (std::size_t i = 0; i < left.size(); ++i) {
    CHECK(std::get<0>(left[i]) == std::get<0>(right[i]));
    CHECK(std::get<1>(left[i]) == std::get<1>(right[i]));
    CHECK(std::get<2>(left[i]) != 0);  // fingerprints are keyed per store: each has one
    CHECK(std::get<2>(right[i]) != 0);
  }
}

}  // namespace

TEST_CASE("import: a partition set parsed on worker threads leaves exactly what the calling thread alone leaves, day 0 and next day") {
  Fixture f;
  const auto day0 = WriteSet(f, 1, InterleavedSet(9, 1, 3000));
  const auto day1 = WriteSet(f, 2, InterleavedSet(9, 40, 3000, 1));
  const auto alone_directory = f.dir.path() / "alone";
  store::Store alone = *store::Store::Open(alone_directory, {});
  ImportOptions sequential = f.options;
  sequential.parallel_range_entries = 0;
  f.options.parallel_range_entries = 100;  // about 30 ranges: every range boundary case, many times
  auto import_both = [&](const std::vector<std::filesystem::path>& paths) {
    std::vector<ImportInput> inputs;
    for (const auto& path : paths) inputs.push_back({path, path.filename().string()});
    auto ranged = Importer(f.store, f.store_directory, f.clock, f.options).Import(f.ca.certificate.get(), inputs);
    auto direct = Importer(alone, alone_directory, f.clock, sequential).Import(f.ca.certificate.get(), inputs);
    REQUIRE(ranged.has_value());
    REQUIRE(direct.has_value());
    CHECK(ranged->added == direct->added);
    CHECK(ranged->removed == direct->removed);
    CHECK(ranged->changed == direct->changed);
    CHECK(ranged->unchanged == direct->unchanged);
    REQUIRE(ranged->files.size() == direct->files.size());
    for (std::size_t i = 0; i < ranged->files.size(); ++i) CHECK(ranged->files[i].entries == direct->files[i].entries);
    CheckSameEntries(f.store, alone, f.ca);
    return *ranged;
  };
  const ImportReport first = import_both(day0);
  CHECK(first.added == 3000);
  const ImportReport next = import_both(day1);
  CHECK(next.added > 0);
  CHECK(next.removed > 0);
  CHECK(next.changed > 0);
  CHECK(next.unchanged > 0);
}

TEST_CASE("import: one bad partition refuses the whole set parsed on worker threads, and the store is unchanged") {
  Fixture f;
  f.options.parallel_range_entries = 50;
  REQUIRE(f.ImportPaths(WriteSet(f, 1, InterleavedSet(6, 1, 600))));
  const Bytes before = f.DataFile();

  SUBCASE("a serial listed twice in one file") {
    auto entries = InterleavedSet(6, 1000, 600);
    entries[2].push_back(entries[2][40]);
    CheckRefused(f, f.ImportPaths(WriteSet(f, 2, entries)), before, "listed twice");
  }
  SUBCASE("a serial listed by two files") {
    auto entries = InterleavedSet(6, 1000, 600);
    entries[3].push_back(entries[1][7]);
    CheckRefused(f, f.ImportPaths(WriteSet(f, 2, entries)), before, "listed twice");
  }
  SUBCASE("removeFromCRL in a complete CRL") {
    auto entries = InterleavedSet(6, 1000, 600);
    entries[4][10].reason = 8;
    CheckRefused(f, f.ImportPaths(WriteSet(f, 2, entries)), before, "removeFromCRL");
  }
  SUBCASE("a file with a forged signature") {
    auto paths = WriteSet(f, 2, InterleavedSet(6, 1000, 600));
    auto impostor = ocsp::testing::GenerateKey();
    WriteFile(paths[5], ToDer(ocsp::testing::MakeCrl(f.ca.certificate.get(), impostor.get(),
                                                     Partition(2, "M5", InterleavedSet(6, 1000, 600)[5])).get()));
    CheckRefused(f, f.ImportPaths(paths), before, "signature");
  }
  CHECK(f.Lookup(1).has_value());
  CHECK_FALSE(f.Lookup(1005).has_value());
}

TEST_CASE("import: a partition set split by serial, or with a file out of order, is imported on the calling thread") {
  Fixture f;
  f.options.parallel_range_entries = 40;
  std::vector<std::vector<RevokedSpec>> entries(4);
  for (std::uint64_t serial = 1; serial <= 800; ++serial) entries[(serial - 1) / 200].push_back(Entry(serial));
  SUBCASE("split by serial: a range would hold whole files") {
    auto report = f.ImportPaths(WriteSet(f, 1, entries));
    REQUIRE(report.has_value());
    CHECK(report->added == 800);
  }
  SUBCASE("one file of an interleaved set out of order") {
    entries = InterleavedSet(4, 1, 800);
    std::vector<std::filesystem::path> paths = WriteSet(f, 1, {entries[0], entries[1], entries[3]});
    CrlOptions unsorted = Partition(1, "M3", entries[2]);
    std::swap(unsorted.revoked[100], unsorted.revoked[101]);
    unsorted.sort_entries = false;
    paths.push_back(f.Write(unsorted));
    auto report = f.ImportPaths(paths);
    INFO((report ? std::string() : report.error().message));
    REQUIRE(report.has_value());
    CHECK(report->added == 800);
  }
  for (std::uint64_t serial : {1, 200, 201, 556, 799}) CHECK(f.Lookup(serial).has_value());
}

TEST_CASE("import: a partition set is archived as one tar, each member named by its file's SHA-256 as in the history") {
  Fixture f;
  f.options.archive_directory = f.dir.path() / "archive";
  const auto paths = WriteSet(f, 1, InterleavedSet(3, 1, 90));
  REQUIRE(f.ImportPaths(paths));
  auto history = ReadHistory(f.store_directory);
  REQUIRE(history.has_value());
  REQUIRE(history->size() == paths.size());
  std::vector<std::filesystem::path> tars;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(f.dir.path() / "archive")) {
    if (entry.path().extension() == ".tar") tars.push_back(entry.path());
  }
  REQUIRE(tars.size() == 1);
  const Bytes tar = *ReadFile(tars.front());
  std::size_t at = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    REQUIRE(at + 512 <= tar.size());
    const std::string name(reinterpret_cast<const char*>(tar.data() + at));
    const std::size_t size = std::stoul(std::string(reinterpret_cast<const char*>(tar.data() + at + 124), 11), nullptr, 8);
    CHECK(name == (*history)[i].sha256.substr(0, 16) + "-" + paths[i].filename().string());
    const Bytes file = *ReadFile(paths[i]);
    REQUIRE(at + 512 + size <= tar.size());
    CHECK(Bytes(tar.begin() + static_cast<std::ptrdiff_t>(at + 512), tar.begin() + static_cast<std::ptrdiff_t>(at + 512 + size)) == file);
    at += 512 + (size + 511) / 512 * 512;
  }
}

TEST_CASE("import: a partition set with PEM files among DER ones is parsed on worker threads like an all-DER set") {
  Fixture f;
  f.options.parallel_range_entries = 30;
  const auto entries = InterleavedSet(5, 1, 400);
  std::vector<std::filesystem::path> paths = WriteSet(f, 1, {entries[0], entries[1], entries[2]});
  for (std::size_t i = 3; i < entries.size(); ++i) {
    const auto path = f.dir.path() / ("pem-" + std::to_string(i) + ".pem");
    WriteFile(path, ToPem(f.ca.Crl(Partition(1, "M" + std::to_string(i), entries[i])).get()));
    paths.push_back(path);
  }
  auto report = f.ImportPaths(paths);
  REQUIRE(report.has_value());
  CHECK(report->added == 400);
  for (std::uint64_t serial : {1, 97, 200, 398}) CHECK(f.Lookup(serial).has_value());
}
