// The status store: revocation state per (issuer, serial) in a memory-mapped LMDB environment.
//
// What it holds (layout and version in docs/store-format.md):
//   - per issuer (keyed by IssuerId, the hash of its key): a short issuer number, the CA certificate, whether
//     its key is declared compromised, and a coverage summary over its partitions (are all expected
//     partitions held, the oldest thisUpdate, the earliest nextUpdate) that a lookup reads in one get;
//   - per partition of an issuer (a full CRL is the single partition "all"; an issuing distribution point
//     names one; an ARL is a partition of CA certificates): its current CRL and delta CRL;
//   - per (issuer, serial) that a CRL revokes: revocation time, reason, invalidity date, and the partition
//     whose CRL lists it;
//   - per (issuer, CRL id): the summary of every CRL imported, for audit;
//   - per (issuer, serial, CertID hash algorithm): a signed response kept to be served without signing
//     (presigned for revoked serials, kept after an on-demand signature for good ones), and an index of the
//     good ones by when they were last requested, for eviction. Any change to a serial's entry drops its
//     stored responses in the same transaction, so a response never outlives the status it states.
// The store records facts; deciding what to answer from them is the responder's job, and deciding whether a
// CRL may be imported is the importer's.
//
// Errors: an absent issuer, partition or serial is an ordinary value (nullopt), never an error. LMDB
// failures and records this version cannot decode are errors.
// Thread safety: a Store may be shared by threads and processes. Each thread uses its own transactions;
// there is one writer at a time (LMDB serialises write transactions, across processes too). GetIssuerState
// and GetRevoked allocate nothing.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/issuer.h"
#include "store/lmdb.h"

namespace ocsp::store {

inline constexpr std::uint32_t kFormatVersion = 6;
inline constexpr std::size_t kMaxSerialBytes = 20;  // RFC 5280 4.1.2.2
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
  std::uint32_t crl_id = 0;  // per issuer, increasing; the key of its history record
  CrlNumber number;
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  UnixSeconds imported_at = 0;
  Sha256 sha256{};
  std::uint64_t entry_count = 0;  // entries of the partition after this CRL was applied
};

enum class PartitionScope : std::uint8_t {
  kAll = 0,        // no issuing distribution point: the complete CRL of the issuer
  kUserCerts = 1,  // a distribution point (a municipality in JPKI)
  kCaCerts = 2,    // onlyContainsCACerts: an ARL; it answers only for CA certificates
};

struct PartitionRecord {
  std::uint32_t partition_no = 0;
  PartitionScope scope = PartitionScope::kAll;
  bool expected = false;         // pinned: its absence makes the issuer's coverage incomplete
  Bytes distribution_point;      // DER of the DistributionPointName; empty for kAll
  std::string name;              // printable
  std::optional<CrlSummary> base;   // the current full CRL of this partition
  std::optional<CrlSummary> delta;  // the delta CRL applied on top of it, if any

  // The CRL whose times describe this partition now: the delta when one is applied.
  [[nodiscard]] const std::optional<CrlSummary>& effective() const { return delta ? delta : base; }
};

// What a lookup needs to know about an issuer. Fixed size: decoding it allocates nothing.
struct Coverage {
  std::uint32_t partitions_held = 0;      // partitions answering for end-entity certificates, with a CRL
  std::uint32_t partitions_expected = 0;  // pinned ones (0: not pinned: partitions alone are then incomplete)
  bool complete = false;                  // a full CRL is held, or the pinned partitions all are
  UnixSeconds oldest_this_update = 0;
  std::optional<UnixSeconds> earliest_next_update;
  std::uint64_t entries = 0;
};

struct IssuerState {
  std::uint32_t issuer_no = 0;
  std::uint32_t last_crl_id = 0;
  std::uint32_t last_partition_no = 0;
  bool pinned = false;
  std::optional<UnixSeconds> compromised_since;  // the CA's key is compromised from this time on
  Coverage coverage;
};

struct IssuerRecord {
  IssuerId id;
  IssuerState state;
  Bytes certificate_der;
};

