#include "store/store.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/mman.h>

#include <cstdio>
#include <fstream>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

namespace ocsp::store {
namespace {

// On-disk layout (docs/store-format.md). All integers big-endian. Records keep the version byte of the
// format that introduced their layout: 2 for most, 3 for stored responses, 4 and 5 for fingerprinted
// entries; format-6 entries have none (their size tells them apart).
constexpr std::uint8_t kRecordVersion = 2;
constexpr std::uint8_t kEntryRecordVersionV4 = 4;
constexpr std::uint8_t kEntryRecordVersionV5 = 5;
constexpr std::string_view kFormatKey = "format_version";
constexpr std::string_view kFingerprintKeyKey = "entry_fingerprint_key";
constexpr std::string_view kNextIssuerNoKey = "next_issuer_no";

// CRL summary: crl_id u32, number_len u8, number[20], flags u8, this_update i64, next_update i64,
// imported_at i64, sha256[32], entry_count u64.
constexpr std::size_t kCrlSummarySize = 4 + 1 + kMaxCrlNumberBytes + 1 + 8 + 8 + 8 + 32 + 8;
static_assert(kCrlSummarySize == 90);
// Issuer record: version u8, issuer_no u32, last_crl_id u32, last_partition_no u32, flags u8,
// compromised_since i64, coverage (held u32, expected u32, complete u8, flags u8, oldest_this i64,
// earliest_next i64, entries u64), then the certificate DER.
constexpr std::size_t kCoverageSize = 4 + 4 + 1 + 1 + 8 + 8 + 8;
constexpr std::size_t kIssuerHeaderSize = 1 + 4 + 4 + 4 + 1 + 8 + kCoverageSize;
static_assert(kIssuerHeaderSize == 56);
// Entry (format 6): a flags octet, then revocation u32, invalidity u32 (only with bit 6), partition_no u16
// (u32 with bit 4), fingerprint u32. Flags: bit 7 has a reason, bit 6 has an invalidity date, bit 5 hold
// kept, bit 4 wide partition number, bits 0-3 the reason code. 11 octets for a JPKI entry (reason, no
// invalidity date, fewer than 65,536 partitions), 13, 15 or 17 otherwise: always odd, so never the size of
// an older record. Format 5 wrote 20 octets (version 5, flags, reason, reserved, revocation, invalidity,
// partition_no u32, fingerprint u32), format 4 a u64 fingerprint (24 octets, version 4), format 3 none (16
// octets, version 2); all four are read.
constexpr std::size_t kEntrySizeMin = 1 + 4 + 2 + 4;
constexpr std::size_t kEntrySizeMax = kEntrySizeMin + 4 + 2;
constexpr std::size_t kEntrySizeV5 = 20;
constexpr std::size_t kEntrySizeV4 = 24;
constexpr std::size_t kEntrySizeV3 = 16;
static_assert(kEntrySizeMin == 11 && kEntrySizeMax == 17);
static_assert(kEntrySizeV5 == kEntrySizeV3 + 4 && kEntrySizeV4 == kEntrySizeV3 + 8);
constexpr std::uint8_t kEntryFlagReason = 0x80;
constexpr std::uint8_t kEntryFlagInvalidity = 0x40;
constexpr std::uint8_t kEntryFlagHoldKept = 0x20;
constexpr std::uint8_t kEntryFlagWidePartition = 0x10;
constexpr std::uint8_t kEntryReasonMask = 0x0f;
static_assert(static_cast<std::uint8_t>(Reason::kAaCompromise) <= kEntryReasonMask);
// Entry key: issuer_no u32, serial length u8, serial: numeric order is key order.
constexpr std::size_t kMaxEntryKeySize = 4 + 1 + kMaxSerialBytes;
// History record: version u8, partition_no u32, kind u8 (0 base, 1 delta), summary.
constexpr std::size_t kCrlRecordSize = 1 + 4 + 1 + kCrlSummarySize;

constexpr std::uint8_t kIssuerPinned = 0x01;
constexpr std::uint8_t kIssuerCompromised = 0x02;
constexpr std::uint8_t kCoverageHasNext = 0x01;
constexpr std::uint8_t kCrlHasNextUpdate = 0x01;
// Flags of format 3-5 entry records (octet 1).
constexpr std::uint8_t kEntryHasReason = 0x01;
constexpr std::uint8_t kEntryHasInvalidity = 0x02;
constexpr std::uint8_t kEntryHoldKept = 0x04;
constexpr std::uint8_t kPartitionExpected = 0x01;
constexpr std::uint8_t kPartitionHasBase = 0x02;
constexpr std::uint8_t kPartitionHasDelta = 0x04;

void AppendI64(Bytes& out, std::int64_t value) { AppendU64(out, static_cast<std::uint64_t>(value)); }
std::int64_t ReadI64(const std::uint8_t* in) { return static_cast<std::int64_t>(ReadU64(in)); }

void EncodeCrlSummary(Bytes& out, const CrlSummary& crl) {
  AppendU32(out, crl.crl_id);
  out.push_back(crl.number.length);
  out.insert(out.end(), crl.number.bytes.begin(), crl.number.bytes.end());
  out.push_back(crl.next_update ? kCrlHasNextUpdate : 0);
  AppendI64(out, crl.this_update);
  AppendI64(out, crl.next_update.value_or(0));
  AppendI64(out, crl.imported_at);
  out.insert(out.end(), crl.sha256.begin(), crl.sha256.end());
  AppendU64(out, crl.entry_count);
}

Result<CrlSummary> DecodeCrlSummary(const std::uint8_t* in) {
  CrlSummary crl;
  crl.crl_id = ReadU32(in);
  in += 4;
  crl.number.length = *in++;
  if (crl.number.length == 0 || crl.number.length > kMaxCrlNumberBytes) {
    return Fail(ErrorCode::kStore, "corrupt CRL summary (number length)");
  }
  std::memcpy(crl.number.bytes.data(), in, kMaxCrlNumberBytes);
  in += kMaxCrlNumberBytes;
  const std::uint8_t flags = *in++;
  crl.this_update = ReadI64(in);
  in += 8;
  if (flags & kCrlHasNextUpdate) crl.next_update = ReadI64(in);
  in += 8;
  crl.imported_at = ReadI64(in);
  in += 8;
  std::memcpy(crl.sha256.data(), in, 32);
  in += 32;
  crl.entry_count = ReadU64(in);
  return crl;
}

Bytes U32Key(std::uint32_t a) {
  Bytes key;
  AppendU32(key, a);
  return key;
}
Bytes U32PairKey(std::uint32_t a, std::uint32_t b) {
  Bytes key = U32Key(a);
  AppendU32(key, b);
  return key;
}

struct EntryKey {
  std::array<std::uint8_t, kMaxEntryKeySize> bytes{};
  std::size_t size = 0;
  [[nodiscard]] ByteView view() const { return {bytes.data(), size}; }
};

bool MakeEntryKey(std::uint32_t issuer_no, ByteView serial, EntryKey& key) {
  if (serial.empty() || serial.size() > kMaxSerialBytes) return false;
  for (int i = 0; i < 4; ++i) key.bytes[i] = static_cast<std::uint8_t>(issuer_no >> (24 - 8 * i));
  key.bytes[4] = static_cast<std::uint8_t>(serial.size());
  std::memcpy(key.bytes.data() + 5, serial.data(), serial.size());
  key.size = 5 + serial.size();
  return true;
}

// What an entry record keeps of an EntryFingerprinter value: its low 32 bits, never 0 unless the value is 0
// ("none"). A format-4 record's 64-bit fingerprint reads as the same, so its entries still match.
std::uint32_t StoredFingerprint(std::uint64_t fingerprint) {
  if (fingerprint == 0) return 0;
  const auto low = static_cast<std::uint32_t>(fingerprint);
  return low == 0 ? 1 : low;
}

// An entry record as written: at most kEntrySizeMax octets, on the stack.
struct EncodedEntry {
  std::array<std::uint8_t, kEntrySizeMax> bytes{};
  std::size_t size = 0;
  [[nodiscard]] MDB_val val() const { return MDB_val{size, const_cast<std::uint8_t*>(bytes.data())}; }
};

EncodedEntry EncodeEntry(const RevokedEntry& entry, std::uint64_t fingerprint) {
  EncodedEntry out;
  auto put32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.bytes[out.size++] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
  };
  const bool wide = entry.partition_no > 0xffff;
  std::uint8_t flags = 0;
  if (entry.reason) flags = static_cast<std::uint8_t>(kEntryFlagReason | (static_cast<std::uint8_t>(*entry.reason) & kEntryReasonMask));
  if (entry.invalidity_date) flags |= kEntryFlagInvalidity;
  if (entry.hold_kept) flags |= kEntryFlagHoldKept;
  if (wide) flags |= kEntryFlagWidePartition;
  out.bytes[out.size++] = flags;
  // Unsigned 32-bit seconds cover 1970-2106: every X.509 time a live JPKI certificate can carry.
  put32(static_cast<std::uint32_t>(std::clamp<UnixSeconds>(entry.revocation_time, 0, 0xffffffffLL)));
  if (entry.invalidity_date) put32(static_cast<std::uint32_t>(std::clamp<UnixSeconds>(*entry.invalidity_date, 0, 0xffffffffLL)));
  if (wide) {
    put32(entry.partition_no);
  } else {
    out.bytes[out.size++] = static_cast<std::uint8_t>(entry.partition_no >> 8);
    out.bytes[out.size++] = static_cast<std::uint8_t>(entry.partition_no);
  }
  put32(StoredFingerprint(fingerprint));
  return out;
}

// The size a format-6 record with these flags has.
constexpr std::size_t CompactEntrySize(std::uint8_t flags) {
  return kEntrySizeMin + ((flags & kEntryFlagInvalidity) ? 4 : 0) + ((flags & kEntryFlagWidePartition) ? 2 : 0);
}

// An entry record of format 6, 5, 4 or 3.
bool KnownEntryRecord(ByteView value) {
  if (value.size() % 2 == 1) return value.size() >= kEntrySizeMin && value.size() == CompactEntrySize(value[0]);
  return (value.size() == kEntrySizeV5 && value[0] == kEntryRecordVersionV5) ||
         (value.size() == kEntrySizeV4 && value[0] == kEntryRecordVersionV4) ||
         (value.size() == kEntrySizeV3 && value[0] == kRecordVersion);
}

// What a re-import's walk compares of a record KnownEntryRecord accepted, read without decoding the rest.
struct EntryHeader {
  std::uint32_t partition_no = 0;
  bool hold_kept = false;
  std::uint32_t fingerprint = 0;  // as stored (0 for a format-3 record)
};

EntryHeader ReadEntryHeader(ByteView value) {
  const std::uint8_t* in = value.data();
  if (value.size() % 2 == 1) {
    const std::uint8_t flags = in[0];
    const std::uint8_t* partition = in + 5 + ((flags & kEntryFlagInvalidity) ? 4 : 0);
    return {(flags & kEntryFlagWidePartition) ? ReadU32(partition) : (std::uint32_t{partition[0]} << 8 | partition[1]),
            (flags & kEntryFlagHoldKept) != 0, ReadU32(in + value.size() - 4)};
  }
  std::uint32_t fingerprint = 0;
  if (value.size() == kEntrySizeV5) fingerprint = ReadU32(in + kEntrySizeV3);
  if (value.size() == kEntrySizeV4) fingerprint = StoredFingerprint(ReadU64(in + kEntrySizeV3));
  return {ReadU32(in + 12), (in[1] & kEntryHoldKept) != 0, fingerprint};
}

// The stored fingerprint of an entry record KnownEntryRecord accepted (0 for a format-3 record).
std::uint32_t EntryFingerprintOf(ByteView value) { return ReadEntryHeader(value).fingerprint; }

Result<RevokedEntry> DecodeEntry(ByteView value) {
  if (!KnownEntryRecord(value)) return Fail(ErrorCode::kStore, "entry record of an unknown version or size");
  const std::uint8_t* in = value.data();
  RevokedEntry entry;
  if (value.size() % 2 == 1) {
    const std::uint8_t flags = in[0];
    if (flags & kEntryFlagReason) entry.reason = static_cast<Reason>(flags & kEntryReasonMask);
    entry.revocation_time = ReadU32(in + 1);
    if (flags & kEntryFlagInvalidity) entry.invalidity_date = ReadU32(in + 5);
    const EntryHeader header = ReadEntryHeader(value);
    entry.partition_no = header.partition_no;
    entry.hold_kept = header.hold_kept;
    return entry;
  }
  const std::uint8_t flags = in[1];
  if (flags & kEntryHasReason) entry.reason = static_cast<Reason>(in[2]);
  entry.revocation_time = ReadU32(in + 4);
  if (flags & kEntryHasInvalidity) entry.invalidity_date = ReadU32(in + 8);
  entry.partition_no = ReadU32(in + 12);
  entry.hold_kept = (flags & kEntryHoldKept) != 0;
  return entry;
}

Result<IssuerState> DecodeIssuerState(ByteView value) {
  if (value.size() < kIssuerHeaderSize || value[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "issuer record of an unknown version or size");
  }
  const std::uint8_t* in = value.data();
  IssuerState state;
  state.issuer_no = ReadU32(in + 1);
  state.last_crl_id = ReadU32(in + 5);
  state.last_partition_no = ReadU32(in + 9);
  const std::uint8_t flags = in[13];
  state.pinned = (flags & kIssuerPinned) != 0;
  if (flags & kIssuerCompromised) state.compromised_since = ReadI64(in + 14);
  const std::uint8_t* coverage = in + 22;
  state.coverage.partitions_held = ReadU32(coverage);
  state.coverage.partitions_expected = ReadU32(coverage + 4);
  state.coverage.complete = coverage[8] != 0;
  const std::uint8_t coverage_flags = coverage[9];
  state.coverage.oldest_this_update = ReadI64(coverage + 10);
  if (coverage_flags & kCoverageHasNext) state.coverage.earliest_next_update = ReadI64(coverage + 18);
  state.coverage.entries = ReadU64(coverage + 26);
  return state;
}

Bytes EncodePartition(const PartitionRecord& partition) {
  Bytes out;
  out.push_back(kRecordVersion);
  out.push_back(static_cast<std::uint8_t>(partition.scope));
  std::uint8_t flags = 0;
  if (partition.expected) flags |= kPartitionExpected;
  if (partition.base) flags |= kPartitionHasBase;
  if (partition.delta) flags |= kPartitionHasDelta;
  out.push_back(flags);
  AppendU32(out, partition.partition_no);
  EncodeCrlSummary(out, partition.base.value_or(CrlSummary{}));
  EncodeCrlSummary(out, partition.delta.value_or(CrlSummary{}));
  AppendU32(out, static_cast<std::uint32_t>(partition.distribution_point.size()));
  out.insert(out.end(), partition.distribution_point.begin(), partition.distribution_point.end());
  AppendU32(out, static_cast<std::uint32_t>(partition.name.size()));
  out.insert(out.end(), partition.name.begin(), partition.name.end());
  return out;
}

Result<PartitionRecord> DecodePartition(ByteView value) {
  constexpr std::size_t kFixed = 3 + 4 + 2 * kCrlSummarySize + 4;
  if (value.size() < kFixed || value[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "partition record of an unknown version or size");
  }
  const std::uint8_t* in = value.data();
  PartitionRecord partition;
  partition.scope = static_cast<PartitionScope>(in[1]);
  const std::uint8_t flags = in[2];
  partition.expected = (flags & kPartitionExpected) != 0;
  partition.partition_no = ReadU32(in + 3);
  if (flags & kPartitionHasBase) {
    auto base = DecodeCrlSummary(in + 7);
    if (!base) return std::unexpected(base.error());
    partition.base = *base;
  }
  if (flags & kPartitionHasDelta) {
    auto delta = DecodeCrlSummary(in + 7 + kCrlSummarySize);
    if (!delta) return std::unexpected(delta.error());
    partition.delta = *delta;
  }
  std::size_t at = 7 + 2 * kCrlSummarySize;
  const std::uint32_t dp_size = ReadU32(in + at);
  at += 4;
  if (at + dp_size + 4 > value.size()) return Fail(ErrorCode::kStore, "corrupt partition record");
  partition.distribution_point.assign(in + at, in + at + dp_size);
  at += dp_size;
  const std::uint32_t name_size = ReadU32(in + at);
  at += 4;
  if (at + name_size != value.size()) return Fail(ErrorCode::kStore, "corrupt partition record");
  partition.name.assign(reinterpret_cast<const char*>(in + at), name_size);
  return partition;
}

Result<MDB_dbi> OpenDatabase(MDB_txn* txn, const char* name, bool create) {
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, &dbi); rc != 0) {
    return std::unexpected(LmdbError(rc, std::string("opening database ") + name));
  }
  return dbi;
}

