#include "store/store.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

namespace ocsp::store {
namespace {

// On-disk layout, version 1 (docs/store-format.md). All integers big-endian.
constexpr std::uint8_t kRecordVersion = 1;
constexpr std::string_view kFormatKey = "format_version";
constexpr std::string_view kNextIssuerNoKey = "next_issuer_no";

// CRL summary: crl_id u32, number_len u8, number[20], flags u8, this_update i64, next_update i64,
// imported_at i64, sha256[32], entry_count u64.
constexpr std::size_t kCrlSummarySize = 4 + 1 + kMaxCrlNumberBytes + 1 + 8 + 8 + 8 + 32 + 8;
static_assert(kCrlSummarySize == 90);
// Issuer record: version u8, issuer_no u32, last_crl_id u32, has_crl u8, summary, certificate DER (rest).
constexpr std::size_t kIssuerHeaderSize = 1 + 4 + 4 + 1 + kCrlSummarySize;
static_assert(kIssuerHeaderSize == 100);
// Revoked entry: version u8, flags u8, reason u8, reserved u8, revocation i64, invalidity i64, crl_id u32.
constexpr std::size_t kEntrySize = 1 + 1 + 1 + 1 + 8 + 8 + 4;
static_assert(kEntrySize == 24);
// History record: version u8, summary.
constexpr std::size_t kCrlRecordSize = 1 + kCrlSummarySize;

constexpr std::uint8_t kCrlHasNextUpdate = 0x01;
constexpr std::uint8_t kEntryHasReason = 0x01;
constexpr std::uint8_t kEntryHasInvalidity = 0x02;

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

Bytes IssuerNoPrefix(std::uint32_t issuer_no) {
  Bytes key;
  AppendU32(key, issuer_no);
  return key;
}

// Key of an entry: issuer_no u32 || serial magnitude. Fixed-size buffer: no allocation on lookups.
struct EntryKey {
  std::array<std::uint8_t, 4 + kMaxSerialBytes> bytes{};
  std::size_t size = 0;
  [[nodiscard]] ByteView view() const { return {bytes.data(), size}; }
};

Result<EntryKey> MakeEntryKey(std::uint32_t issuer_no, ByteView serial) {
  if (serial.empty() || serial.size() > kMaxSerialBytes) {
    return Fail(ErrorCode::kInvalidArgument, "serial of " + std::to_string(serial.size()) + " octets");
  }
  EntryKey key;
  for (int i = 0; i < 4; ++i) key.bytes[i] = static_cast<std::uint8_t>(issuer_no >> (24 - 8 * i));
  std::memcpy(key.bytes.data() + 4, serial.data(), serial.size());
  key.size = 4 + serial.size();
  return key;
}

Bytes EncodeEntry(const RevokedEntry& entry) {
  Bytes out;
  out.reserve(kEntrySize);
  out.push_back(kRecordVersion);
  std::uint8_t flags = 0;
  if (entry.reason) flags |= kEntryHasReason;
  if (entry.invalidity_date) flags |= kEntryHasInvalidity;
  out.push_back(flags);
  out.push_back(entry.reason ? static_cast<std::uint8_t>(*entry.reason) : 0);
  out.push_back(0);
  AppendI64(out, entry.revocation_time);
  AppendI64(out, entry.invalidity_date.value_or(0));
  AppendU32(out, entry.crl_id);
  return out;
}

Result<RevokedEntry> DecodeEntry(ByteView value) {
  if (value.size() != kEntrySize || value[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "entry record of an unknown version or size");
  }
  const std::uint8_t* in = value.data();
  RevokedEntry entry;
  const std::uint8_t flags = in[1];
  if (flags & kEntryHasReason) entry.reason = static_cast<Reason>(in[2]);
  entry.revocation_time = ReadI64(in + 4);
  if (flags & kEntryHasInvalidity) entry.invalidity_date = ReadI64(in + 12);
  entry.crl_id = ReadU32(in + 20);
  return entry;
}

Result<IssuerState> DecodeIssuerState(ByteView value) {
  if (value.size() < kIssuerHeaderSize || value[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "issuer record of an unknown version or size");
  }
  IssuerState state;
  state.issuer_no = ReadU32(value.data() + 1);
  state.last_crl_id = ReadU32(value.data() + 5);
  if (value[9] != 0) {
    auto crl = DecodeCrlSummary(value.data() + 10);
    if (!crl) return std::unexpected(crl.error());
    state.current_crl = *crl;
  }
  return state;
}

Result<MDB_dbi> OpenDatabase(MDB_txn* txn, const char* name, bool create) {
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, &dbi); rc != 0) {
    return std::unexpected(LmdbError(rc, std::string("opening database ") + name));
  }
  return dbi;
}

}  // namespace

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
  // Repeated division of the big-endian magnitude by 10.
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
  // Minimal magnitudes: a shorter one is smaller; equal lengths compare bytewise.
  if (a.size() != b.size()) return a.size() < b.size();
  return std::memcmp(a.data(), b.data(), a.size()) < 0;
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
  auto issuers = OpenDatabase(raw, "issuers", create);
  auto crls = OpenDatabase(raw, "crls", create);
  auto entries = OpenDatabase(raw, "entries", create);
  for (const auto* dbi : {&issuers, &crls, &entries}) {
    if (!*dbi) return std::unexpected(dbi->error());
  }

  auto version = Get(raw, *meta, AsBytes(kFormatKey));
  if (!version) return std::unexpected(version.error());
  if (!*version) {
    if (options.read_only) return Fail(ErrorCode::kNotFound, "store at " + directory.string() + " is empty");
    Bytes value;
    AppendU32(value, kFormatVersion);
    if (auto put = Put(raw, *meta, AsBytes(kFormatKey), value); !put) return std::unexpected(put.error());
  } else if ((*version)->size() != 4 || ReadU32((*version)->data()) != kFormatVersion) {
    const std::string found = (*version)->size() == 4 ? std::to_string(ReadU32((*version)->data())) : "?";
    return Fail(ErrorCode::kStore, "store at " + directory.string() + " has format version " + found +
                                       "; this build reads version " + std::to_string(kFormatVersion));
  }
  // Commit even when nothing was written: it makes the database handles usable by later transactions.
  // An unchanged transaction writes nothing to the data file.
  MDB_txn* to_commit = std::exchange(guard.txn, nullptr);
  if (int rc = mdb_txn_commit(to_commit); rc != 0) return std::unexpected(LmdbError(rc, "opening the store"));
  return Store(std::move(*env), *meta, *issuers, *crls, *entries);
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
  IssuerRecord record{id, *state, Bytes((*value)->begin() + kIssuerHeaderSize, (*value)->end())};
  return std::optional<IssuerRecord>(std::move(record));
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