struct CompromiseRecord {
  UnixSeconds since = 0;
  UnixSeconds declared_at = 0;
  std::string declared_by;  // an operator's name, or "ARL <number>"
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
  std::optional<Reason> reason;  // absent when the CRL entry has none
  std::optional<UnixSeconds> invalidity_date;
  std::uint32_t partition_no = 0;  // whose CRL lists it (its current CRL: PartitionRecord::effective())
  bool hold_kept = false;          // a certificateHold a newer CRL dropped; kept revoked by policy

  friend bool operator==(const RevokedEntry&, const RevokedEntry&) = default;
};

// Numeric order of two minimal serial magnitudes (also the order of the store's keys).
bool SerialLess(ByteView a, ByteView b);

// A keyed 64-bit fingerprint (SipHash-2-4) of a CRL entry's DER bytes; the entry record keeps its low 32 bits
// (formats 5 and 6; format 4 kept all 64, and those records still match). Unchanged CRL entries are byte-identical
// from one day to the next, so a re-import that finds the same serial with the same fingerprint (and the same
// partition, and no kept hold) knows the entry is unchanged without decoding it or touching its record. The
// key is random per store (meta `entry_fingerprint_key`), so nobody can build two entries that collide; a
// changed entry is missed with probability 2^-32 (about 100k changes a day: once in ~120 years of daily
// imports), and a miss could only keep an already revoked serial's old reason or dates, never make a revoked
// serial good (the serial itself is compared exactly). 32 bits instead of 64 save 4 bytes per entry: about
// 40 MiB of the 10M-entry import's dirty pages, which are its peak memory. 0 means "none" (format 3).
class EntryFingerprinter {
 public:
  EntryFingerprinter() = default;
  explicit EntryFingerprinter(const std::array<std::uint8_t, 16>& key);
  [[nodiscard]] std::uint64_t operator()(ByteView der) const;

 private:
  std::uint64_t k0_ = 0;
  std::uint64_t k1_ = 0;
};

// The map size only reserves address space; the file grows as data is written. 64 GiB holds JPKI's ~35
// million live entries several times over, with room for two days of a large import.
inline constexpr std::size_t kDefaultMapSizeBytes = std::size_t{64} << 30;

// The environment's size and reader table, for monitoring (mdb_env_info, mdb_env_stat, mdb_reader_list).
struct MapInfo {
  std::uint64_t map_size_bytes = 0;   // the configured map size: the most the store can grow to
  std::uint64_t used_bytes = 0;       // pages up to the last one used, times the page size
  std::uint32_t max_readers = 0;      // reader table slots
  std::uint32_t readers_used = 0;     // slots held now (a reset read transaction keeps its slot)
};

struct StoreOptions {
  std::size_t map_size_bytes = kDefaultMapSizeBytes;
  bool read_only = false;
};

// A signed response kept in the store. Only good and revoked answers are kept: an unknown one states nothing
// worth keeping.
enum class StoredStatus : std::uint8_t { kGood = 0, kRevoked = 1 };

struct StoredResponseInfo {
  StoredStatus status = StoredStatus::kGood;
  // For kRevoked: what the response states, so a reader can check it against the entry before serving.
  UnixSeconds revocation_time = 0;
  std::optional<Reason> reason;
  std::uint64_t signer_id = 0;  // which responder certificate signed it (rollover re-signs the others)
  UnixSeconds this_update = 0;
  UnixSeconds next_update = 0;
  UnixSeconds produced_at = 0;
  std::uint32_t requested_hour = 0;  // hours since the epoch when last served (good ones: eviction order)
};

struct StoredResponse {
  StoredResponseInfo info;
  ByteView der;  // into the map: valid until the transaction ends or is reset
};

struct StoredResponseCounts {
  std::uint64_t good = 0;
  std::uint64_t revoked = 0;
};

// Good responses are a cache of answers any request could have had signed. Once the store's file reaches this
// share of the map, their number stops growing (each new one evicts the least recently requested), so that a
// flood of never-seen serials cannot take the room an import's copy-on-write needs. Revoked responses are not
// held back: sizing the map for them is the operator's (docs/configuration.md).
inline constexpr double kGoodResponsesMapShare = 0.75;