// The scope is part of a partition's identity: an ARL that names no distribution point is not the complete CRL.
Bytes PartitionIdKey(std::uint32_t issuer_no, PartitionScope scope, ByteView distribution_point) {
  Bytes key = U32Key(issuer_no);
  key.push_back(static_cast<std::uint8_t>(scope));
  std::array<std::uint8_t, 32> digest{};
  SHA256(distribution_point.data(), distribution_point.size(), digest.data());
  key.insert(key.end(), digest.begin(), digest.end());
  return key;
}

}  // namespace

// --- CrlNumber, Reason, serial order ---

Result<CrlNumber> CrlNumber::FromMagnitude(ByteView magnitude) {
  while (magnitude.size() > 1 && magnitude.front() == 0) magnitude = magnitude.subspan(1);
  if (magnitude.empty() || magnitude.size() > kMaxCrlNumberBytes) {
    return Fail(ErrorCode::kInvalidArgument,
                "CRL number of " + std::to_string(magnitude.size()) + " octets (at most 20 allowed)");
  }
  CrlNumber number;
  number.length = static_cast<std::uint8_t>(magnitude.size());
  std::copy(magnitude.begin(), magnitude.end(), number.bytes.begin());
  return number;
}

std::string CrlNumber::ToString() const {
  std::vector<std::uint8_t> digits(bytes.begin(), bytes.begin() + length);
  std::string out;
  while (!digits.empty()) {
    unsigned remainder = 0;
    std::vector<std::uint8_t> quotient;
    for (std::uint8_t byte : digits) {
      const unsigned current = remainder * 256 + byte;
      const auto q = static_cast<std::uint8_t>(current / 10);
      remainder = current % 10;
      if (!quotient.empty() || q != 0) quotient.push_back(q);
    }
    out.push_back(static_cast<char>('0' + remainder));
    digits = std::move(quotient);
  }
  if (out.empty()) out = "0";
  std::reverse(out.begin(), out.end());
  return out;
}