Result<std::optional<RevokedEntry>> Store::GetRevoked(MDB_txn* txn, std::uint32_t issuer_no,
                                                      ByteView serial) const {
  auto key = MakeEntryKey(issuer_no, serial);
  if (!key) return std::optional<RevokedEntry>();  // a serial too long to store was never stored
  auto value = Get(txn, entries_, key->view());
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<RevokedEntry>();
  auto entry = DecodeEntry(**value);
  if (!entry) return std::unexpected(entry.error());
  return std::optional<RevokedEntry>(*entry);
}

Result<std::optional<CrlSummary>> Store::GetCrl(MDB_txn* txn, std::uint32_t issuer_no,
                                                std::uint32_t crl_id) const {
  Bytes key = IssuerNoPrefix(issuer_no);
  AppendU32(key, crl_id);
  auto value = Get(txn, crls_, key);
  if (!value) return std::unexpected(value.error());
  if (!*value) return std::optional<CrlSummary>();
  if ((*value)->size() != kCrlRecordSize || (**value)[0] != kRecordVersion) {
    return Fail(ErrorCode::kStore, "CRL record of an unknown version or size");
  }
  auto crl = DecodeCrlSummary((*value)->data() + 1);
  if (!crl) return std::unexpected(crl.error());
  return std::optional<CrlSummary>(*crl);
}

