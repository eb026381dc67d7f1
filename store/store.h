// The status store: revocation state per (issuer, serial) in a memory-mapped LMDB environment.
//
// What it holds (layout and version in docs/store-format.md):
//   - per issuer (keyed by IssuerId): a short issuer number, the CA certificate, and the current CRL's summary
//     (CRL number, thisUpdate, nextUpdate, import time, SHA-256 of the file, entry count);
//   - per (issuer, serial) that a CRL revokes: revocation time, reason, invalidity date, and which CRL;
//   - per (issuer, CRL id): the summary of every CRL imported, for audit.
// The store records facts; deciding what to answer from them is the responder's job, and deciding whether a
// CRL may be imported is the importer's.
//
// Errors: an absent issuer or serial is an ordinary value (nullopt), never an error. LMDB failures and
// records this version cannot decode are errors.
// Thread safety: a Store may be shared by threads and processes. Each thread uses its own transactions;
// there is one writer at a time (LMDB serialises write transactions, across processes too). Lookups allocate
// nothing; the CA certificate is only decoded by GetIssuer.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/issuer.h"
#include "store/lmdb.h"

namespace ocsp::store {

inline constexpr std::uint32_t kFormatVersion = 1;
// RFC 5280 caps serials and CRL numbers at 20 octets; we keep a little room for the non-conforming.
inline constexpr std::size_t kMaxSerialBytes = 32;
inline constexpr std::size_t kMaxCrlNumberBytes = 20;

// A CRL number as an unsigned big-endian magnitude, fixed size so lookups do not allocate.
struct CrlNumber {
  std::uint8_t length = 0;
  std::array<std::uint8_t, kMaxCrlNumberBytes> bytes{};

  static Result<CrlNumber> FromMagnitude(ByteView magnitude);
  [[nodiscard]] ByteView view() const { return {bytes.data(), length}; }
  [[nodiscard]] std::string ToString() const;  // decimal
  friend std::strong_ordering operator<=>(const CrlNumber& a, const CrlNumber& b);
  friend bool operator==(const CrlNumber& a, const CrlNumber& b) { return (a <=> b) == 0; }
};

using Sha256 = std::array<std::uint8_t, 32>;

struct CrlSummary {
  std::uint32_t crl_id = 0;  // per issuer, increasing; entries name the CRL they came from by it
  CrlNumber number;
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  UnixSeconds imported_at = 0;
  Sha256 sha256{};
  std::uint64_t entry_count = 0;
};

// The part of an issuer record a lookup needs; decoding it allocates nothing.
struct IssuerState {
  std::uint32_t issuer_no = 0;
  std::uint32_t last_crl_id = 0;  // the highest CRL id ever assigned for this issuer
  std::optional<CrlSummary> current_crl;
};

struct IssuerRecord {
  IssuerId id;
  IssuerState state;
  Bytes certificate_der;
};

// CRLReason codes (RFC 5280 5.3.1); 7 is unused.
enum class Reason : std::uint8_t {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kCaCompromise = 2,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
  kCertificateHold = 6,
  kRemoveFromCrl = 8,
  kPrivilegeWithdrawn = 9,
  kAaCompromise = 10,
};
std::string_view ToString(Reason reason);

struct RevokedEntry {
  UnixSeconds revocation_time = 0;
  std::optional<Reason> reason;  // absent when the CRL entry has no reasonCode
  std::optional<UnixSeconds> invalidity_date;
  std::uint32_t crl_id = 0;
};

// Numeric order of two minimal serial magnitudes.
bool SerialLess(ByteView a, ByteView b);

// One revoked serial as the importer hands it over; `serial` is the minimal unsigned magnitude.
struct NewEntry {
  Bytes serial;
  RevokedEntry entry;
};

struct StoreOptions {
  std::size_t map_size_bytes = std::size_t{1} << 30;
  bool read_only = false;
};

class Store {
 public:
  // Opens (creating if needed and not read-only) the store in `directory`. A store written by another
  // format version is refused with both versions in the message.
  static Result<Store> Open(const std::filesystem::path& directory, const StoreOptions& options);

  [[nodiscard]] Result<ReadTxn> BeginRead() const { return ReadTxn::Begin(env_.get()); }
  [[nodiscard]] Result<WriteTxn> BeginWrite() { return WriteTxn::Begin(env_.get()); }

  // Reads (any transaction).
  [[nodiscard]] Result<std::optional<IssuerState>> GetIssuerState(MDB_txn* txn, const IssuerId& id) const;
  [[nodiscard]] Result<std::optional<IssuerRecord>> GetIssuer(MDB_txn* txn, const IssuerId& id) const;
  [[nodiscard]] Result<std::vector<IssuerRecord>> ListIssuers(MDB_txn* txn) const;
  [[nodiscard]] Result<std::optional<RevokedEntry>> GetRevoked(MDB_txn* txn, std::uint32_t issuer_no,
                                                               ByteView serial) const;
  [[nodiscard]] Result<std::optional<CrlSummary>> GetCrl(MDB_txn* txn, std::uint32_t issuer_no,
                                                         std::uint32_t crl_id) const;
  [[nodiscard]] Result<std::uint64_t> CountRevoked(MDB_txn* txn, std::uint32_t issuer_no) const;

  // Writes (inside the caller's write transaction; nothing is visible before it commits).
  // Registers the issuer if the store does not know it yet, and returns its record either way.
  [[nodiscard]] Result<IssuerRecord> EnsureIssuer(WriteTxn& txn, const IssuerIdentity& identity);
  // Makes `crl` the issuer's current CRL with exactly `entries` revoked: the previous CRL's entries are
  // removed, the new ones written, the CRL recorded in the history. Assigns and returns the CRL id.
  // `entries` must be sorted by SerialLess without duplicates (the importer reports duplicates itself).
  [[nodiscard]] Result<std::uint32_t> ReplaceCrl(WriteTxn& txn, const IssuerRecord& issuer, CrlSummary crl,
                                                 std::span<NewEntry> entries);

 private:
  Store(Environment env, MDB_dbi meta, MDB_dbi issuers, MDB_dbi crls, MDB_dbi entries)
      : env_(std::move(env)), meta_(meta), issuers_(issuers), crls_(crls), entries_(entries) {}

  Result<void> PutIssuer(MDB_txn* txn, const IssuerId& id, const IssuerState& state,
                         ByteView certificate_der);

  Environment env_;
  MDB_dbi meta_;
  MDB_dbi issuers_;
  MDB_dbi crls_;
  MDB_dbi entries_;
};

}  // namespace ocsp::store