std::strong_ordering operator<=>(const CrlNumber& a, const CrlNumber& b) {
  if (a.length != b.length) return a.length <=> b.length;  // both minimal: longer is larger
  const int cmp = std::memcmp(a.bytes.data(), b.bytes.data(), a.length);
  return cmp <=> 0;
}

bool SerialLess(ByteView a, ByteView b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return std::memcmp(a.data(), b.data(), a.size()) < 0;
}

// --- Entry fingerprints: SipHash-2-4 (Aumasson and Bernstein), little-endian words as specified ---

namespace {
inline std::uint64_t Rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
inline void SipRound(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3) {
  v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
  v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
  v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
  v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
}
inline std::uint64_t LoadLe64(const std::uint8_t* in) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | in[i];
  return value;
}
}  // namespace

EntryFingerprinter::EntryFingerprinter(const std::array<std::uint8_t, 16>& key)
    : k0_(LoadLe64(key.data())), k1_(LoadLe64(key.data() + 8)) {}

std::uint64_t EntryFingerprinter::operator()(ByteView der) const {
  std::uint64_t v0 = 0x736f6d6570736575ULL ^ k0_;
  std::uint64_t v1 = 0x646f72616e646f6dULL ^ k1_;
  std::uint64_t v2 = 0x6c7967656e657261ULL ^ k0_;
  std::uint64_t v3 = 0x7465646279746573ULL ^ k1_;
  const std::size_t length = der.size();
  const std::uint8_t* in = der.data();
  const std::uint8_t* end = in + (length & ~std::size_t{7});
  for (; in != end; in += 8) {
    const std::uint64_t m = LoadLe64(in);
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  std::uint64_t last = static_cast<std::uint64_t>(length) << 56;
  for (std::size_t i = 0; i < (length & 7); ++i) last |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  v3 ^= last;
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) SipRound(v0, v1, v2, v3);
  const std::uint64_t hash = v0 ^ v1 ^ v2 ^ v3;
  return hash == 0 ? 1 : hash;  // 0 means "no fingerprint"
}

std::string_view ToString(Reason reason) {
  switch (reason) {
    case Reason::kUnspecified: return "unspecified";
    case Reason::kKeyCompromise: return "keyCompromise";
    case Reason::kCaCompromise: return "cACompromise";
    case Reason::kAffiliationChanged: return "affiliationChanged";
    case Reason::kSuperseded: return "superseded";
    case Reason::kCessationOfOperation: return "cessationOfOperation";
    case Reason::kCertificateHold: return "certificateHold";
    case Reason::kRemoveFromCrl: return "removeFromCRL";
    case Reason::kPrivilegeWithdrawn: return "privilegeWithdrawn";
    case Reason::kAaCompromise: return "aACompromise";
  }
  return "invalid";
}

// --- Store ---

Result<Store> Store::Open(const std::filesystem::path& directory, const StoreOptions& options) {
  Environment::Options env_options;
  env_options.map_size_bytes = options.map_size_bytes;
  env_options.read_only = options.read_only;
  auto env = Environment::Open(directory, env_options);
  if (!env) return std::unexpected(env.error());

  // Databases are opened once per process (LMDB's rule) in a transaction that also checks the version.
  MDB_txn* raw = nullptr;
  if (int rc = mdb_txn_begin(env->get(), nullptr, options.read_only ? MDB_RDONLY : 0, &raw); rc != 0) {
    return std::unexpected(LmdbError(rc, "opening the store"));
  }
  struct Guard {
    MDB_txn* txn;
    ~Guard() {
      if (txn) mdb_txn_abort(txn);
    }
  } guard{raw};
  const bool create = !options.read_only;
  auto meta = OpenDatabase(raw, "meta", create);
  if (!meta) {
    return Fail(ErrorCode::kNotFound, "no store at " + directory.string() + " (" + meta.error().message + ")");
  }
  auto version = Get(raw, *meta, AsBytes(kFormatKey));
  if (!version) return std::unexpected(version.error());
  // 0: absent or unreadable (no format has that number). Not an optional: g++ 12 at -O1 (the TSan preset)
  // thinks an optional<uint32_t> may be read uninitialised here.
  const std::uint32_t found = *version && (*version)->size() == 4 ? ReadU32((*version)->data()) : 0;
  if (!*version) {
    if (options.read_only) return Fail(ErrorCode::kNotFound, "store at " + directory.string() + " is empty");
    Bytes value;
    AppendU32(value, kFormatVersion);
    if (auto put = Put(raw, *meta, AsBytes(kFormatKey), value); !put) return std::unexpected(put.error());
  } else if (!options.read_only && (found == 2 || found == 3 || found == 4 || found == 5)) {
    // Version 3 added the stored-response databases, version 4 a fingerprint to each entry record (format-3
    // entries are read as they are and get one when an import next writes them), version 5 shortened it to
    // 32 bits, version 6 packs entry records into 11 octets instead of 20 (older entries are read as they
    // are; their fingerprints still match, so a re-import does not rewrite them). The new number makes older
    // builds, which would not read the newer entry records, refuse the store.
    Bytes value;
    AppendU32(value, kFormatVersion);
    if (auto put = Put(raw, *meta, AsBytes(kFormatKey), value); !put) return std::unexpected(put.error());
  } else if (!(found == kFormatVersion || (options.read_only && (found == 3 || found == 4 || found == 5)))) {
    // A reader also takes versions 3 to 5: their records are a subset of version 6's.
    const std::string text = found != 0 ? std::to_string(found) : "?";
    return Fail(ErrorCode::kStore, "store at " + directory.string() + " has format version " + text +
                                       "; this build reads version " + std::to_string(kFormatVersion));
  }
  std::array<std::uint8_t, 16> fingerprint_key{};
  auto stored_key = Get(raw, *meta, AsBytes(kFingerprintKeyKey));
  if (!stored_key) return std::unexpected(stored_key.error());
  if (*stored_key && (*stored_key)->size() == fingerprint_key.size()) {
    std::memcpy(fingerprint_key.data(), (*stored_key)->data(), fingerprint_key.size());
  } else if (!options.read_only) {
    // Readers never fingerprint; writers create the key once, with the store or at the upgrade to version 4.
    if (RAND_bytes(fingerprint_key.data(), static_cast<int>(fingerprint_key.size())) != 1) {
      return Fail(ErrorCode::kCrypto, "no random bytes for the entry fingerprint key");
    }
    if (auto put = Put(raw, *meta, AsBytes(kFingerprintKeyKey), ByteView(fingerprint_key)); !put) {
      return std::unexpected(put.error());
    }
  }
  std::array<MDB_dbi, 8> dbis{};
  const std::array<const char*, 8> names{"issuers", "partitions",  "partition_ids", "crls",
                                         "entries", "compromises", "responses",     "response_lru"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto dbi = OpenDatabase(raw, names[i], create);
    if (!dbi) return std::unexpected(dbi.error());
    dbis[i] = *dbi;
  }
  // Committing makes the handles usable by later transactions; an unchanged transaction writes nothing.
  MDB_txn* to_commit = std::exchange(guard.txn, nullptr);
  if (int rc = mdb_txn_commit(to_commit); rc != 0) return std::unexpected(LmdbError(rc, "opening the store"));
  Store store(std::move(*env), *meta, dbis[0], dbis[1], dbis[2], dbis[3], dbis[4], dbis[5], dbis[6], dbis[7]);
  store.fingerprinter_ = EntryFingerprinter(fingerprint_key);
  return store;
}