class Store;

// Rewrites an issuer's entries by walking its key range once, in serial order, alongside the new entries:
// only what differs is written. Used by the importer inside its write transaction.
class EntryMerge {
 public:
  enum class Mode {
    // The partitions in `replaced` get exactly the entries added; their old entries that are not added again
    // are removed (a certificateHold is kept instead and counted). Other partitions' entries stay.
    kReplacePartitions,
    // Entries added are inserted or updated; an entry with reason removeFromCRL removes the serial
    // (a certificateHold is kept instead). Nothing else is removed.
    kApplyDelta,
  };
  struct Counts {
    std::uint64_t added = 0, removed = 0, changed = 0, unchanged = 0, holds_kept = 0;
    std::uint64_t responses_dropped = 0;  // stored responses of serials whose entry changed
  };

  static Result<EntryMerge> Begin(Store& store, WriteTxn& txn, std::uint32_t issuer_no, Mode mode,
                                  std::vector<bool> replaced_partitions);
  EntryMerge(EntryMerge&&) noexcept = default;
  EntryMerge& operator=(EntryMerge&&) noexcept = delete;
  EntryMerge(const EntryMerge&) = delete;

  // `serial` must increase from call to call (SerialLess); a repeated serial is refused. `fingerprint` is the
  // EntryFingerprinter value of the CRL entry's DER (0: none); it is stored with the entry.
  [[nodiscard]] Result<void> Add(ByteView serial, const RevokedEntry& entry, std::uint64_t fingerprint = 0);
  // The cheap path of a re-import: true when the store already holds `serial` for `partition_no` with this
  // non-zero fingerprint and no kept hold, i.e. the entry is unchanged; it is counted and nothing is written
  // or decoded. False otherwise: the caller then decodes the entry and calls Add for the same serial.
  // Entries before `serial` that the new CRL no longer lists are handled here as in Add.
  [[nodiscard]] Result<bool> SkipIfUnchanged(ByteView serial, std::uint64_t fingerprint, std::uint32_t partition_no);
  // Handles what is left of the old range and closes the cursor: the transaction may commit after it. A merge
  // that is not finished must be destroyed before its transaction ends (see Cursor).
  [[nodiscard]] Result<Counts> Finish();
  // The issuer had no entries when the merge began (its first import): SkipIfUnchanged cannot succeed.
  [[nodiscard]] bool holds_nothing() const { return holds_nothing_; }

 private:
  EntryMerge(Store& store, MDB_txn* txn, Cursor cursor, std::uint32_t issuer_no, Mode mode, std::vector<bool> replaced)
      : store_(&store),
        txn_(txn),
        cursor_(std::move(cursor)),
        issuer_no_(issuer_no),
        mode_(mode),
        replaced_(std::move(replaced)) {}
  // The serial's entry changes: its stored responses state something no longer true.
  Result<void> DropStoredResponses(ByteView serial);
  Result<void> AdvanceOld(int op);
  Result<void> DecodeOld();  // fills old_entry_ from old_record_
  Result<void> DropOld();  // the old entry at the cursor is not in the new CRL
  Result<void> KeepHold();
  [[nodiscard]] bool OldInRange() const { return old_valid_; }