Result<std::uint64_t> Store::CountRevoked(MDB_txn* txn, std::uint32_t issuer_no) const {
  auto cursor = Cursor::Open(txn, entries_);
  if (!cursor) return std::unexpected(cursor.error());
  const Bytes prefix = IssuerNoPrefix(issuer_no);
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

Result<void> Store::PutIssuer(MDB_txn* txn, const IssuerId& id, const IssuerState& state,
                              ByteView certificate_der) {
  Bytes value;
  value.reserve(kIssuerHeaderSize + certificate_der.size());
  value.push_back(kRecordVersion);
  AppendU32(value, state.issuer_no);
  AppendU32(value, state.last_crl_id);
  value.push_back(state.current_crl ? 1 : 0);
  EncodeCrlSummary(value, state.current_crl.value_or(CrlSummary{}));
  value.insert(value.end(), certificate_der.begin(), certificate_der.end());
  return Put(txn, issuers_, id.view(), value);
}

Result<IssuerRecord> Store::EnsureIssuer(WriteTxn& txn, const IssuerIdentity& identity) {
  auto existing = GetIssuer(txn.get(), identity.id);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) return std::move(**existing);

  auto next = Get(txn.get(), meta_, AsBytes(kNextIssuerNoKey));
  if (!next) return std::unexpected(next.error());
  const std::uint32_t issuer_no = *next && (*next)->size() == 4 ? ReadU32((*next)->data()) : 1;
  Bytes following;
  AppendU32(following, issuer_no + 1);
  if (auto put = Put(txn.get(), meta_, AsBytes(kNextIssuerNoKey), following); !put) {
    return std::unexpected(put.error());
  }
  IssuerRecord record{identity.id, IssuerState{issuer_no, 0, std::nullopt}, identity.certificate_der};
  if (auto put = PutIssuer(txn.get(), record.id, record.state, record.certificate_der); !put) {
    return std::unexpected(put.error());
  }
  return record;
}

Result<std::uint32_t> Store::ReplaceCrl(WriteTxn& txn, const IssuerRecord& issuer, CrlSummary crl,
                                        std::span<NewEntry> entries) {
  const std::uint32_t issuer_no = issuer.state.issuer_no;
  crl.crl_id = issuer.state.last_crl_id + 1;
  crl.entry_count = entries.size();

  {  // Remove the previous CRL's entries.
    auto cursor = Cursor::Open(txn.get(), entries_);
    if (!cursor) return std::unexpected(cursor.error());
    const Bytes prefix = IssuerNoPrefix(issuer_no);
    MDB_val key = ToVal(prefix);
    MDB_val value{};
    int rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size >= 4 && std::memcmp(key.mv_data, prefix.data(), 4) == 0) {
      if (int del = mdb_cursor_del(cursor->get(), 0); del != 0) {
        return std::unexpected(LmdbError(del, "removing the previous CRL's entries"));
      }
      // After a delete, MDB_NEXT yields the entry that took the deleted one's place (LMDB's C_DEL rule);
      // MDB_GET_CURRENT would fail with EINVAL once the last entry is gone.
      rc = mdb_cursor_get(cursor->get(), &key, &value, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return std::unexpected(LmdbError(rc, "walking the entries"));
  }

  const NewEntry* previous = nullptr;
  for (NewEntry& item : entries) {
    if (previous != nullptr && !SerialLess(previous->serial, item.serial)) {
      return Fail(ErrorCode::kInternal, "ReplaceCrl needs entries sorted by serial without duplicates");
    }
    previous = &item;
    item.entry.crl_id = crl.crl_id;
    auto key = MakeEntryKey(issuer_no, item.serial);
    if (!key) return std::unexpected(key.error());
    if (auto put = Put(txn.get(), entries_, key->view(), EncodeEntry(item.entry)); !put) {
      return std::unexpected(put.error());
    }
  }

  Bytes history_key = IssuerNoPrefix(issuer_no);
  AppendU32(history_key, crl.crl_id);
  Bytes history;
  history.push_back(kRecordVersion);
  EncodeCrlSummary(history, crl);
  if (auto put = Put(txn.get(), crls_, history_key, history); !put) return std::unexpected(put.error());

  IssuerState state = issuer.state;
  state.last_crl_id = crl.crl_id;
  state.current_crl = crl;
  if (auto put = PutIssuer(txn.get(), issuer.id, state, issuer.certificate_der); !put) {
    return std::unexpected(put.error());
  }
  return crl.crl_id;
}

}  // namespace ocsp::store