Result<std::optional<IssuerState>> Store::GetIssuerState(MDB_txn* txn, const IssuerId& id) const {
  auto value = Get(txn, issuers_, id.view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<IssuerState>();
  auto state = DecodeIssuerState(**value);
  if (!state) return std::unexpected(state.error());
  return std::optional<IssuerState>(*state);
}

Result<std::optional<IssuerRecord>> Store::GetIssuer(MDB_txn* txn, const IssuerId& id) const {
  auto value = Get(txn, issuers_, id.view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<IssuerRecord>();
  auto state = DecodeIssuerState(**value);
  if (!state) return std::unexpected(state.error());
  return std::optional<IssuerRecord>(
      IssuerRecord{id, *state, Bytes((*value)->begin() + kIssuerHeaderSize, (*value)->end())});
}

Result<std::vector<IssuerRecord>> Store::ListIssuers(MDB_txn* txn) const {
  auto cursor = Cursor::Open(txn, issuers_);
  if (!cursor) return std::unexpected(cursor.error());
  std::vector<IssuerRecord> out;
  MDB_val key{};
  MDB_val value{};
  for (int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_NEXT)) {
    if (key.mv_size != 32) return Fail(ErrorCode::kStore, "corrupt issuer key");
    IssuerRecord record;
    std::memcpy(record.id.bytes.data(), key.mv_data, 32);
    auto state = DecodeIssuerState(FromVal(value));
    if (!state) return std::unexpected(state.error());
    record.state = *state;
    const ByteView bytes = FromVal(value);
    record.certificate_der.assign(bytes.begin() + kIssuerHeaderSize, bytes.end());
    out.push_back(std::move(record));
  }
  return out;
}

Result<std::optional<RevokedEntry>> Store::GetRevoked(MDB_txn* txn, std::uint32_t issuer_no, ByteView serial) const {
  EntryKey key;
  if (!MakeEntryKey(issuer_no, serial, key)) return std::optional<RevokedEntry>();  // never storable
  auto value = Get(txn, entries_, key.view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<RevokedEntry>();
  auto entry = DecodeEntry(**value);
  if (!entry) return std::unexpected(entry.error());
  return std::optional<RevokedEntry>(*entry);
}

Result<std::uint64_t> Store::GetEntryFingerprint(MDB_txn* txn, std::uint32_t issuer_no, ByteView serial) const {
  EntryKey key;
  if (!MakeEntryKey(issuer_no, serial, key)) return std::uint64_t{0};
  auto value = Get(txn, entries_, key.view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::uint64_t{0};
  if (auto entry = DecodeEntry(**value); !entry) return std::unexpected(entry.error());
  return EntryFingerprintOf(**value);
}

Result<std::optional<PartitionRecord>> Store::GetPartition(MDB_txn* txn, std::uint32_t issuer_no,
                                                           std::uint32_t partition_no) const {
  auto value = Get(txn, partitions_, U32PairKey(issuer_no, partition_no));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<PartitionRecord>();
  auto partition = DecodePartition(**value);
  if (!partition) return std::unexpected(partition.error());
  return std::optional<PartitionRecord>(std::move(*partition));
}

Result<std::optional<PartitionRecord>> Store::FindPartition(MDB_txn* txn, std::uint32_t issuer_no,
                                                            PartitionScope scope, ByteView distribution_point) const {
  auto number = Get(txn, partition_ids_, PartitionIdKey(issuer_no, scope, distribution_point));
  if (!number) return std::unexpected(number.error());
  if (!*number) return std::optional<PartitionRecord>();
  return GetPartition(txn, issuer_no, ReadU32((*number)->data()));
}

Result<std::vector<PartitionRecord>> Store::ListPartitions(MDB_txn* txn, std::uint32_t issuer_no) const {
  auto cursor = Cursor::Open(txn, partitions_);
  if (!cursor) return std::unexpected(cursor.error());
  const Bytes prefix = U32Key(issuer_no);
  MDB_val key = ToVal(prefix);
  MDB_val value{};
  std::vector<PartitionRecord> out;
  for (int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
       rc == 0 && key.mv_size == 8 && std::memcmp(key.mv_data, prefix.data(), 4) == 0;
       rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_NEXT)) {
    auto partition = DecodePartition(FromVal(value));
    if (!partition) return std::unexpected(partition.error());
    out.push_back(std::move(*partition));
  }
  return out;
}

Result<std::optional<CrlSummary>> Store::GetCrl(MDB_txn* txn, std::uint32_t issuer_no, std::uint32_t crl_id) const {
  auto value = Get(txn, crls_, U32PairKey(issuer_no, crl_id));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<CrlSummary>();
  if ((*value)->size() != kCrlRecordSize || (**value)[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "CRL record of an unknown version or size");
  }
  auto crl = DecodeCrlSummary((*value)->data() + 6);
  if (!crl) return std::unexpected(crl.error());
  return std::optional<CrlSummary>(*crl);
}

Result<std::optional<CompromiseRecord>> Store::GetCompromise(MDB_txn* txn, std::uint32_t issuer_no) const {
  auto value = Get(txn, compromises_, U32Key(issuer_no));
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<CompromiseRecord>();
  const ByteView bytes = **value;
  if (bytes.size() < 17 || bytes[0] != kRecordVersion) return Fail(ErrorCode::kStore, "corrupt compromise record");
  CompromiseRecord record;
  record.since = ReadI64(bytes.data() + 1);
  record.declared_at = ReadI64(bytes.data() + 9);
  record.declared_by.assign(reinterpret_cast<const char*>(bytes.data() + 17), bytes.size() - 17);
  return std::optional<CompromiseRecord>(std::move(record));
}

Result<std::uint64_t> Store::CountRevoked(MDB_txn* txn, std::uint32_t issuer_no) const {
  auto cursor = Cursor::Open(txn, entries_);
  if (!cursor) return std::unexpected(cursor.error());
  const Bytes prefix = U32Key(issuer_no);
  MDB_val key = ToVal(prefix);
  MDB_val value{};
  std::uint64_t count = 0;
  for (int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
       rc == 0 && key.mv_size >= 4 && std::memcmp(key.mv_data, prefix.data(), 4) == 0;
       rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_NEXT)) {
    ++count;
  }
  return count;
}

Result<double> Store::MapFill() const {
  MDB_envinfo info{};
  if (int rc = mdb_env_info(env_.get(), &info); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_info"));
  MDB_stat stat{};
  if (int rc = mdb_env_stat(env_.get(), &stat); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_stat"));
  if (info.me_mapsize == 0) return 0.0;
  return static_cast<double>((static_cast<std::uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize) /
         static_cast<double>(info.me_mapsize);
}

Result<MapInfo> Store::GetMapInfo() const {
  MDB_envinfo info{};
  if (int rc = mdb_env_info(env_.get(), &info); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_info"));
  MDB_stat stat{};
  if (int rc = mdb_env_stat(env_.get(), &stat); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_stat"));
  MapInfo out;
  out.map_size_bytes = info.me_mapsize;
  out.used_bytes = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize;
  out.max_readers = info.me_maxreaders;
  // me_numreaders is a high-water mark; the reader list names the slots held now, one line each after a header.
  std::uint32_t lines = 0;
  mdb_reader_list(
      env_.get(),
      [](const char* message, void* context) -> int {
        for (const char* c = message; *c != '\0'; ++c) {
          if (*c == '\n') ++*static_cast<std::uint32_t*>(context);
        }
        return 0;
      },
      &lines);
  out.readers_used = lines > 0 ? lines - 1 : 0;
  return out;
}

Result<void> Store::PutIssuer(MDB_txn* txn, const IssuerRecord& issuer) {
  const IssuerState& state = issuer.state;
  Bytes value;
  value.reserve(kIssuerHeaderSize + issuer.certificate_der.size());
  value.push_back(kRecordVersion);
  AppendU32(value, state.issuer_no);
  AppendU32(value, state.last_crl_id);
  AppendU32(value, state.last_partition_no);
  std::uint8_t flags = 0;
  if (state.pinned) flags |= kIssuerPinned;
  if (state.compromised_since) flags |= kIssuerCompromised;
  value.push_back(flags);
  AppendI64(value, state.compromised_since.value_or(0));
  AppendU32(value, state.coverage.partitions_held);
  AppendU32(value, state.coverage.partitions_expected);
  value.push_back(state.coverage.complete ? 1 : 0);
  value.push_back(state.coverage.earliest_next_update ? kCoverageHasNext : 0);
  AppendI64(value, state.coverage.oldest_this_update);
  AppendI64(value, state.coverage.earliest_next_update.value_or(0));
  AppendU64(value, state.coverage.entries);
  value.insert(value.end(), issuer.certificate_der.begin(), issuer.certificate_der.end());
  return Put(txn, issuers_, issuer.id.view(), value);
}

Result<IssuerRecord> Store::EnsureIssuer(WriteTxn& txn, const IssuerIdentity& identity) {
  auto existing = GetIssuer(txn.get(), identity.id);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) return std::move(**existing);

  auto next = Get(txn.get(), meta_, AsBytes(kNextIssuerNoKey));
  if (!next) return std::unexpected(next.error());
  const std::uint32_t issuer_no = *next && (*next)->size() == 4 ? ReadU32((*next)->data()) : 1;
  if (auto put = Put(txn.get(), meta_, AsBytes(kNextIssuerNoKey), U32Key(issuer_no + 1)); !put) {
    return std::unexpected(put.error());
  }
  IssuerRecord record{identity.id, IssuerState{}, identity.certificate_der};
  record.state.issuer_no = issuer_no;
  if (auto put = PutIssuer(txn.get(), record); !put) return std::unexpected(put.error());
  return record;
}

Result<PartitionRecord> Store::EnsurePartition(WriteTxn& txn, IssuerRecord& issuer, PartitionScope scope,
                                               ByteView distribution_point, const std::string& name) {
  auto found = FindPartition(txn.get(), issuer.state.issuer_no, scope, distribution_point);
  if (!found) return std::unexpected(found.error());
  if (*found) {
    if ((*found)->scope != scope) {
      return Fail(ErrorCode::kRefused, "partition " + name + " changed its scope (user or CA certificates)");
    }
    return std::move(**found);
  }
  PartitionRecord partition;
  partition.partition_no = ++issuer.state.last_partition_no;
  partition.scope = scope;
  partition.distribution_point.assign(distribution_point.begin(), distribution_point.end());
  partition.name = name;
  // A partition that appears after the expected set was pinned is expected from now on too.
  partition.expected = issuer.state.pinned;
  if (auto put = Put(txn.get(), partition_ids_, PartitionIdKey(issuer.state.issuer_no, scope, distribution_point),
                     U32Key(partition.partition_no));
      !put) {
    return std::unexpected(put.error());
  }
  if (auto put = PutPartition(txn, issuer.state.issuer_no, partition); !put) return std::unexpected(put.error());
  if (auto put = PutIssuer(txn.get(), issuer); !put) return std::unexpected(put.error());
  return partition;
}

Result<void> Store::PutPartition(WriteTxn& txn, std::uint32_t issuer_no, const PartitionRecord& partition) {
  return Put(txn.get(), partitions_, U32PairKey(issuer_no, partition.partition_no), EncodePartition(partition));
}

Result<std::uint32_t> Store::RecordCrl(WriteTxn& txn, IssuerRecord& issuer, std::uint32_t partition_no, bool delta,
                                       CrlSummary crl) {
  crl.crl_id = ++issuer.state.last_crl_id;
  Bytes value;
  value.push_back(kRecordVersion);
  AppendU32(value, partition_no);
  value.push_back(delta ? 1 : 0);
  EncodeCrlSummary(value, crl);
  if (auto put = Put(txn.get(), crls_, U32PairKey(issuer.state.issuer_no, crl.crl_id), value); !put) {
    return std::unexpected(put.error());
  }
  return crl.crl_id;
}

Result<std::uint32_t> Store::PinPartitions(WriteTxn& txn, IssuerRecord& issuer, bool pin) {
  auto partitions = ListPartitions(txn.get(), issuer.state.issuer_no);
  if (!partitions) return std::unexpected(partitions.error());
  std::uint32_t pinned = 0;
  for (PartitionRecord& partition : *partitions) {
    const bool expected = pin && partition.base.has_value() && partition.scope != PartitionScope::kCaCerts;
    if (expected) ++pinned;
    if (partition.expected == expected) continue;
    partition.expected = expected;
    if (auto put = PutPartition(txn, issuer.state.issuer_no, partition); !put) return std::unexpected(put.error());
  }
  issuer.state.pinned = pin;
  if (auto updated = UpdateIssuer(txn, issuer); !updated) return std::unexpected(updated.error());
  return pinned;
}

Result<void> Store::SetCompromise(WriteTxn& txn, IssuerRecord& issuer, const CompromiseRecord& record) {
  // An earlier stated time wins: a later declaration cannot make a compromise start later.
  if (issuer.state.compromised_since && *issuer.state.compromised_since <= record.since) return {};
  Bytes value;
  value.push_back(kRecordVersion);
  AppendI64(value, record.since);
  AppendI64(value, record.declared_at);
  value.insert(value.end(), record.declared_by.begin(), record.declared_by.end());
  if (auto put = Put(txn.get(), compromises_, U32Key(issuer.state.issuer_no), value); !put) {
    return std::unexpected(put.error());
  }
  issuer.state.compromised_since = record.since;
  // Every response of this issuer now states too little: each serial is revoked from `since` on.
  if (auto dropped = DropIssuerResponses(txn, issuer.state.issuer_no); !dropped) return std::unexpected(dropped.error());
  return PutIssuer(txn.get(), issuer);
}

Result<void> Store::UpdateIssuer(WriteTxn& txn, IssuerRecord& issuer) {
  auto partitions = ListPartitions(txn.get(), issuer.state.issuer_no);
  if (!partitions) return std::unexpected(partitions.error());
  Coverage coverage;
  bool have_full = false;
  bool missing_expected = false;
  bool first = true;
  for (const PartitionRecord& partition : *partitions) {
    const auto& current = partition.effective();
    if (partition.scope != PartitionScope::kCaCerts) {
      if (partition.expected) ++coverage.partitions_expected;
      if (!current) {
        if (partition.expected) missing_expected = true;
        continue;
      }
      ++coverage.partitions_held;
      if (partition.scope == PartitionScope::kAll) have_full = true;
    } else if (!current) {
      continue;
    }
    coverage.entries += current->entry_count;
    coverage.oldest_this_update = first ? current->this_update : std::min(coverage.oldest_this_update, current->this_update);
    first = false;
    if (current->next_update) {
      coverage.earliest_next_update = coverage.earliest_next_update
                                          ? std::min(*coverage.earliest_next_update, *current->next_update)
                                          : *current->next_update;
    }
  }
  // A full CRL covers everything. Partitions cover everything only once the operator has pinned the expected
  // set (ocspctl partitions --pin) and every expected one is held: before that, nothing says how many
  // municipalities there are, and absence from the ones held proves nothing.
  coverage.complete = have_full || (issuer.state.pinned && coverage.partitions_held > 0 && !missing_expected);
  issuer.state.coverage = coverage;
  return PutIssuer(txn.get(), issuer);
}

// --- EntryMerge ---

Result<EntryMerge> EntryMerge::Begin(Store& store, WriteTxn& txn, std::uint32_t issuer_no, Mode mode,
                                     std::vector<bool> replaced_partitions) {
  auto cursor = Cursor::Open(txn.get(), store.entries_);
  if (!cursor) return std::unexpected(cursor.error());
  EntryMerge merge(store, txn.get(), std::move(*cursor), issuer_no, mode, std::move(replaced_partitions));
  // Most imports (every first one) find no stored response of the issuer: then no second cursor walks along.
  auto responses = Cursor::Open(txn.get(), store.responses_);
  if (!responses) return std::unexpected(responses.error());
  {
    const Bytes prefix = U32Key(issuer_no);
    MDB_val key = ToVal(prefix);
    MDB_val value{};
    const int rc = mdb_cursor_get(responses->get(), &key, &value, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size >= 4 && std::memcmp(key.mv_data, prefix.data(), 4) == 0) {
      merge.responses_.emplace(std::move(*responses));
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
      return std::unexpected(LmdbError(rc, "looking for stored responses"));
    }
  }
  // MDB_APPEND is safe only while no key of a later issuer exists.
  MDB_val key{};
  MDB_val value{};
  const int last = mdb_cursor_get(merge.cursor_.get(), &key, &value, MDB_LAST);
  merge.appending_ = last == MDB_NOTFOUND || (key.mv_size >= 4 && ReadU32(static_cast<const std::uint8_t*>(key.mv_data)) <= issuer_no);
  const Bytes prefix = U32Key(issuer_no);
  key = ToVal(prefix);
  if (auto moved = merge.AdvanceOld(MDB_SET_RANGE); !moved) return std::unexpected(moved.error());
  merge.holds_nothing_ = !merge.old_valid_;
  MDB_stat stat{};
  if (int rc = mdb_env_stat(mdb_txn_env(txn.get()), &stat); rc != 0) return std::unexpected(LmdbError(rc, "mdb_env_stat"));
  merge.page_size_ = stat.ms_psize;
  (void)key;
  return merge;
}

Result<void> EntryMerge::AdvanceOld(int op) {
  // The walk reads the whole old key range through LMDB's read-only map; let those pages go now and then so
  // a re-import of tens of millions of entries stays in bounded memory. They remain in the page cache, and
  // the write transaction's dirty pages live outside the map (no MDB_WRITEMAP), so nothing is lost.
  if ((++walked_ & 0xfffff) == 0 && map_size_ != 0) ::madvise(map_begin_, map_size_, MADV_DONTNEED);
  MDB_val key{};
  MDB_val value{};
  Bytes prefix;
  if (op == MDB_SET_RANGE) {
    prefix = U32Key(issuer_no_);
    key = ToVal(prefix);
  }
  const int rc = mdb_cursor_get(cursor_.get(), &key, &value, static_cast<MDB_cursor_op>(op));
  if (rc == MDB_NOTFOUND) {
    old_valid_ = false;
    return {};
  }
  if (rc != 0) return std::unexpected(LmdbError(rc, "walking the entries"));
  const auto* bytes = static_cast<const std::uint8_t*>(key.mv_data);
  if (key.mv_size < 5 || ReadU32(bytes) != issuer_no_) {
    old_valid_ = false;
    return {};
  }
  old_serial_ = ByteView(bytes + 5, key.mv_size - 5);
  if (map_size_ == 0 && !map_searched_) FindMap(bytes);
  // Only what SkipIfUnchanged compares is read here; the whole record is decoded (OldEntry) only for an entry
  // that changes, goes, or is kept: 1% of a daily re-import. Decoding every record was 8% of its walk.
  const ByteView record = FromVal(value);
  if (!KnownEntryRecord(record)) {
    return Fail(ErrorCode::kStore, "entry record of an unknown version or size");
  }
  old_record_ = record;
  old_decoded_ = false;
  const EntryHeader header = ReadEntryHeader(record);
  old_partition_no_ = header.partition_no;
  old_hold_kept_ = header.hold_kept;
  old_fingerprint_ = header.fingerprint;
  old_valid_ = true;
  return {};
}

Result<void> EntryMerge::DecodeOld() {
  if (old_decoded_) return {};
  auto entry = DecodeEntry(old_record_);  // read before any write of this step: the view is still valid
  if (!entry) return std::unexpected(entry.error());
  old_entry_ = *entry;
  old_decoded_ = true;
  return {};
}

// JPKI never releases a hold: a hold that a newer CRL drops (or a delta removes) stays revoked, flagged, counted.
Result<void> EntryMerge::KeepHold() {
  if (auto decoded = DecodeOld(); !decoded) return decoded;
  if (!old_entry_.hold_kept) {
    RevokedEntry kept = old_entry_;
    kept.hold_kept = true;
    const EncodedEntry encoded = EncodeEntry(kept, old_fingerprint_);
    MDB_val key{};
    MDB_val value{};
    mdb_cursor_get(cursor_.get(), &key, &value, MDB_GET_CURRENT);
    MDB_val new_value = encoded.val();
    if (int rc = mdb_cursor_put(cursor_.get(), &key, &new_value, MDB_CURRENT); rc != 0) {
      return std::unexpected(LmdbError(rc, "keeping a certificateHold"));
    }
  }
  ++counts_.holds_kept;
  return AdvanceOld(MDB_NEXT);
}

Result<void> EntryMerge::DropOld() {
  if (auto decoded = DecodeOld(); !decoded) return decoded;
  const bool ours = old_entry_.partition_no < replaced_.size() && replaced_[old_entry_.partition_no];
  if (mode_ == Mode::kApplyDelta || !ours) return AdvanceOld(MDB_NEXT);
  if (old_entry_.reason == Reason::kCertificateHold) return KeepHold();
  if (auto dropped = DropStoredResponses(old_serial_); !dropped) return dropped;
  if (int rc = mdb_cursor_del(cursor_.get(), 0); rc != 0) return std::unexpected(LmdbError(rc, "removing an entry"));
  ++counts_.removed;
  // After a delete, MDB_NEXT yields the entry that took the deleted one's place (LMDB's C_DEL rule).
  return AdvanceOld(MDB_NEXT);
}

Result<bool> EntryMerge::SkipIfUnchanged(ByteView serial, std::uint64_t fingerprint, std::uint32_t partition_no) {
  if (!last_serial_.empty() && !SerialLess(last_serial_, serial)) return false;  // Add reports it
  while (old_valid_ && SerialLess(old_serial_, serial)) {
    if (auto dropped = DropOld(); !dropped) return std::unexpected(dropped.error());
  }
  if (fingerprint == 0 || !old_valid_ || old_fingerprint_ != StoredFingerprint(fingerprint) || SerialLess(serial, old_serial_) ||
      old_partition_no_ != partition_no || old_hold_kept_) {
    return false;
  }
  last_serial_.assign(serial.begin(), serial.end());
  ++counts_.unchanged;
  if (auto moved = AdvanceOld(MDB_NEXT); !moved) return std::unexpected(moved.error());
  return true;
}

Result<void> EntryMerge::Add(ByteView serial, const RevokedEntry& entry, std::uint64_t fingerprint) {
  if (!last_serial_.empty() && !SerialLess(last_serial_, serial)) {
    return Fail(ErrorCode::kInvalidArgument, "serial 0x" + ToHex(serial) + " is listed twice or out of order");
  }
  last_serial_.assign(serial.begin(), serial.end());
  while (old_valid_ && SerialLess(old_serial_, serial)) {
    if (auto dropped = DropOld(); !dropped) return dropped;
  }
  const bool removal = entry.reason == Reason::kRemoveFromCrl;
  const bool same_serial = old_valid_ && !SerialLess(serial, old_serial_);
  if (same_serial) {
    if (auto decoded = DecodeOld(); !decoded) return decoded;
    // A partition's CRL speaks only for its own entries: a delta of one partition may not remove or rewrite an
    // entry another partition (or the ARL) holds, and a replaced partition may not take one over.
    const bool other_partition = old_entry_.partition_no != entry.partition_no;
    const bool other_replaced = mode_ == Mode::kReplacePartitions && old_entry_.partition_no < replaced_.size() &&
                                replaced_[old_entry_.partition_no];
    if (other_partition && !other_replaced) {
      return Fail(ErrorCode::kRefused, "serial 0x" + ToHex(serial) + " is already listed by another partition");
    }
    if (removal) {
      if (old_entry_.reason == Reason::kCertificateHold) {
        return KeepHold();
      }
      if (auto dropped = DropStoredResponses(serial); !dropped) return dropped;
      if (int rc = mdb_cursor_del(cursor_.get(), 0); rc != 0) return std::unexpected(LmdbError(rc, "removing an entry"));
      ++counts_.removed;
      return AdvanceOld(MDB_NEXT);
    }
    const bool same_status = old_entry_ == entry;
    if (same_status && (fingerprint == 0 || StoredFingerprint(fingerprint) == old_fingerprint_)) {
      ++counts_.unchanged;
      return AdvanceOld(MDB_NEXT);
    }
    // The same status under other bytes (another time encoding, or a format-3 record without a fingerprint):
    // the record takes the new fingerprint, but nothing a response states has changed.
    if (!same_status) {
      if (auto dropped = DropStoredResponses(serial); !dropped) return dropped;
    }
    const EncodedEntry encoded = EncodeEntry(entry, fingerprint);
    MDB_val key{};
    MDB_val value{};
    mdb_cursor_get(cursor_.get(), &key, &value, MDB_GET_CURRENT);
    MDB_val new_value = encoded.val();
    if (int rc = mdb_cursor_put(cursor_.get(), &key, &new_value, MDB_CURRENT); rc != 0) {
      return std::unexpected(LmdbError(rc, "updating an entry"));
    }
    ++(same_status ? counts_.unchanged : counts_.changed);
    return AdvanceOld(MDB_NEXT);
  }
  if (removal) return {};  // removing what is not held: nothing to do
  if (auto dropped = DropStoredResponses(serial); !dropped) return dropped;  // a kept good response
  EntryKey key_bytes;
  if (!MakeEntryKey(issuer_no_, serial, key_bytes)) {
    return Fail(ErrorCode::kInvalidArgument, "serial 0x" + ToHex(serial) + " cannot be stored");
  }
  const EncodedEntry encoded = EncodeEntry(entry, fingerprint);
  MDB_val key = ToVal(key_bytes.view());
  MDB_val value = encoded.val();
  const unsigned flags = (appending_ && !old_valid_) ? MDB_APPEND : 0u;
  if (int rc = mdb_cursor_put(cursor_.get(), &key, &value, flags); rc != 0) {
    return std::unexpected(LmdbError(rc, "writing an entry"));
  }
  ++counts_.added;
  if (flags == MDB_APPEND) {
    if (auto spaced = LeaveRoom(key_bytes.view(), encoded.size); !spaced) return spaced;
  }
  // The cursor now sits on the new key; the old entry we compared against is the next one.
  if (old_valid_) return AdvanceOld(MDB_NEXT);
  return {};
}

// LMDB does not say where its map is (mdb_env_info reports it only with MDB_FIXEDMAP); a key read through the
// map points into it, and /proc/self/maps names the mapping that holds that address.
void EntryMerge::FindMap(const void* inside) {
  map_searched_ = true;
  std::ifstream maps("/proc/self/maps");
  const auto address = reinterpret_cast<std::uintptr_t>(inside);
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &begin, &end) != 2) continue;
    if (address < begin || address >= end) continue;
    if (line.find("data.mdb") == std::string::npos) return;  // a dirty page, not the map: leave it
    map_begin_ = reinterpret_cast<void*>(begin);
    map_size_ = end - begin;
    return;
  }
}

// LMDB's leaf node: an 8-byte header, the key and the value, rounded to even, plus a 2-byte slot in the page's
// index (mdb.c: NODESIZE, EVEN, indx_t). Only the spacing of LeaveRoom depends on it, never correctness.
std::size_t LeafNodeSize(std::size_t key_size, std::size_t value_size) {
  return ((8 + key_size + value_size + 1) & ~std::size_t{1}) + 2;
}

// MDB_APPEND fills each leaf page to the last byte, so the next day's first insertion into a page splits it:
// day 1 over a bulk-loaded day 0 wrote 96k pages, 38k of them from such splits, against 108k for the first
// import. So an appending merge ends each leaf page with a spacer entry about two entries large (its key is
// the previous key plus a zero octet: between two serials, never a serial's key), which makes LMDB start the
// next page, and deletes the spacer once the next entry is on that page: each page keeps room for two more
// entries. The page fill is modelled here, not read from LMDB: a model that drifts only moves the room
// within pages. Called after each appended entry; the cursor is on it.
Result<void> EntryMerge::LeaveRoom(ByteView key, std::size_t value_size) {
  if (!pending_spacer_.empty()) {
    // The spacer is the entry before this one, at the end of the page it closed: delete it there, while the
    // page is in cache (deleting a 10M import's 100k spacers by key at the end cost a tree search each
    // through cold dirty pages: 5.8k samples of the main thread against 4.4k here, one profile each).
    MDB_val k{};
    MDB_val v{};
    int rc = mdb_cursor_get(cursor_.get(), &k, &v, MDB_PREV);
    if (rc == 0 && k.mv_size == pending_spacer_.size() &&
        std::memcmp(k.mv_data, pending_spacer_.data(), k.mv_size) == 0) {
      rc = mdb_cursor_del(cursor_.get(), 0);
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
      rc = 0;
      spacers_.push_back(static_cast<std::uint8_t>(pending_spacer_.size()));  // not where expected: Finish
      spacers_.insert(spacers_.end(), pending_spacer_.begin(), pending_spacer_.end());
    }
    if (rc != 0) return std::unexpected(LmdbError(rc, "removing a page spacer"));
    pending_spacer_.clear();
    // The next MDB_APPEND finds the last page again itself (mdb_cursor_last searches from the root).
  }
  const std::size_t capacity = page_size_ - 16;  // PAGEHDRSZ
  const std::size_t node = LeafNodeSize(key.size(), value_size);
  if (modelled_fill_ + node > capacity) modelled_fill_ = 0;  // LMDB started a new page for this entry
  modelled_fill_ += node;
  const std::size_t left = capacity - modelled_fill_;
  const std::size_t room = 2 * node;
  if (left >= room + node) return {};
  // A spacer of exactly `left` bytes closes the page: the next entry will not fit.
  const std::size_t spacer_key_size = key.size() + 1;
  if (left < 10 + spacer_key_size) return {};
  const std::size_t value_bytes = left - 10 - spacer_key_size;
  std::array<std::uint8_t, kMaxEntryKeySize + 1> spacer_key{};
  std::copy(key.begin(), key.end(), spacer_key.begin());
  spacer_zeros_.resize(std::max(spacer_zeros_.size(), value_bytes));
  MDB_val k{spacer_key_size, spacer_key.data()};
  MDB_val v{value_bytes, spacer_zeros_.data()};
  if (int rc = mdb_cursor_put(cursor_.get(), &k, &v, MDB_APPEND); rc != 0) {
    return std::unexpected(LmdbError(rc, "writing a page spacer"));
  }
  pending_spacer_.assign(spacer_key.begin(), spacer_key.begin() + spacer_key_size);
  modelled_fill_ = capacity;
  return {};
}

Result<EntryMerge::Counts> EntryMerge::Finish() {
  while (old_valid_) {
    if (auto dropped = DropOld(); !dropped) return std::unexpected(dropped.error());
  }
  if (!pending_spacer_.empty()) {  // the last page's: no entry followed it
    spacers_.push_back(static_cast<std::uint8_t>(pending_spacer_.size()));
    spacers_.insert(spacers_.end(), pending_spacer_.begin(), pending_spacer_.end());
    pending_spacer_.clear();
  }
  for (std::size_t at = 0; at < spacers_.size();) {
    const std::size_t key_size = spacers_[at];
    MDB_val key{key_size, spacers_.data() + at + 1};
    MDB_val value{};
    int rc = mdb_cursor_get(cursor_.get(), &key, &value, MDB_SET);
    if (rc == 0) rc = mdb_cursor_del(cursor_.get(), 0);
    if (rc != 0) return std::unexpected(LmdbError(rc, "removing a page spacer"));
    at += 1 + key_size;
  }
  spacers_.clear();
  cursor_.Close();  // the caller may commit right away
  responses_.reset();
  return counts_;
}

Result<void> EntryMerge::DropStoredResponses(ByteView serial) {
  if (!responses_) return {};
  EntryKey prefix;
  if (!MakeEntryKey(issuer_no_, serial, prefix)) return {};
  auto dropped = store_->DropResponsesAt(txn_, responses_->get(), prefix.view());
  if (!dropped) return std::unexpected(dropped.error());
  counts_.responses_dropped += *dropped;
  return {};
}

}  // namespace ocsp::store

// --- Stored responses ---

namespace ocsp::store {
namespace {

// Response key: the entry key (issuer_no u32, serial length u8, serial) then the CertID hash algorithm (u8),
// so a serial's responses sit together and in the entries' order.
constexpr std::size_t kMaxResponseKeySize = kMaxEntryKeySize + 1;
// Response value: version u8, status u8, flags u8, reason u8, requested_hour u32, signer_id u64,
// revocation_time i64, this_update i64, next_update i64, produced_at i64, then the DER OCSPResponse.
constexpr std::size_t kResponseHeaderSize = 1 + 1 + 1 + 1 + 4 + 8 + 8 + 8 + 8 + 8;
static_assert(kResponseHeaderSize == 48);
constexpr std::uint8_t kResponseHasReason = 0x01;
constexpr std::string_view kGoodResponsesKey = "good_responses";
constexpr std::string_view kRevokedResponsesKey = "revoked_responses";

// mdb_del wants a pointer to an MDB_val; this keeps call sites to one line.
MDB_val* ptr(MDB_val&& val) { return &val; }

struct ResponseKey {
  std::array<std::uint8_t, kMaxResponseKeySize> bytes{};
  std::size_t size = 0;
  [[nodiscard]] ByteView view() const { return {bytes.data(), size}; }
};

bool MakeResponseKey(std::uint32_t issuer_no, HashAlgorithm algorithm, ByteView serial, ResponseKey& key) {
  EntryKey entry;
  if (!MakeEntryKey(issuer_no, serial, entry)) return false;
  std::memcpy(key.bytes.data(), entry.bytes.data(), entry.size);
  key.bytes[entry.size] = static_cast<std::uint8_t>(algorithm);
  key.size = entry.size + 1;
  return true;
}

// LRU key: requested_hour u32, then the response key: the first key is the least recently requested.
Bytes LruKey(std::uint32_t hour, ByteView response_key) {
  Bytes key = U32Key(hour);
  key.insert(key.end(), response_key.begin(), response_key.end());
  return key;
}

Result<StoredResponseInfo> DecodeResponseInfo(ByteView value) {
  if (value.size() < kResponseHeaderSize || value[0] != kRecordVersion + 1) {
    return Fail(ErrorCode::kStore, "stored response of an unknown version or size");
  }
  const std::uint8_t* in = value.data();
  StoredResponseInfo info;
  info.status = static_cast<StoredStatus>(in[1]);
  if (in[2] & kResponseHasReason) info.reason = static_cast<Reason>(in[3]);
  info.requested_hour = ReadU32(in + 4);
  info.signer_id = ReadU64(in + 8);
  info.revocation_time = ReadI64(in + 16);
  info.this_update = ReadI64(in + 24);
  info.next_update = ReadI64(in + 32);
  info.produced_at = ReadI64(in + 40);
  return info;
}

void EncodeResponseInfo(std::uint8_t* out, const StoredResponseInfo& info) {
  Bytes header;
  header.reserve(kResponseHeaderSize);
  header.push_back(kRecordVersion + 1);  // records of format 3
  header.push_back(static_cast<std::uint8_t>(info.status));
  header.push_back(info.reason ? kResponseHasReason : 0);
  header.push_back(info.reason ? static_cast<std::uint8_t>(*info.reason) : 0);
  AppendU32(header, info.requested_hour);
  AppendU64(header, info.signer_id);
  AppendI64(header, info.revocation_time);
  AppendI64(header, info.this_update);
  AppendI64(header, info.next_update);
  AppendI64(header, info.produced_at);
  std::memcpy(out, header.data(), kResponseHeaderSize);
}

Result<std::uint64_t> ReadCounter(MDB_txn* txn, MDB_dbi meta, std::string_view name) {
  auto value = Get(txn, meta, AsBytes(name));
  if (!value) return std::unexpected(value.error());
  if (!*value || (*value)->size() != 8) return std::uint64_t{0};
  return ReadU64((*value)->data());
}

}  // namespace

Result<std::optional<StoredResponse>> Store::GetResponse(MDB_txn* txn, std::uint32_t issuer_no,
                                                         HashAlgorithm algorithm, ByteView serial) const {
  ResponseKey key;
  if (!MakeResponseKey(issuer_no, algorithm, serial, key)) return std::optional<StoredResponse>();
  auto value = Get(txn, responses_, key.view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<StoredResponse>();
  auto info = DecodeResponseInfo(**value);
  if (!info) return std::unexpected(info.error());
  return std::optional<StoredResponse>(StoredResponse{*info, (*value)->subspan(kResponseHeaderSize)});
}

Result<StoredResponseCounts> Store::CountResponses(MDB_txn* txn) const {
  auto good = ReadCounter(txn, meta_, kGoodResponsesKey);
  if (!good) return std::unexpected(good.error());
  auto revoked = ReadCounter(txn, meta_, kRevokedResponsesKey);
  if (!revoked) return std::unexpected(revoked.error());
  return StoredResponseCounts{*good, *revoked};
}

Result<void> Store::AddToCounts(MDB_txn* txn, std::int64_t good, std::int64_t revoked) {
  for (auto [name, delta] : {std::pair{kGoodResponsesKey, good}, std::pair{kRevokedResponsesKey, revoked}}) {
    if (delta == 0) continue;
    auto current = ReadCounter(txn, meta_, name);
    if (!current) return std::unexpected(current.error());
    const auto updated = static_cast<std::uint64_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(*current) + delta));
    Bytes value;
    AppendU64(value, updated);
    if (auto put = Put(txn, meta_, AsBytes(name), value); !put) return put;
  }
  return {};
}

Result<void> Store::WalkRevoked(MDB_txn* txn, std::uint32_t issuer_no, const RevokedVisitor& visit) const {
  auto entries = Cursor::Open(txn, entries_);
  if (!entries) return std::unexpected(entries.error());
  auto responses = Cursor::Open(txn, responses_);
  if (!responses) return std::unexpected(responses.error());
  const Bytes prefix = U32Key(issuer_no);
  MDB_val key = ToVal(prefix);
  MDB_val value{};
  MDB_val response_key = ToVal(prefix);
  MDB_val response_value{};
  int response_rc = mdb_cursor_get(responses->get(), &response_key, &response_value, MDB_SET_RANGE);
  std::array<std::optional<StoredResponseInfo>, 4> stored;
  for (int rc = mdb_cursor_get(entries->get(), &key, &value, MDB_SET_RANGE);
       rc == 0 && key.mv_size >= 5 && std::memcmp(key.mv_data, prefix.data(), 4) == 0;
       rc = mdb_cursor_get(entries->get(), &key, &value, MDB_NEXT)) {
    const ByteView entry_key = FromVal(key);
    auto entry = DecodeEntry(FromVal(value));
    if (!entry) return std::unexpected(entry.error());
    stored.fill(std::nullopt);
    // Both databases are in the same order: the response cursor only ever moves forward.
    while (response_rc == 0) {
      const ByteView current = FromVal(response_key);
      const ByteView current_entry = current.first(current.size() - 1);
      const int order = std::memcmp(current_entry.data(), entry_key.data(),
                                    std::min(current_entry.size(), entry_key.size()));
      const bool before = order < 0 || (order == 0 && current_entry.size() < entry_key.size());
      const bool same = order == 0 && current_entry.size() == entry_key.size();
      if (!before && !same) break;
      if (same) {
        const std::uint8_t algorithm = current.back();
        auto info = DecodeResponseInfo(FromVal(response_value));
        if (!info) return std::unexpected(info.error());
        if (algorithm >= 1 && algorithm <= stored.size()) stored[algorithm - 1] = *info;
      }
      response_rc = mdb_cursor_get(responses->get(), &response_key, &response_value, MDB_NEXT);
    }
    if (response_rc != 0 && response_rc != MDB_NOTFOUND) return std::unexpected(LmdbError(response_rc, "walking responses"));
    visit(entry_key.subspan(5), *entry, stored);
  }
  return {};
}

Result<void> Store::WalkResponses(MDB_txn* txn, std::uint32_t issuer_no, const ResponseVisitor& visit) const {
  auto cursor = Cursor::Open(txn, responses_);
  if (!cursor) return std::unexpected(cursor.error());
  const Bytes prefix = U32Key(issuer_no);
  MDB_val key = ToVal(prefix);
  MDB_val value{};
  for (int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
       rc == 0 && key.mv_size >= 7 && std::memcmp(key.mv_data, prefix.data(), 4) == 0;
       rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_NEXT)) {
    const ByteView bytes = FromVal(key);
    auto info = DecodeResponseInfo(FromVal(value));
    if (!info) return std::unexpected(info.error());
    visit(bytes.subspan(5, bytes.size() - 6), static_cast<HashAlgorithm>(bytes.back()), *info);
  }
  return {};
}