  Store* store_;
  MDB_txn* txn_;
  Cursor cursor_;
  std::optional<Cursor> responses_;  // open only when the issuer has stored responses
  std::uint32_t issuer_no_;
  Mode mode_;
  std::vector<bool> replaced_;
  bool old_valid_ = false;
  ByteView old_serial_;
  ByteView old_record_;  // into the map or a dirty page: valid until this transaction next writes
  bool old_decoded_ = false;
  RevokedEntry old_entry_;  // valid once DecodeOld succeeded
  std::uint32_t old_partition_no_ = 0;
  bool old_hold_kept_ = false;
  std::uint32_t old_fingerprint_ = 0;  // as stored: 32 bits (see EntryFingerprinter)
  bool appending_ = false;
  bool holds_nothing_ = false;  // nothing in the database sorts after this issuer: MDB_APPEND is safe
  Bytes last_serial_;
  Counts counts_;
  // Room left at the end of appended leaf pages (LeaveRoom): the spacer written last, deleted once the next
  // entry is appended, and those Finish deletes (key size, key).
  Result<void> LeaveRoom(ByteView key, std::size_t value_size);
  std::size_t page_size_ = 4096;
  std::size_t modelled_fill_ = 0;
  Bytes pending_spacer_;
  Bytes spacers_;
  Bytes spacer_zeros_;
  // The read-only map the walk reads through, released now and then (see AdvanceOld).
  void FindMap(const void* inside);
  std::uint64_t walked_ = 0;
  bool map_searched_ = false;
  void* map_begin_ = nullptr;
  std::size_t map_size_ = 0;
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
  [[nodiscard]] Result<std::optional<PartitionRecord>> FindPartition(MDB_txn* txn, std::uint32_t issuer_no,
                                                                     PartitionScope scope,
                                                                     ByteView distribution_point) const;
  [[nodiscard]] Result<std::optional<PartitionRecord>> GetPartition(MDB_txn* txn, std::uint32_t issuer_no,
                                                                    std::uint32_t partition_no) const;
  [[nodiscard]] Result<std::vector<PartitionRecord>> ListPartitions(MDB_txn* txn, std::uint32_t issuer_no) const;
  [[nodiscard]] Result<std::optional<CrlSummary>> GetCrl(MDB_txn* txn, std::uint32_t issuer_no,
                                                         std::uint32_t crl_id) const;
  [[nodiscard]] Result<std::optional<CompromiseRecord>> GetCompromise(MDB_txn* txn, std::uint32_t issuer_no) const;
  [[nodiscard]] Result<std::uint64_t> CountRevoked(MDB_txn* txn, std::uint32_t issuer_no) const;
  // No transaction: reads the environment's header and reader table (a few microseconds, no lock held after).
  [[nodiscard]] Result<MapInfo> GetMapInfo() const;
  // The share of the map the file has reached (its last page used; free pages inside count as used): cheap,
  // for the writers of stored responses (kGoodResponsesMapShare).
  [[nodiscard]] Result<double> MapFill() const;

  // Stored responses. GetResponse allocates nothing.
  [[nodiscard]] Result<std::optional<StoredResponse>> GetResponse(MDB_txn* txn, std::uint32_t issuer_no,
                                                                  HashAlgorithm algorithm, ByteView serial) const;
  [[nodiscard]] Result<StoredResponseCounts> CountResponses(MDB_txn* txn) const;
  // Every revoked entry of the issuer in serial order, each with its stored responses (indexed by
  // HashAlgorithm - 1; nullopt where none is stored).
  using RevokedVisitor = std::function<void(ByteView serial, const RevokedEntry& entry,
                                            const std::array<std::optional<StoredResponseInfo>, 4>& stored)>;
  [[nodiscard]] Result<void> WalkRevoked(MDB_txn* txn, std::uint32_t issuer_no, const RevokedVisitor& visit) const;
  // Every stored response of the issuer, in key order.
  using ResponseVisitor =
      std::function<void(ByteView serial, HashAlgorithm algorithm, const StoredResponseInfo& info)>;
  [[nodiscard]] Result<void> WalkResponses(MDB_txn* txn, std::uint32_t issuer_no,
                                           const ResponseVisitor& visit) const;
  // The fingerprint stored with a revoked entry (its stored 32 bits; 0 when absent or written by format 3); for
  // tests and audits.
  [[nodiscard]] Result<std::uint64_t> GetEntryFingerprint(MDB_txn* txn, std::uint32_t issuer_no, ByteView serial) const;
  // Fingerprints CRL entries with this store's key (see EntryFingerprinter).
  [[nodiscard]] const EntryFingerprinter& fingerprinter() const { return fingerprinter_; }