Result<void> Store::PutResponse(WriteTxn& txn, std::uint32_t issuer_no, HashAlgorithm algorithm, ByteView serial,
                                const StoredResponseInfo& info, ByteView der) {
  ResponseKey key;
  if (!MakeResponseKey(issuer_no, algorithm, serial, key)) {
    return Fail(ErrorCode::kInvalidArgument, "serial 0x" + ToHex(serial) + " cannot be stored");
  }
  std::int64_t good = info.status == StoredStatus::kGood ? 1 : 0;
  std::int64_t revoked = 1 - good;
  auto old = Get(txn.get(), responses_, key.view());
  if (!old) return std::unexpected(old.error());
  if (*old) {
    auto old_info = DecodeResponseInfo(**old);
    if (!old_info) return std::unexpected(old_info.error());
    if (old_info->status == StoredStatus::kGood) {
      --good;
      if (int rc = mdb_del(txn.get(), response_lru_, ptr(ToVal(LruKey(old_info->requested_hour, key.view()))), nullptr);
          rc != 0 && rc != MDB_NOTFOUND) {
        return std::unexpected(LmdbError(rc, "replacing a stored response"));
      }
    } else {
      --revoked;
    }
  }
  MDB_val k = ToVal(key.view());
  MDB_val v{kResponseHeaderSize + der.size(), nullptr};
  if (int rc = mdb_put(txn.get(), responses_, &k, &v, MDB_RESERVE); rc != 0) {
    return std::unexpected(LmdbError(rc, "storing a response"));
  }
  auto* out = static_cast<std::uint8_t*>(v.mv_data);
  EncodeResponseInfo(out, info);
  std::memcpy(out + kResponseHeaderSize, der.data(), der.size());
  if (info.status == StoredStatus::kGood) {
    if (auto put = Put(txn.get(), response_lru_, LruKey(info.requested_hour, key.view()), {}); !put) return put;
  }
  return AddToCounts(txn.get(), good, revoked);
}

Result<bool> Store::TouchResponse(WriteTxn& txn, std::uint32_t issuer_no, HashAlgorithm algorithm, ByteView serial,
                                  std::uint32_t hour) {
  ResponseKey key;
  if (!MakeResponseKey(issuer_no, algorithm, serial, key)) return false;
  MDB_val k = ToVal(key.view());
  MDB_val v{};
  if (int rc = mdb_get(txn.get(), responses_, &k, &v); rc == MDB_NOTFOUND) {
    return false;
  } else if (rc != 0) {
    return std::unexpected(LmdbError(rc, "reading a stored response"));
  }
  auto info = DecodeResponseInfo(FromVal(v));
  if (!info) return std::unexpected(info.error());
  if (info->status != StoredStatus::kGood || info->requested_hour >= hour) return true;
  if (int rc = mdb_del(txn.get(), response_lru_, ptr(ToVal(LruKey(info->requested_hour, key.view()))), nullptr);
      rc != 0 && rc != MDB_NOTFOUND) {
    return std::unexpected(LmdbError(rc, "updating the request order"));
  }
  // Rewrite the record with the new hour; the value read above is invalid once the database is written.
  Bytes copy(FromVal(v).begin(), FromVal(v).end());
  info->requested_hour = hour;
  EncodeResponseInfo(copy.data(), *info);
  if (auto put = Put(txn.get(), responses_, key.view(), copy); !put) return std::unexpected(put.error());
  if (auto put = Put(txn.get(), response_lru_, LruKey(hour, key.view()), {}); !put) return std::unexpected(put.error());
  return true;
}