  // Writes a response (replacing any stored for the same serial and algorithm).
  [[nodiscard]] Result<void> PutResponse(WriteTxn& txn, std::uint32_t issuer_no, HashAlgorithm algorithm,
                                         ByteView serial, const StoredResponseInfo& info, ByteView der);
  // Records that a stored good response was served in `hour`; false when it is no longer stored.
  [[nodiscard]] Result<bool> TouchResponse(WriteTxn& txn, std::uint32_t issuer_no, HashAlgorithm algorithm,
                                           ByteView serial, std::uint32_t hour);
  // Drops the stored responses of one serial (every algorithm), or of a whole issuer.
  [[nodiscard]] Result<std::uint64_t> DropResponses(WriteTxn& txn, std::uint32_t issuer_no, ByteView serial);
  [[nodiscard]] Result<std::uint64_t> DropIssuerResponses(WriteTxn& txn, std::uint32_t issuer_no);
  // Evicts the least recently requested good responses until at most `keep` remain; returns how many went.
  [[nodiscard]] Result<std::uint64_t> EvictGoodResponses(WriteTxn& txn, std::uint64_t keep);

  // Writes (inside the caller's write transaction; nothing is visible before it commits).
  // Registers the issuer if the store does not know it yet, and returns its record either way.
  [[nodiscard]] Result<IssuerRecord> EnsureIssuer(WriteTxn& txn, const IssuerIdentity& identity);
  // Returns the partition with this distribution point, creating it (with the next number) if new.
  [[nodiscard]] Result<PartitionRecord> EnsurePartition(WriteTxn& txn, IssuerRecord& issuer, PartitionScope scope,
                                                        ByteView distribution_point, const std::string& name);
  [[nodiscard]] Result<void> PutPartition(WriteTxn& txn, std::uint32_t issuer_no, const PartitionRecord& partition);
  // Assigns the CRL an id and records it in the history.
  [[nodiscard]] Result<std::uint32_t> RecordCrl(WriteTxn& txn, IssuerRecord& issuer, std::uint32_t partition_no,
                                                bool delta, CrlSummary crl);
  // Marks every partition currently held as expected (or clears the pin).
  [[nodiscard]] Result<std::uint32_t> PinPartitions(WriteTxn& txn, IssuerRecord& issuer, bool pin);
  [[nodiscard]] Result<void> SetCompromise(WriteTxn& txn, IssuerRecord& issuer, const CompromiseRecord& record);
  // Recomputes the issuer's coverage from its partitions and writes the issuer record.
  [[nodiscard]] Result<void> UpdateIssuer(WriteTxn& txn, IssuerRecord& issuer);

 private:
  friend class EntryMerge;
  Store(Environment env, MDB_dbi meta, MDB_dbi issuers, MDB_dbi partitions, MDB_dbi partition_ids, MDB_dbi crls,
        MDB_dbi entries, MDB_dbi compromises, MDB_dbi responses, MDB_dbi response_lru)
      : env_(std::move(env)),
        meta_(meta),
        issuers_(issuers),
        partitions_(partitions),
        partition_ids_(partition_ids),
        crls_(crls),
        entries_(entries),
        compromises_(compromises),
        responses_(responses),
        response_lru_(response_lru) {}

  Result<void> PutIssuer(MDB_txn* txn, const IssuerRecord& issuer);

  Environment env_;
  EntryFingerprinter fingerprinter_;
  MDB_dbi meta_;
  MDB_dbi issuers_;
  MDB_dbi partitions_;
  MDB_dbi partition_ids_;
  MDB_dbi crls_;
  MDB_dbi entries_;
  MDB_dbi compromises_;
  MDB_dbi responses_;
  MDB_dbi response_lru_;
  // Drops the responses at the cursor's position under `prefix` (issuer, serial); adjusts the counters.
  Result<std::uint64_t> DropResponsesAt(MDB_txn* txn, MDB_cursor* cursor, ByteView prefix);
  Result<void> AddToCounts(MDB_txn* txn, std::int64_t good, std::int64_t revoked);
};

}  // namespace ocsp::store