Result<std::uint64_t> Store::DropResponsesAt(MDB_txn* txn, MDB_cursor* cursor, ByteView prefix) {
  std::uint64_t dropped = 0;
  std::int64_t good = 0;
  std::int64_t revoked = 0;
  while (true) {
    MDB_val key = ToVal(prefix);
    MDB_val value{};
    const int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) break;
    if (rc != 0) return std::unexpected(LmdbError(rc, "finding stored responses"));
    if (key.mv_size != prefix.size() + 1 || std::memcmp(key.mv_data, prefix.data(), prefix.size()) != 0) break;
    auto info = DecodeResponseInfo(FromVal(value));
    if (!info) return std::unexpected(info.error());
    if (info->status == StoredStatus::kGood) {
      --good;
      const Bytes lru = LruKey(info->requested_hour, FromVal(key));
      if (int del = mdb_del(txn, response_lru_, ptr(ToVal(lru)), nullptr); del != 0 && del != MDB_NOTFOUND) {
        return std::unexpected(LmdbError(del, "dropping a stored response"));
      }
    } else {
      --revoked;
    }
    if (int del = mdb_cursor_del(cursor, 0); del != 0) return std::unexpected(LmdbError(del, "dropping a stored response"));
    ++dropped;
  }
  if (dropped != 0) {
    if (auto counted = AddToCounts(txn, good, revoked); !counted) return std::unexpected(counted.error());
  }
  return dropped;
}

Result<std::uint64_t> Store::DropResponses(WriteTxn& txn, std::uint32_t issuer_no, ByteView serial) {
  EntryKey prefix;
  if (!MakeEntryKey(issuer_no, serial, prefix)) return std::uint64_t{0};
  auto cursor = Cursor::Open(txn.get(), responses_);
  if (!cursor) return std::unexpected(cursor.error());
  return DropResponsesAt(txn.get(), cursor->get(), prefix.view());
}

Result<std::uint64_t> Store::DropIssuerResponses(WriteTxn& txn, std::uint32_t issuer_no) {
  auto cursor = Cursor::Open(txn.get(), responses_);
  if (!cursor) return std::unexpected(cursor.error());
  const Bytes prefix = U32Key(issuer_no);
  std::uint64_t dropped = 0;
  std::int64_t good = 0;
  std::int64_t revoked = 0;
  MDB_val key = ToVal(prefix);
  MDB_val value{};
  int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
  while (rc == 0 && key.mv_size >= 4 && std::memcmp(key.mv_data, prefix.data(), 4) == 0) {
    auto info = DecodeResponseInfo(FromVal(value));
    if (!info) return std::unexpected(info.error());
    if (info->status == StoredStatus::kGood) {
      --good;
      const Bytes lru = LruKey(info->requested_hour, FromVal(key));
      if (int del = mdb_del(txn.get(), response_lru_, ptr(ToVal(lru)), nullptr); del != 0 && del != MDB_NOTFOUND) {
        return std::unexpected(LmdbError(del, "dropping stored responses"));
      }
    } else {
      --revoked;
    }
    if (int del = mdb_cursor_del(cursor->get(), 0); del != 0) return std::unexpected(LmdbError(del, "dropping stored responses"));
    ++dropped;
    rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_GET_CURRENT);
    if (rc == MDB_NOTFOUND || rc == EINVAL) {
      key = ToVal(prefix);
      rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
    }
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return std::unexpected(LmdbError(rc, "dropping stored responses"));
  cursor->Close();
  if (dropped != 0) {
    if (auto counted = AddToCounts(txn.get(), good, revoked); !counted) return std::unexpected(counted.error());
  }
  return dropped;
}

Result<std::uint64_t> Store::EvictGoodResponses(WriteTxn& txn, std::uint64_t keep) {
  auto counts = CountResponses(txn.get());
  if (!counts) return std::unexpected(counts.error());
  if (counts->good <= keep) return std::uint64_t{0};
  std::uint64_t to_evict = counts->good - keep;
  auto lru = Cursor::Open(txn.get(), response_lru_);
  if (!lru) return std::unexpected(lru.error());
  std::uint64_t evicted = 0;
  MDB_val key{};
  MDB_val value{};
  while (evicted < to_evict) {
    const int rc = mdb_cursor_get(lru->get(), &key, &value, MDB_FIRST);
    if (rc == MDB_NOTFOUND) break;
    if (rc != 0) return std::unexpected(LmdbError(rc, "evicting stored responses"));
    const Bytes response_key(static_cast<const std::uint8_t*>(key.mv_data) + 4,
                             static_cast<const std::uint8_t*>(key.mv_data) + key.mv_size);
    if (int del = mdb_cursor_del(lru->get(), 0); del != 0) return std::unexpected(LmdbError(del, "evicting"));
    if (int del = mdb_del(txn.get(), responses_, ptr(ToVal(response_key)), nullptr); del != 0 && del != MDB_NOTFOUND) {
      return std::unexpected(LmdbError(del, "evicting a stored response"));
    }
    ++evicted;
  }
  lru->Close();
  if (auto counted = AddToCounts(txn.get(), -static_cast<std::int64_t>(evicted), 0); !counted) {
    return std::unexpected(counted.error());
  }
  return evicted;
}

}  // namespace ocsp::store
