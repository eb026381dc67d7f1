#include "importer/import.h"

#include <openssl/sha.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/file_descriptor.h"
#include "common/log.h"
#include "common/mapped_file.h"
#include "common/openssl.h"
#include "common/text.h"
#include "importer/page_cache_trail.h"

namespace ocsp::importer {
namespace {

using store::CrlNumber;
using store::PartitionScope;

bool SameName(ByteView crl_issuer, const store::IssuerIdentity& ca) {
  if (crl_issuer.size() == ca.subject_der.size() &&
      std::equal(crl_issuer.begin(), crl_issuer.end(), ca.subject_der.begin())) {
    return true;
  }
  // Different encodings of one name (e.g. PrintableString against UTF8String) still match (RFC 5280 7.1).
  const unsigned char* a = crl_issuer.data();
  const unsigned char* b = ca.subject_der.data();
  UniquePtr<X509_NAME> left(d2i_X509_NAME(nullptr, &a, static_cast<long>(crl_issuer.size())));
  UniquePtr<X509_NAME> right(d2i_X509_NAME(nullptr, &b, static_cast<long>(ca.subject_der.size())));
  ERR_clear_error();
  return left && right && X509_NAME_cmp(left.get(), right.get()) == 0;
}

class Hasher;

// The files' SHA-256 digests of one import call, published as they are computed, for the archive's tar of a
// set, which names each member by its file's digest: computing them again there was a third SHA-256 pass over
// the whole set, about 0.25 s of CPU at 1,900 partitions on 2 cores the import's own threads need.
// Thread safety: any thread may Publish, Wait and Close.
class DigestBoard {
 public:
  explicit DigestBoard(std::size_t files) : digests_(files) {}
  void Publish(std::size_t index, const store::Sha256& digest) {
    {
      std::lock_guard lock(mutex_);
      digests_[index] = digest;
    }
    changed_.notify_all();
  }
  // Blocks until file `index`'s digest is published; nullopt if the board is closed first.
  std::optional<store::Sha256> Wait(std::size_t index) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return digests_[index].has_value() || closed_; });
    return digests_[index];
  }
  // Nobody will wait any more (the archive is dropped): wakes a waiter.
  void Close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::optional<store::Sha256>> digests_;
  bool closed_ = false;
};

// Advice that the file's pages leave the page cache (pages still mapped stay): failure changes nothing.
void DropFromPageCache(const std::filesystem::path& path) {
  FileDescriptor descriptor(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (descriptor) ::posix_fadvise(descriptor.get(), 0, 0, POSIX_FADV_DONTNEED);
}

// One CRL file, mapped, parsed around its entries. Its two digests (the file's SHA-256 for the history, the
// signature's over tbsCertList) are computed by a Hasher on a second thread while the entries are walked, or
// here on first need when there is none.
struct PreparedFile {
  ImportInput input;
  std::optional<MappedFile> mapped;
  Bytes decoded_pem;
  ByteView der;
  std::optional<CrlParser> parser;
  std::optional<SignatureCheck> signature;
  UniquePtr<EVP_MD_CTX> file_hash;
  std::size_t tbs_start = 0;
  std::size_t hashed = 0;  // bytes fed to both digests: a stopped Hasher leaves it for FinishHash to resume
  // `hashed` as the walk on another thread sees it (PageCacheTrail), whether the walk is done with the file,
  // and the archive's count of the call's files it has read (none when not archiving). Of the walk and the
  // hasher, whichever finishes the file last drops it from the page cache (seq_cst: one of them sees the other).
  std::unique_ptr<std::atomic<std::size_t>> hashed_so_far = std::make_unique<std::atomic<std::size_t>>(0);
  std::unique_ptr<std::atomic<bool>> walked_whole = std::make_unique<std::atomic<bool>>(false);
  const std::atomic<std::size_t>* archive_read = nullptr;
  // Written by whoever hashes (the Hasher's thread, or FinishHash), read after FinishHash returned.
  store::Sha256 sha256{};
  bool hash_done = false;
  std::optional<Result<void>> verified;  // the signature's verdict, once hashed whole
  Hasher* hasher = nullptr;  // hashing this file, when set
  std::size_t index = 0;     // in the call's files
  DigestBoard* digests = nullptr;  // told the file's digest, when set

  CrlKind kind = CrlKind::kFull;
  CrlNumber number;
  std::optional<CrlNumber> delta_base;
  PartitionScope scope = PartitionScope::kAll;
  Bytes distribution_point;
  std::string partition_name;

  // Decided inside the transaction.
  store::PartitionRecord partition;
  bool unchanged = false;
  bool needs_sort = false;
  std::uint64_t entries = 0;
  std::optional<std::uint64_t> previous_entries;  // of the complete CRL this one replaces

  [[nodiscard]] std::string label() const { return input.source.empty() ? input.path.string() : input.source; }

  // The walk is done with everything before `offset`: those pages leave the resident set.
  void Advance(std::size_t offset) {
    if (mapped) mapped->Release(std::min(offset, der.size()));
  }

  // Whether the archive has read the file (or does not read it).
  [[nodiscard]] bool Archived() const {
    return archive_read == nullptr || archive_read->load(std::memory_order_acquire) > index;
  }

  // The walk is done with everything before `walked` (`last`: with the whole file): what the hasher and the
  // archive are done with too leaves the page cache (`descriptor`: the file's, -1 for none).
  void LeaveCacheBehind(PageCacheTrail& trail, int descriptor, std::size_t walked, bool last = false) {
    if (!mapped) return;  // a PEM file: its DER is decoded in memory
    if (last) walked_whole->store(true);
    const bool archived = Archived();
    const std::size_t hashed_now = hashed_so_far->load();
    // The kernel keeps a page that is still mapped: the mapping lets the last ones go (the hasher leaves its
    // partial last page mapped) once nobody reads the file any more.
    if (last && archived && hashed_now >= der.size()) Advance(der.size());
    trail.Follow(descriptor, walked, hashed_now, archived, last);
  }

  // Feeds both digests with the whole file, a megabyte at a time while it is in cache, and hands the hashed
  // pages back (on the mapping directly: MappedFile::Release belongs to the walking thread). `stop` is
  // polled between chunks; false when stopped.
  bool HashAll(const std::atomic<bool>* stop) {
    constexpr std::size_t kChunk = std::size_t{1} << 20;
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::size_t released = hashed / page * page;
    for (std::size_t at = hashed; at < der.size();) {
      if (stop != nullptr && stop->load(std::memory_order_relaxed)) return false;
      const std::size_t end = std::min(der.size(), at + kChunk);
      EVP_DigestUpdate(file_hash.get(), der.data() + at, end - at);
      if (signature && end > tbs_start) signature->HashUpTo(end - tbs_start);
      at = end;
      hashed = end;
      const std::size_t release_to = at / page * page;
      if (mapped && release_to > released) {
        ::madvise(const_cast<std::uint8_t*>(der.data()) + released, release_to - released, MADV_DONTNEED);
        released = release_to;
      }
      // After the madvise: the kernel would keep the pages this thread still maps.
      hashed_so_far->store(end);
    }
    // The walk finished the file first: the hasher is its last reader (but for an archive still behind).
    if (mapped && walked_whole->load() && Archived()) {
      ::madvise(const_cast<std::uint8_t*>(der.data()) + released, der.size() - released, MADV_DONTNEED);
      DropFromPageCache(input.path);
    }
    unsigned int length = 0;
    EVP_DigestFinal_ex(file_hash.get(), sha256.data(), &length);
    // The signature is checked here, by whoever hashed: on the Hasher's thread, while the entries are still
    // being parsed, instead of one after another on the writing thread before the commit (1,900 RSA
    // verifications, ~35 ms of the partition set's serial tail). Nothing commits unless it says yes.
    verified.emplace(signature ? signature->Finish() : Result<void>{});
    hash_done = true;
    if (digests != nullptr) digests->Publish(index, sha256);
    return true;
  }

  const store::Sha256& FinishHash();
  // The signature's verdict over the bytes hashed (hashing them first if need be).
  const Result<void>& Verified() {
    FinishHash();
    return *verified;
  }
};

// Hashes the files of one import call in order on its own thread, so the walking thread only parses and
// merges: the two SHA-256 passes over a 378 MB CRL are about 0.4 s of CPU. Files are hashed from the same
// mapping the parser reads, so the signature covers exactly the bytes imported.
class Hasher {
 public:
  Hasher(std::vector<PreparedFile>& files, DigestBoard* digests) : files_(files) {
    for (std::size_t i = 0; i < files.size(); ++i) {
      files[i].index = i;
      files[i].hasher = this;
      files[i].digests = digests;
    }
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "import-hash");
      for (PreparedFile& file : files_) {
        if (!file.HashAll(&stop_)) break;
        std::lock_guard lock(mutex_);
        ++done_;
        done_changed_.notify_all();
      }
    });
  }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  // Stops between chunks and joins; files not hashed whole say so (hash_done false), and are no longer ours.
  ~Hasher() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    for (PreparedFile& file : files_) file.hasher = nullptr;
  }
  void WaitFor(std::size_t index) {
    std::unique_lock lock(mutex_);
    done_changed_.wait(lock, [&] { return done_ > index || stop_; });
  }

 private:
  std::vector<PreparedFile>& files_;
  std::mutex mutex_;
  std::condition_variable done_changed_;
  std::size_t done_ = 0;  // files hashed whole, in order
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const store::Sha256& PreparedFile::FinishHash() {
  if (hasher != nullptr) hasher->WaitFor(index);
  if (!hash_done) HashAll(nullptr);  // no hasher (or a stopped one: then it was not started on this file)
  return sha256;
}

// What a file walk returns when it finds the file is not sorted by serial: the import retries with an index.
constexpr std::string_view kUnsortedMarker = "entries not sorted by serial";
bool IsUnsorted(const Error& error) {
  return error.code == ErrorCode::kUnavailable && error.message.ends_with(kUnsortedMarker);
}

Error FileError(const PreparedFile& file, const Error& error) {
  return Error{error.code, file.label() + ": " + error.message};
}

Result<PreparedFile> Prepare(const ImportInput& input, const store::IssuerIdentity& issuer, const X509* ca,
                             const ImportOptions& options, UnixSeconds now) {
  PreparedFile file;
  file.input = input;
  auto mapped = MappedFile::Open(input.path);
  if (!mapped) return std::unexpected(mapped.error());
  const ByteView raw = mapped->bytes();
  if (!raw.empty() && raw[0] == '-') {
    auto der = PemOrDer(raw, "X509 CRL");
    if (!der) return Fail(ErrorCode::kInvalidArgument, file.label() + ": " + der.error().message);
    file.decoded_pem = std::move(*der);
    file.der = file.decoded_pem;
  } else {
    file.mapped.emplace(std::move(*mapped));
    file.der = file.mapped->bytes();
  }
  auto parser = CrlParser::Open(file.der);
  if (!parser) return std::unexpected(FileError(file, parser.error()));
  file.parser.emplace(std::move(*parser));
  const CrlHeader& header = file.parser->header();
  file.tbs_start = static_cast<std::size_t>(header.tbs.data() - file.der.data());
  file.file_hash.reset(EVP_MD_CTX_new());
  if (!file.file_hash || EVP_DigestInit_ex(file.file_hash.get(), EVP_sha256(), nullptr) != 1) {
    return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());
  }

  if (!SameName(header.issuer, issuer)) {
    return Fail(ErrorCode::kVerificationFailed,
                file.label() + ": the CRL is issued by " + NameText(header.issuer) + ", not by " + issuer.subject_text);
  }
  if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(const_cast<X509*>(ca));
      ski != nullptr && header.authority_key_id) {
    const ByteView ours(ski->data, static_cast<std::size_t>(ski->length));
    if (!std::equal(ours.begin(), ours.end(), header.authority_key_id->begin(), header.authority_key_id->end())) {
      return Fail(ErrorCode::kVerificationFailed,
                  file.label() + ": the CRL's authority key identifier " + ToHex(*header.authority_key_id) +
                      " is not the subject key identifier " + ToHex(ours) + " of " + issuer.subject_text +
                      " (another key generation of the same CA?)");
    }
  }
  auto signature = SignatureCheck::Begin(header, X509_get0_pubkey(ca));
  if (!signature) return std::unexpected(FileError(file, signature.error()));
  file.signature.emplace(std::move(*signature));

  if (!header.crl_number) return Fail(ErrorCode::kRefused, file.label() + ": the CRL has no CRL number (RFC 5280 5.2.3)");
  auto number = CrlNumber::FromMagnitude(*header.crl_number);
  if (!number) return std::unexpected(FileError(file, number.error()));
  file.number = *number;
  if (header.this_update > now + options.max_clock_skew_seconds) {
    return Fail(ErrorCode::kRefused, file.label() + ": thisUpdate " + IsoTime(header.this_update) +
                                         " is in the future (now " + IsoTime(now) + ")");
  }
  if (!header.next_update) {
    return Fail(ErrorCode::kRefused, file.label() + ": the CRL has no nextUpdate: nothing would say when its answers expire");
  }
  if (*header.next_update <= header.this_update) {
    return Fail(ErrorCode::kInvalidArgument, file.label() + ": nextUpdate is not after thisUpdate");
  }
  if (*header.next_update <= now && !options.allow_expired) {
    return Fail(ErrorCode::kRefused, file.label() + ": the CRL expired at " + IsoTime(*header.next_update) +
                                         " (import it anyway with --allow-expired)");
  }
  if (header.distribution_point) {
    file.scope = header.distribution_point->scope;
    file.distribution_point = header.distribution_point->distribution_point;
    file.partition_name = header.distribution_point->name;
  } else {
    file.partition_name = "complete CRL";
  }
  if (header.delta_base) {
    auto base = CrlNumber::FromMagnitude(*header.delta_base);
    if (!base) return std::unexpected(FileError(file, base.error()));
    file.delta_base = *base;
    file.kind = CrlKind::kDelta;
  } else if (file.scope == PartitionScope::kCaCerts) {
    file.kind = CrlKind::kAuthorityRevocationList;
  } else if (header.distribution_point) {
    file.kind = CrlKind::kPartition;
  }
  return file;
}

store::RevokedEntry ToStored(const CrlEntry& entry, std::uint32_t partition_no) {
  return store::RevokedEntry{entry.revocation_time, entry.reason, entry.invalidity_date, partition_no, false};
}

// Numeric order of serials as one integer when the serial has at most 7 octets (JPKI's have 4): its length
// over its first 7 octets. Merges and sorts compare these instead of calling memcmp; longer serials that share
// their first 7 octets tie on the key and are told apart by SerialLess.
std::uint64_t SortKey(ByteView serial) {
  const std::uint64_t key = static_cast<std::uint64_t>(std::min<std::size_t>(serial.size(), 255)) << 56;
  const std::size_t octets = std::min<std::size_t>(serial.size(), 7);
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < octets; ++i) value = (value << 8) | serial[i];
  return key | (value & 0x00ffffffffffffffULL);
}

// Whether the process may hold `wanted` more files open (a walk reads each partition through a descriptor of
// its own, or follows it with PageCacheTrail) and still have 256 to spare: a set of 1,900 files is above the
// usual soft limit of 1,024, and the archive thread must still open every file. When not, the walks read
// through the mappings.
bool DescriptorsToSpare(std::size_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur == RLIM_INFINITY) return true;
  std::error_code error;
  std::size_t open = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end; it.increment(error)) ++open;
  if (error) return false;
  return static_cast<rlim_t>(open + wanted + 256) <= limit.rlim_cur;
}

// How much of a CRL file its walk lets accumulate before the stretch behind every reader leaves the page
// cache (PageCacheTrail): a 1,900-partition set's files of ~235 KB make about four calls each.
constexpr std::size_t kTrailStep = std::size_t{64} << 10;

// The entries of one file in serial order: straight from the file when it is sorted (the usual case), or
// through a sorted index of entry offsets when it is not. Each entry is located and fingerprinted first and
// decoded only on demand (Decode): a re-import decodes only the entries the store does not already hold.
class FileEntries {
 public:
  // `release_step`: how far the walk goes between two hand-backs of walked pages (see Advance).
  // `decode_early`: decode each entry as soon as it is located (nothing can be skipped: a first import).
  // `follow`: the walked pages also leave the page cache behind the file's other readers (a descriptor each).
  FileEntries(PreparedFile& file, const store::EntryFingerprinter& fingerprint, std::size_t release_step,
              bool decode_early, bool follow)
      : file_(&file),
        fingerprint_(&fingerprint),
        reader_(file.parser->Entries()),
        partition_no_(file.partition.partition_no),
        decode_early_(decode_early),
        release_step_(release_step) {
    if (follow && file.mapped) descriptor_ = FileDescriptor(::open(file.input.path.c_str(), O_RDONLY | O_CLOEXEC));
  }

  Result<void> BuildSortedIndex() {
    file_->FinishHash();  // the walk will not be in file order: hash everything first
    EntryReader reader = file_->parser->Entries();
    RawEntry entry;
    for (;;) {
      auto more = reader.NextRaw(entry);
      if (!more) return std::unexpected(FileError(*file_, more.error()));
      if (!*more) break;
      index_.push_back({entry.offset, entry.serial});
    }
    std::sort(index_.begin(), index_.end(),
              [](const IndexEntry& a, const IndexEntry& b) { return store::SerialLess(a.serial, b.serial); });
    sorted_ = true;
    return {};
  }

  // Moves to the next entry; false at the end. A file that turns out unsorted says so with kUnavailable.
  Result<bool> Advance() {
    if (sorted_) {
      if (next_ == index_.size()) return false;
      auto entry = ReadRawEntryAt(file_->der, index_[next_++].offset);
      if (!entry) return std::unexpected(FileError(*file_, entry.error()));
      if (auto located = Located(*entry); !located) return std::unexpected(located.error());
      return true;
    }
    RawEntry raw;
    auto more = reader_.NextRaw(raw);
    if (!more) return std::unexpected(FileError(*file_, more.error()));
    if (!*more) {
      file_->Advance(reader_.offset());
      file_->LeaveCacheBehind(trail_, descriptor_.get(), file_->der.size(), true);
      return false;
    }
    const ByteView previous = serial();  // still the previous entry's
    if (have_previous_ && !store::SerialLess(previous, raw.serial)) {
      if (previous.size() == raw.serial.size() && std::equal(previous.begin(), previous.end(), raw.serial.begin())) {
        return Fail(ErrorCode::kInvalidArgument,
                    file_->label() + ": serial 0x" + ToHex(raw.serial) + " is listed twice (offset " +
                        std::to_string(raw.offset) + ")");
      }
      return Fail(ErrorCode::kUnavailable, std::string(kUnsortedMarker));
    }
    have_previous_ = true;
    if (auto located = Located(raw); !located) return std::unexpected(located.error());
    // Release as we go: with 1,900 files walked side by side, every file's walked pages would otherwise stay
    // resident until its end. Only up to the current entry, which waits in the merge until it is taken.
    if (raw.offset >= next_release_) {
      file_->Advance(raw.offset);
      file_->LeaveCacheBehind(trail_, descriptor_.get(), raw.offset);
      next_release_ = raw.offset + release_step_;
    }
    return true;
  }

  // Decodes the current entry (every field checked, as the parser always does). Its serial views this
  // object's copy.
  Result<const CrlEntry*> Decode() {
    if (!decoded_) {
      auto entry = DecodeEntry(raw_);
      if (!entry) return std::unexpected(FileError(*file_, entry.error()));
      entry_ = *entry;
      entry_.serial = serial();
      decoded_ = true;
    }
    return &entry_;
  }

  // Numeric order of serials as one integer when the serial has at most 7 octets (JPKI's have 4): the merge
  // compares these instead of calling memcmp. Longer serials tie on the key and fall back.
  [[nodiscard]] std::uint64_t sort_key() const { return sort_key_; }
  [[nodiscard]] ByteView serial() const { return {serial_.data(), serial_size_}; }
  [[nodiscard]] std::uint64_t fingerprint() const { return fingerprint_value_; }
  [[nodiscard]] PreparedFile& file() const { return *file_; }
  [[nodiscard]] std::uint32_t partition_no() const { return partition_no_; }
  void Count() { ++counted_; }  // one more entry merged; added to the file's count at the end
  [[nodiscard]] std::uint64_t counted() const { return counted_; }
  [[nodiscard]] std::size_t consumed() const {
    return sorted_ ? file_->parser->header().entries.size() * next_ / std::max<std::size_t>(1, index_.size())
                   : reader_.offset() - file_->parser->header().entries_offset;
  }

 private:
  // Everything the merge needs of an entry is taken while its bytes are in cache: with 1,900 sources, an
  // entry waits in the tree while the other files move on, and reading it again from the file was a cache
  // miss per entry (memcmp in SerialLess, then the decoder). When the store holds nothing of this issuer
  // (a first import) nothing can be skipped, so the entry is decoded here too.
  Result<void> Located(const RawEntry& raw) {
    raw_ = raw;
    std::copy(raw.serial.begin(), raw.serial.end(), serial_.begin());
    serial_size_ = raw.serial.size();
    fingerprint_value_ = (*fingerprint_)(raw.encoding);
    sort_key_ = SortKey(raw.serial);
    decoded_ = false;
    if (decode_early_) {
      if (auto decoded = Decode(); !decoded) return std::unexpected(decoded.error());
    }
    return {};
  }

  struct IndexEntry {
    std::size_t offset;
    ByteView serial;
  };
  // What the merge reads for every entry first, together: with 1,900 sources each access is a cache miss.
  PreparedFile* file_;
  const store::EntryFingerprinter* fingerprint_;
  EntryReader reader_;
  RawEntry raw_;
  std::uint64_t fingerprint_value_ = 0;
  std::uint64_t sort_key_ = 0;
  std::uint32_t partition_no_;
  bool have_previous_ = false;
  bool sorted_ = false;
  bool decoded_ = false;
  bool decode_early_ = false;
  std::array<std::uint8_t, kMaxSerialOctets> serial_{};
  std::size_t serial_size_ = 0;
  std::uint64_t counted_ = 0;
  std::size_t release_step_;
  std::size_t next_release_ = 0;
  std::size_t next_ = 0;
  std::vector<IndexEntry> index_;
  CrlEntry entry_;  // only for entries that are decoded
  FileDescriptor descriptor_;  // for trail_, when following
  PageCacheTrail trail_{kTrailStep};
};

// No sort key is this large (a key is the serial's length, at most 20, over its first 7 octets).
constexpr std::uint64_t kExhausted = ~std::uint64_t{0};

// A tournament (loser) tree for the k-way merge of partition files: node i > 0 holds the loser of the match
// played there, node 0 the overall winner. Keys are the sources' sort keys (kExhausted once a source is
// done); equal keys, which only serials of more than 7 octets produce, are settled by `tie_less`. Each node
// keeps its loser's key next to its index, so a replay reads one array, and the swap is a select the compiler
// makes branch-free: the matches of a merge are coin flips a branch predictor cannot learn.
template <typename TieLess>
class LoserTree {
 public:
  LoserTree(const std::vector<std::uint64_t>& keys, TieLess tie_less)
      : tie_less_(std::move(tie_less)), size_(keys.size()), tree_(std::max<std::size_t>(size_, 1)) {
    if (size_ == 0) return;
    // Play every match bottom-up: leaves are positions size_..2*size_-1.
    std::vector<Node> winners(2 * size_);
    for (std::size_t i = 0; i < size_; ++i) winners[size_ + i] = Node{keys[i], i};
    for (std::size_t node = size_ - 1; node >= 1; --node) {
      const Node a = winners[2 * node];
      const Node b = winners[2 * node + 1];
      const bool b_wins = Less(b, a);
      winners[node] = b_wins ? b : a;
      tree_[node] = b_wins ? a : b;
    }
    tree_[0] = size_ == 1 ? winners[size_] : winners[1];
  }

  [[nodiscard]] bool empty() const { return size_ == 0 || tree_[0].key == kExhausted; }
  [[nodiscard]] std::size_t winner() const { return tree_[0].index; }

  // The winner's source moved on to `key`: replay its path to the root.
  void Replace(std::uint64_t key) {
    Node winner{key, tree_[0].index};
    for (std::size_t node = (winner.index + size_) / 2; node >= 1; node /= 2) {
      const Node other = tree_[node];
      const bool swap = Less(other, winner);
      tree_[node] = swap ? winner : other;
      winner = swap ? other : winner;
    }
    tree_[0] = winner;
  }

 private:
  struct Node {
    std::uint64_t key = kExhausted;
    std::size_t index = 0;
  };
  bool Less(const Node& a, const Node& b) const {
    if (a.key == b.key) [[unlikely]] {
      return a.key != kExhausted && tie_less_(a.index, b.index);
    }
    return a.key < b.key;
  }

  TieLess tie_less_;
  std::size_t size_;
  std::vector<Node> tree_;
};

// Walked CRL pages may stay resident up to this much in all (the files are mapped: RSS counts them), shared
// by the files walked side by side. One 378 MB file: 8 MiB steps, 47 madvise calls instead of 23,000 at the
// old fixed 16 KiB (0.8 s of system time at 10M entries); 1,900 partitions: 16 KiB steps, as before.
constexpr std::size_t kWalkedPagesBudget = std::size_t{32} << 20;
std::size_t ReleaseStep(std::size_t files) {
  return std::clamp<std::size_t>(kWalkedPagesBudget / std::max<std::size_t>(files, 1), 16384, std::size_t{8} << 20);
}

// Merges the entries of several files (partitions imported together) in serial order into the store.
Result<store::EntryMerge::Counts> MergeFiles(store::Store& store, store::WriteTxn& txn, std::uint32_t issuer_no,
                                             store::EntryMerge::Mode mode, std::vector<bool> replaced,
                                             std::vector<PreparedFile*> files, const ProgressSink& progress,
                                             std::uint64_t& done_bytes, std::uint64_t total_bytes) {
  auto merge = store::EntryMerge::Begin(store, txn, issuer_no, mode, std::move(replaced));
  if (!merge) return std::unexpected(merge.error());
  std::vector<FileEntries> sources;
  sources.reserve(files.size());
  const bool follow = DescriptorsToSpare(files.size());
  for (PreparedFile* file : files) {
    sources.emplace_back(*file, store.fingerprinter(), ReleaseStep(files.size()), merge->holds_nothing(), follow);
    if (file->needs_sort) {
      if (auto built = sources.back().BuildSortedIndex(); !built) return std::unexpected(built.error());
    }
  }
  // A loser tree over the sources' current entries: each step replays one leaf-to-root path (log2 k
  // comparisons of cached 64-bit keys), where the binary heap it replaces sifted down and up again and was
  // about a sixth of the 1,900-partition import's samples.
  std::vector<std::uint64_t> keys(sources.size(), kExhausted);
  for (std::size_t i = 0; i < sources.size(); ++i) {
    auto more = sources[i].Advance();
    if (!more) return std::unexpected(more.error());
    if (*more) keys[i] = sources[i].sort_key();
  }
  LoserTree tree(keys, [&](std::size_t a, std::size_t b) {
    return store::SerialLess(sources[a].serial(), sources[b].serial());
  });
  std::uint64_t merged = 0;
  const std::uint64_t start_bytes = done_bytes;
  while (!tree.empty()) {
    const std::size_t index = tree.winner();
    FileEntries& source = sources[index];
    const std::uint32_t partition_no = source.partition_no();
    // Byte-identical to what the store holds (the common case of a daily re-import): nothing to decode or write.
    auto skipped = merge->SkipIfUnchanged(source.serial(), source.fingerprint(), partition_no);
    if (!skipped) return std::unexpected(FileError(source.file(), skipped.error()));
    if (!*skipped) {
      auto decoded = source.Decode();
      if (!decoded) return std::unexpected(decoded.error());
      const CrlEntry& entry = **decoded;
      if (mode == store::EntryMerge::Mode::kReplacePartitions && entry.reason == store::Reason::kRemoveFromCrl) {
        return std::unexpected(FileError(source.file(), Error{ErrorCode::kRefused,
                                                              "serial 0x" + ToHex(entry.serial) +
                                                                  ": removeFromCRL belongs only in a delta CRL"}));
      }
      if (auto added = merge->Add(entry.serial, ToStored(entry, partition_no), source.fingerprint()); !added) {
        return std::unexpected(FileError(source.file(), added.error()));
      }
    }
    source.Count();
    auto more = source.Advance();
    if (!more) return std::unexpected(more.error());
    tree.Replace(*more ? source.sort_key() : kExhausted);
    if (progress && (++merged & 0x3ffff) == 0) {
      std::uint64_t consumed = 0;
      for (const FileEntries& s : sources) consumed += s.consumed();
      done_bytes = start_bytes + consumed;
      progress(done_bytes, total_bytes);
    }
  }
  std::uint64_t consumed = 0;
  for (const FileEntries& s : sources) {
    consumed += s.file().parser->header().entries.size();
    s.file().entries += s.counted();
  }
  done_bytes = start_bytes + consumed;
  if (progress) progress(done_bytes, total_bytes);
  return merge->Finish();
}

// --- Partition sets: parsed on worker threads, range of serials by range -----------------------------------
//
// MergeFiles walks a 1,900-file set on the writing thread, and every entry it takes is a cache and TLB miss
// (the merge comes back to a file after ~1,900 others), on top of the same parse and writes as one file: the
// set took 1.6-1.7x the time of the same entries as one file. Here worker threads (kParseWorkers, each over
// its share of the files) walk the files instead, one range of serials at a time: each file's next stretch of
// entries below the range's upper bound, read in file order, located, fingerprinted, decoded and checked as
// MergeFiles does, into fixed-size records; each worker sorts its share of the range and hands it to the
// writing thread, which merges the workers' shares and only writes. Each worker has two ranges in flight, so
// memory stays at a few MiB whatever the set's size.
//
// The ranges' bounds are every `step`-th serial of the set's largest file (the "pilot"), where `step` is its
// share of a range: that splits a set whose files spread over the same serials (JPKI's municipalities: one
// counter for the whole country) into ranges of about the same size. A set split by serial instead (file 1
// holds the lowest serials, file 2 the next...) would put whole files into one range: a range that grows past
// 4x its size stops the walk, and the import starts over on the writing thread alone (MergeFiles).

// One entry, everything the writing thread needs of it: one cache line (the writing thread reads them in
// order, so the hardware prefetches them; read through an index, a record split over two lines cost the
// writing thread a miss in SerialLess for 8% of its samples).
struct alignas(64) ParsedEntry {
  std::uint64_t key = 0;  // SortKey of the serial
  std::uint64_t fingerprint = 0;
  UnixSeconds revocation_time = 0;
  UnixSeconds invalidity_date = 0;  // when has_invalidity
  std::uint32_t source = 0;         // index of its file in the set
  std::uint8_t serial_size = 0;
  std::uint8_t reason = 0;  // store::Reason, when has_reason
  bool has_reason = false;
  bool has_invalidity = false;
  std::array<std::uint8_t, kMaxSerialOctets> serial{};

  [[nodiscard]] ByteView serial_view() const { return {serial.data(), serial_size}; }
};
static_assert(sizeof(ParsedEntry) == 64);

// Whether serial (a, key_a) sorts before (b, key_b), by SortKey first: memcmp only for serials of more than
// 7 octets that share their first 7.
bool KeyedSerialLess(std::uint64_t key_a, ByteView a, std::uint64_t key_b, ByteView b) {
  if (key_a != key_b) return key_a < key_b;
  return store::SerialLess(a, b);
}

// What the worker says when it gives up on a set (see above); the import then retries on one thread.
constexpr std::string_view kUnevenMarker = "a range of the partition set grew too large";
bool IsUneven(const Error& error) {
  return error.code == ErrorCode::kUnavailable && error.message.ends_with(kUnevenMarker);
}

// Sorts `order` by key (an LSD radix sort on the bytes where the keys differ: a range's keys share their top
// bytes, so 3 passes of 8 bits usually do), then puts equal keys (serials longer than 7 octets that share
// their first 7, or a serial listed twice) in SerialLess order. Stable: a serial listed twice stays in the
// order its files came.
struct SortItem {
  std::uint64_t key;
  std::uint32_t index;
};
void SortRange(std::vector<SortItem>& order, std::vector<SortItem>& scratch, const std::vector<ParsedEntry>& entries) {
  if (order.size() < 2) return;
  std::uint64_t differs = 0;
  for (const SortItem& item : order) differs |= item.key ^ order.front().key;
  scratch.resize(order.size());
  for (unsigned shift = 0; shift < 64; shift += 8) {
    if (((differs >> shift) & 0xff) == 0) continue;
    std::array<std::size_t, 257> count{};
    for (const SortItem& item : order) ++count[((item.key >> shift) & 0xff) + 1];
    for (std::size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
    for (const SortItem& item : order) scratch[count[(item.key >> shift) & 0xff]++] = item;
    order.swap(scratch);
  }
  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin + 1;
    while (end < order.size() && order[end].key == order[begin].key) ++end;
    if (end - begin > 1) {
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(begin), order.begin() + static_cast<std::ptrdiff_t>(end),
                       [&](const SortItem& a, const SortItem& b) {
                         return store::SerialLess(entries[a.index].serial_view(), entries[b.index].serial_view());
                       });
    }
    begin = end;
  }
}

// One file of the set, walked by the worker from range to range.
class SourceWalk {
 public:
  // `read_file`: read the file's entries with pread into a small buffer instead of through its mapping (see
  // the member `buffer_`); a file that cannot be opened again, or a PEM file (decoded in memory), is read
  // from memory.
  SourceWalk(PreparedFile& file, std::uint32_t source, std::size_t release_step, bool read_file)
      : file_(&file), reader_(file.parser->Entries()), source_(source), release_step_(release_step) {
    if (read_file && file.mapped) {
      descriptor_ = FileDescriptor(::open(file.input.path.c_str(), O_RDONLY | O_CLOEXEC));
      window_offset_ = file.parser->header().entries_offset;
      entries_end_ = window_offset_ + file.parser->header().entries.size();
    }
  }

  // A serial that bounds a range, with its SortKey.
  struct Bound {
    std::uint64_t key = 0;
    ByteView serial;
  };

  // Takes entries whose serial is below `bound` (all of them when there is none), at most `limit`, into
  // `out`. Leaves the first entry it did not take located (pending), so its serial can bound a range.
  // `order` gets each entry's key and place in `out`, while the entry is in cache (read back before the sort, the
  // keys were a cache miss each: 1% of the import's samples).
  Result<void> Walk(const std::optional<Bound>& bound, std::size_t limit, const store::EntryFingerprinter& fingerprint,
                    std::vector<ParsedEntry>& out, std::vector<SortItem>& order, std::uint64_t& consumed) {
    for (std::size_t taken = 0; taken < limit; ++taken) {
      auto located = Locate();
      if (!located) return std::unexpected(located.error());
      if (!*located) break;
      if (bound && !KeyedSerialLess(pending_key_, pending_.serial, bound->key, bound->serial)) break;
      auto entry = DecodeEntry(pending_);
      if (!entry) return std::unexpected(FileError(*file_, entry.error()));
      ParsedEntry& parsed = out.emplace_back();
      parsed.key = pending_key_;
      order.push_back(SortItem{pending_key_, static_cast<std::uint32_t>(out.size() - 1)});
      parsed.fingerprint = fingerprint(pending_.encoding);
      parsed.revocation_time = entry->revocation_time;
      parsed.has_reason = entry->reason.has_value();
      parsed.reason = static_cast<std::uint8_t>(entry->reason.value_or(store::Reason::kUnspecified));
      parsed.has_invalidity = entry->invalidity_date.has_value();
      parsed.invalidity_date = entry->invalidity_date.value_or(0);
      parsed.source = source_;
      parsed.serial_size = static_cast<std::uint8_t>(pending_.serial.size());
      std::copy(pending_.serial.begin(), pending_.serial.end(), parsed.serial.begin());
      consumed += pending_.encoding.size();
      have_pending_ = false;
    }
    // Walked pages leave the resident set as MergeFiles lets them go, up to the pending entry, which stays.
    const std::size_t offset = done_ ? reader_.offset() : pending_.offset;
    if (!descriptor_ && (done_ || offset >= next_release_)) {
      file_->Advance(offset);
      next_release_ = offset + release_step_;
    }
    // Read with pread, the file is needed only beyond what the buffer holds.
    if (descriptor_ && !left_behind_) {
      file_->LeaveCacheBehind(trail_, descriptor_.get(), done_ ? file_->der.size() : window_offset_ + window_size_, done_);
      left_behind_ = done_;
    }
    return {};
  }

  // The serial of the first entry not taken (located now if need be); none at the end of the file.
  Result<std::optional<Bound>> NextSerial() {
    auto located = Locate();
    if (!located) return std::unexpected(located.error());
    return *located ? std::optional<Bound>(Bound{pending_key_, pending_.serial}) : std::nullopt;
  }
  [[nodiscard]] bool done() const { return done_; }

 private:
  // Locates the next entry unless one is pending; false at the end. Checks the file's order as MergeFiles
  // does: a serial listed twice is refused, a file out of order says so (the import retries with an index).
  Result<bool> Locate() {
    if (have_pending_) return true;
    if (done_) return false;
    if (descriptor_) {
      if (auto read = LocateInBuffer(); !read || !*read) return read;
    } else {
      auto more = reader_.NextRaw(pending_);
      if (!more) return std::unexpected(FileError(*file_, more.error()));
      if (!*more) {
        done_ = true;
        return false;
      }
    }
    const ByteView previous(previous_.data(), previous_size_);
    const std::uint64_t key = SortKey(pending_.serial);
    if (have_previous_ && !KeyedSerialLess(previous_key_, previous, key, pending_.serial)) {
      if (previous.size() == pending_.serial.size() &&
          std::equal(previous.begin(), previous.end(), pending_.serial.begin())) {
        return Fail(ErrorCode::kInvalidArgument, file_->label() + ": serial 0x" + ToHex(pending_.serial) +
                                                     " is listed twice (offset " + std::to_string(pending_.offset) + ")");
      }
      return Fail(ErrorCode::kUnavailable, std::string(kUnsortedMarker));
    }
    have_previous_ = true;
    std::copy(pending_.serial.begin(), pending_.serial.end(), previous_.begin());
    previous_size_ = pending_.serial.size();
    previous_key_ = key;
    pending_key_ = key;
    have_pending_ = true;
    return true;
  }

  PreparedFile* file_;
  EntryReader reader_;
  std::uint32_t source_;
  std::size_t release_step_;
  std::size_t next_release_ = 0;
  RawEntry pending_;
  std::uint64_t pending_key_ = 0;
  bool have_pending_ = false;
  bool done_ = false;
  bool have_previous_ = false;
  std::array<std::uint8_t, kMaxSerialOctets> previous_{};
  std::size_t previous_size_ = 0;
  std::uint64_t previous_key_ = 0;

  // Locates the next entry in `buffer_`, reading more of the file when the buffer does not hold it whole;
  // false at the end of the entries. An entry that does not parse is an error only once the buffer reaches
  // the end of the entries (before that it may merely be cut off by the buffer's end; the buffer grows for
  // an entry larger than itself).
  Result<bool> LocateInBuffer() {
    for (;;) {
      const std::size_t available = window_size_ - position_;
      const bool to_end = window_offset_ + window_size_ == entries_end_;
      if (available == 0 && to_end) {
        done_ = true;
        return false;
      }
      if (available > 0) {
        EntryReader reader(ByteView(buffer_.data() + position_, available), window_offset_ + position_);
        auto more = reader.NextRaw(pending_);
        if (more && *more) {
          position_ += pending_.encoding.size();
          return true;
        }
        if (!more && to_end) return std::unexpected(FileError(*file_, more.error()));
      }
      // The pending entry is consumed (Locate is called only then): the buffer's bytes may move.
      if (buffer_.empty()) buffer_.resize(kBufferBytes);
      if (position_ > 0) {
        std::memmove(buffer_.data(), buffer_.data() + position_, available);
        window_offset_ += position_;
        window_size_ = available;
        position_ = 0;
      }
      if (window_size_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
      const std::size_t want = std::min(buffer_.size() - window_size_, entries_end_ - (window_offset_ + window_size_));
      const ssize_t got = ::pread(descriptor_.get(), buffer_.data() + window_size_, want,
                                  static_cast<off_t>(window_offset_ + window_size_));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        return Fail(ErrorCode::kIo, file_->label() + ": cannot read the file again: " +
                                        (got == 0 ? std::string("it is shorter than when it was opened") : std::strerror(errno)));
      }
      window_size_ += static_cast<std::size_t>(got);
    }
  }

  // Reading a partition's entries with pread into this buffer instead of through the file's mapping: the
  // walk comes back to each of ~1,900 files once a range, and through the mappings each visit could fault a
  // page in, the kernel then mapping 64 KiB around it (fault-around, whatever madvise says), and letting the
  // walked pages go took an madvise per 16 KiB walked per file, each a TLB shootdown of the other core (7% of
  // the set's samples). With pread the set's user time fell from 4.04-4.21 s to 3.51-3.59 s and peak RSS by
  // 12 MiB (3 interleaved runs). The bytes parsed are the file's, as the hasher's are: the hasher's mapping
  // (MAP_PRIVATE, never written) shows the page cache just as pread does, so neither path protects against a
  // file rewritten during its import, and the signature is checked over what the hasher read, as before.
  static constexpr std::size_t kBufferBytes = 8192;
  FileDescriptor descriptor_;
  std::vector<std::uint8_t> buffer_;
  std::size_t window_offset_ = 0;  // file offset of buffer_[0]
  std::size_t window_size_ = 0;    // bytes of the file in buffer_
  std::size_t position_ = 0;       // the next entry's offset in buffer_
  std::size_t entries_end_ = 0;    // file offset where the entries end
  PageCacheTrail trail_{kTrailStep};
  bool left_behind_ = false;  // the trail's last call is made
};

// The upper bounds of a set's ranges: every `step`-th serial of its largest file (the "pilot"), located (not
// decoded) up front; the last range has none. Bounds only ever increase: a pilot out of order is refused by
// its walk, and until then its bounds merely make some ranges empty.
struct RangeBounds {
  std::vector<std::uint64_t> keys;
  std::vector<std::array<std::uint8_t, kMaxSerialOctets>> serials;
  std::vector<std::uint8_t> sizes;

  [[nodiscard]] std::size_t ranges() const { return keys.size() + 1; }
  [[nodiscard]] std::optional<SourceWalk::Bound> of(std::size_t range) const {
    if (range >= keys.size()) return std::nullopt;
    return SourceWalk::Bound{keys[range], ByteView(serials[range].data(), sizes[range])};
  }

  static RangeBounds FromPilot(const std::vector<PreparedFile*>& files, std::size_t range_entries) {
    RangeBounds bounds;
    std::size_t total = 0;
    const PreparedFile* pilot = nullptr;
    for (const PreparedFile* file : files) {
      const std::size_t size = file->parser->header().entries.size();
      total += size;
      if (pilot == nullptr || size > pilot->parser->header().entries.size()) pilot = file;
    }
    if (pilot == nullptr || total == 0) return bounds;
    // The pilot's share of a range, from its share of the set's bytes (entries are about the same size).
    const double share = static_cast<double>(pilot->parser->header().entries.size()) / static_cast<double>(total);
    const auto step = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(range_entries) * share));
    EntryReader reader = pilot->parser->Entries();
    RawEntry raw;
    for (std::size_t n = 0;; ++n) {
      auto more = reader.NextRaw(raw);
      if (!more || !*more) break;  // a malformed pilot is refused by its walk
      if (n == 0 || n % step != 0) continue;
      const std::uint64_t key = SortKey(raw.serial);
      if (!bounds.keys.empty() &&
          !KeyedSerialLess(bounds.keys.back(), ByteView(bounds.serials.back().data(), bounds.sizes.back()), key, raw.serial)) {
        continue;
      }
      bounds.keys.push_back(key);
      auto& serial = bounds.serials.emplace_back();
      std::copy(raw.serial.begin(), raw.serial.end(), serial.begin());
      bounds.sizes.push_back(static_cast<std::uint8_t>(raw.serial.size()));
    }
    return bounds;
  }
};

// Ranges each worker may have filled ahead of the writing thread. With two, in a 2.9-3.2 s import of 1,900
// partitions the workers waited for the writing thread 0.75-0.9 s each and the writing thread for them
// 0.9-1.0 s in all: a range is ~8k entries per worker, a few milliseconds of work, the scale of the
// scheduler's time slices with four threads (two workers, the writer, the hasher) on two cores, so a worker
// descheduled for a moment stalled the writer and then the writer stalled it. With eight the waits fell to
// 0.15-0.35 s per worker and 0.3-0.6 s in all for the writer, and the set took 2.79-3.02 s against
// 2.92-2.93 s (three interleaved runs, the first run of each batch left out: see bench/README.md). A range's
// records take ~0.6 MiB per worker; the walk's own buffers are shared by its ranges, so eight cost ~6 MiB
// more peak RSS than two did.
constexpr std::size_t kRangesInFlight = 8;

// A worker thread over some of the set's files, and the ranges it fills in turn (kRangesInFlight): for each
// range, its files' entries below the range's bound, sorted. The writing thread takes range after range
// (Take), writes it, and hands it back (Give), while the worker fills and sorts the next ones. Destroying the
// worker stops it between two files and joins it.
class RangeWorker {
 public:
  struct Range {
    std::vector<ParsedEntry> entries;  // in serial order
    std::uint64_t consumed = 0;  // entry bytes of this worker's files walked up to the end of this range
    std::optional<Error> error;  // the walk failed here: nothing of this range is to be written
  };

  RangeWorker(std::vector<SourceWalk> walks, const RangeBounds& bounds, const store::EntryFingerprinter& fingerprint,
              std::size_t range_entries)
      : walks_(std::move(walks)), bounds_(bounds), fingerprint_(fingerprint), cap_(4 * std::max<std::size_t>(range_entries, 1)) {
    // Room for a range a quarter larger than planned: a range's size varies with the pilot's spacing.
    for (Range& range : ranges_) range.entries.reserve(range_entries + range_entries / 4);
    walked_.reserve(range_entries + range_entries / 4);
    order_.reserve(range_entries + range_entries / 4);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "import-parse");  // per-thread profiles (perf --comm)
      Run();
    });
  }
  RangeWorker(const RangeWorker&) = delete;
  RangeWorker& operator=(const RangeWorker&) = delete;
  ~RangeWorker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  // The next range in serial order; blocks until the worker has it.
  Range& Take() {
    std::unique_lock lock(mutex_);
    Range& range = ranges_[taken_ % ranges_.size()];
    changed_.wait(lock, [&] { return filled_ > taken_; });
    return range;
  }
  // The range from Take is written: the worker may fill it again.
  void Give() {
    {
      std::lock_guard lock(mutex_);
      ++taken_;
    }
    changed_.notify_all();
  }

 private:
  void Run() {
    std::uint64_t consumed = 0;
    for (std::size_t n = 0; n < bounds_.ranges(); ++n) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || n < taken_ + ranges_.size(); });
        if (stop_) return;
      }
      Range& range = ranges_[n % ranges_.size()];  // the writing thread is done with it
      range.error.reset();
      auto filled = Fill(range, bounds_.of(n), consumed);
      if (!filled) range.error = filled.error();
      range.consumed = consumed;
      {
        std::lock_guard lock(mutex_);
        ++filled_;
      }
      changed_.notify_all();
      if (range.error) return;
    }
  }

  Result<void> Fill(Range& range, const std::optional<SourceWalk::Bound>& bound, std::uint64_t& consumed) {
    // The bound is copied: a view into the pilot's mapping could have its page let go.
    walked_.clear();
    order_.clear();
    for (SourceWalk& walk : walks_) {
      if (walk.done()) continue;
      if (stop_.load(std::memory_order_relaxed)) return Fail(ErrorCode::kInternal, "stopped");
      if (auto walked = walk.Walk(bound, cap_ + 1, fingerprint_, walked_, order_, consumed); !walked) return walked;
      if (walked_.size() > cap_) return Fail(ErrorCode::kUnavailable, std::string(kUnevenMarker));
    }
    SortRange(order_, scratch_, walked_);
    // In serial order in memory: the writing thread then reads them front to back.
    range.entries.resize(walked_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) range.entries[i] = walked_[order_[i].index];
    return {};
  }

  std::vector<SourceWalk> walks_;  // touched only by the worker once it runs
  const RangeBounds& bounds_;
  const store::EntryFingerprinter& fingerprint_;
  std::size_t cap_;
  std::array<Range, kRangesInFlight> ranges_;
  // The walk's buffers, reused from range to range (so they stay in this core's cache): the entries in the
  // order the files were walked, and their keys and places, sorted.
  std::vector<ParsedEntry> walked_;
  std::vector<SortItem> order_;
  std::vector<SortItem> scratch_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t filled_ = 0;  // ranges the worker has published
  std::size_t taken_ = 0;   // ranges the writing thread has given back
  std::atomic<bool> stop_{false};  // set under mutex_, so a waiting worker cannot miss it
  std::thread thread_;  // last: started once everything above exists
};

// Parse workers for a partition set. Two: on the 2-core appliance the writing thread, the hasher and the
// archive copy share the cores with them, and with one worker the writing thread waited for it for 1.1-1.5 s
// of a 4.5 s import (the worker's 2.8 s of CPU against the writing thread's 1.4-2.0 s).
constexpr std::size_t kParseWorkers = 2;

// MergeFiles for a set of complete CRLs (kReplacePartitions), with the parsing on RangeWorker threads, each
// over a share of the files. Writes exactly what MergeFiles writes, in the same order, and refuses what it
// refuses.
Result<store::EntryMerge::Counts> MergeFilesInRanges(store::Store& store, store::WriteTxn& txn, std::uint32_t issuer_no,
                                                     std::vector<bool> replaced, const std::vector<PreparedFile*>& files,
                                                     std::size_t range_entries, const ProgressSink& progress,
                                                     std::uint64_t& done_bytes, std::uint64_t total_bytes) {
  auto merge = store::EntryMerge::Begin(store, txn, issuer_no, store::EntryMerge::Mode::kReplacePartitions, std::move(replaced));
  if (!merge) return std::unexpected(merge.error());
  std::vector<std::uint32_t> partition_no;
  std::vector<std::uint64_t> counted(files.size(), 0);
  for (const PreparedFile* file : files) partition_no.push_back(file->partition.partition_no);
  const bool may_skip = !merge->holds_nothing();
  const std::uint64_t start_bytes = done_bytes;

  const RangeBounds bounds = RangeBounds::FromPilot(files, range_entries);
  const bool read_files = DescriptorsToSpare(files.size());
  const std::size_t workers = std::min(kParseWorkers, files.size());
  std::vector<std::vector<SourceWalk>> walks(workers);
  for (std::size_t i = 0; i < files.size(); ++i) {
    walks[i % workers].emplace_back(*files[i], static_cast<std::uint32_t>(i), ReleaseStep(files.size()), read_files);
  }
  std::vector<std::unique_ptr<RangeWorker>> pool;
  for (std::size_t w = 0; w < workers; ++w) {
    pool.push_back(std::make_unique<RangeWorker>(std::move(walks[w]), bounds, store.fingerprinter(), range_entries / workers));
  }

  // Writes one entry: what MergeFiles does for an entry, from the parsed record.
  auto write = [&](const ParsedEntry& parsed) -> Result<void> {
    const ByteView serial = parsed.serial_view();
    const std::uint32_t partition = partition_no[parsed.source];
    ++counted[parsed.source];
    if (may_skip) {
      auto unchanged = merge->SkipIfUnchanged(serial, parsed.fingerprint, partition);
      if (!unchanged) return std::unexpected(FileError(*files[parsed.source], unchanged.error()));
      if (*unchanged) return {};
    }
    std::optional<store::Reason> reason;
    if (parsed.has_reason) reason = static_cast<store::Reason>(parsed.reason);
    if (reason == store::Reason::kRemoveFromCrl) {
      return std::unexpected(FileError(*files[parsed.source], Error{ErrorCode::kRefused, "serial 0x" + ToHex(serial) +
                                                                                           ": removeFromCRL belongs only in a delta CRL"}));
    }
    std::optional<UnixSeconds> invalidity;
    if (parsed.has_invalidity) invalidity = parsed.invalidity_date;
    const store::RevokedEntry entry{parsed.revocation_time, reason, invalidity, partition, false};
    if (auto added = merge->Add(serial, entry, parsed.fingerprint); !added) {
      return std::unexpected(FileError(*files[parsed.source], added.error()));
    }
    return {};
  };

  std::vector<RangeWorker::Range*> parts(workers);
  std::vector<std::size_t> next(workers);
  for (std::size_t n = 0; n < bounds.ranges(); ++n) {
    std::uint64_t consumed = 0;
    for (std::size_t w = 0; w < workers; ++w) {
      parts[w] = &pool[w]->Take();
      if (parts[w]->error) return std::unexpected(*parts[w]->error);
      consumed += parts[w]->consumed;
      next[w] = 0;
    }
    // Each worker's share of the range is sorted: merge them (a serial listed by two files meets itself
    // here, and Add refuses it as MergeFiles' Add does).
    for (;;) {
      const ParsedEntry* first = nullptr;
      std::size_t from = 0;
      for (std::size_t w = 0; w < workers; ++w) {
        if (next[w] == parts[w]->entries.size()) continue;
        const ParsedEntry& candidate = parts[w]->entries[next[w]];
        if (first == nullptr ||
            KeyedSerialLess(candidate.key, candidate.serial_view(), first->key, first->serial_view())) {
          first = &candidate;
          from = w;
        }
      }
      if (first == nullptr) break;
      ++next[from];
      if (auto written = write(*first); !written) return std::unexpected(written.error());
    }
    for (auto& worker : pool) worker->Give();
    done_bytes = start_bytes + consumed;
    if (progress) progress(done_bytes, total_bytes);
  }
  for (std::size_t i = 0; i < files.size(); ++i) files[i]->entries += counted[i];
  return merge->Finish();
}

// Once an import has parsed and hashed its CRL files, and the archive has read them, nothing reads them again:
// what the walks' PageCacheTrail has not let go yet (a file the hasher or the archive was still reading, a
// walk through the mappings for want of descriptors, the last folio a trail cut) leaves the page cache before
// the commit, which then takes pages the kernel has just freed for the store's file. Before the trail, this
// alone made the commit's copy of a 10M set's 310 MB of dirty pages 0.09 s instead of 0.51 s (perf, one run
// each) and the set 2.47-3.29 s instead of 3.29-3.97 s (13 alternating runs; bench/README.md). On the
// appliance the store, not the day's CRLs, is what the responder wants in memory. The kernel keeps pages still
// mapped, so the mappings let go first (the walks and the hasher are done with them).
void LeavePageCache(std::vector<PreparedFile>& files, std::size_t archived) {
  for (std::size_t i = 0; i < files.size() && i < archived; ++i) {
    if (!files[i].hash_done) continue;  // its hasher may still need it
    files[i].Advance(files[i].der.size());
    DropFromPageCache(files[i].input.path);
  }
}

void AppendHistory(const std::filesystem::path& directory, const std::vector<HistoryRecord>& records) {
  std::error_code ignored;
  std::filesystem::create_directories(directory, ignored);
  std::ofstream out(directory / "history.jsonl", std::ios::app);
  for (const HistoryRecord& r : records) {
    out << "{\"at\":" << r.at << ",\"issuer\":" << JsonQuote(r.issuer)
        << ",\"issuer_key\":" << JsonQuote(r.issuer_key) << ",\"source\":" << JsonQuote(r.source)
        << ",\"sha256\":" << JsonQuote(r.sha256) << ",\"kind\":" << JsonQuote(r.kind)
        << ",\"partition\":" << JsonQuote(r.partition) << ",\"number\":" << JsonQuote(r.number)
        << ",\"this_update\":" << r.this_update << ",\"next_update\":"
        << (r.next_update ? std::to_string(*r.next_update) : std::string("null")) << ",\"entries\":" << r.entries
        << ",\"added\":" << r.added << ",\"removed\":" << r.removed << ",\"changed\":" << r.changed
        << ",\"result\":" << JsonQuote(r.result) << ",\"reason\":" << JsonQuote(r.reason)
        << ",\"seconds\":" << r.seconds << ",\"holds_kept\":" << r.holds_kept << "}\n";
  }
  out.flush();
  if (!out) Log(LogLevel::kError, "history_write_failed", {{"path", (directory / "history.jsonl").string()}});
}

// One ustar header block (POSIX.1-1988), enough for `tar -x` to list and extract the member.
std::array<char, 512> TarHeader(const std::string& name, std::uint64_t size, UnixSeconds mtime) {
  std::array<char, 512> header{};
  auto field = [&](std::size_t offset, std::size_t width, const std::string& value) {
    std::memcpy(header.data() + offset, value.data(), std::min(width, value.size()));
  };
  auto octal = [&](std::size_t offset, std::size_t width, std::uint64_t value) {
    char text[24];
    std::snprintf(text, sizeof text, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
    field(offset, width - 1, text);
  };
  field(0, 100, name);
  octal(100, 8, 0600);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, static_cast<std::uint64_t>(mtime));
  std::memset(header.data() + 148, ' ', 8);
  header[156] = '0';
  field(257, 6, std::string("ustar\0", 6));
  field(263, 2, "00");
  unsigned checksum = 0;
  for (char c : header) checksum += static_cast<unsigned char>(c);
  char text[8];
  std::snprintf(text, sizeof text, "%06o", checksum);
  std::memcpy(header.data() + 148, text, 7);
  return header;
}

// Imported files are kept for audit: one file as <stamp>-<sha256>.crl, a set imported together (1,900
// municipality partitions) as one tar, so the archive does not grow by thousands of files a day.
std::filesystem::path ArchiveDirectory(const ImportOptions& options, const store::IssuerId& issuer) {
  return options.archive_directory / issuer.hex().substr(0, 16);
}
std::string ArchiveStamp(UnixSeconds now) {
  std::string stamp = IsoTime(now);
  std::erase(stamp, ':');
  std::erase(stamp, '-');
  return stamp;
}
std::filesystem::path ArchiveName(const std::filesystem::path& directory, const std::string& stamp,
                                  const store::Sha256& first, std::size_t files) {
  const std::string first_hash = ToHex(first).substr(0, 16);
  if (files == 1) return directory / (stamp + "-" + first_hash + ".crl");
  return directory / (stamp + "-" + first_hash + "-" + std::to_string(files) + "-crls.tar");
}

// Writes the tar of `paths` to `out`; each member is named by its file's SHA-256 prefix and file name.
// `stop` is polled between members. The digests come from `digests` when given (the import's own, of the
// bytes it imported: a file changed on disk meanwhile is archived as it is now, under the digest imported;
// the history says which), else they are computed here. False when the archive could not be written whole.
template <typename Sink>
bool WriteTar(Sink& out, const std::vector<std::filesystem::path>& paths, UnixSeconds now,
              const std::atomic<bool>* stop, DigestBoard* digests = nullptr,
              std::atomic<std::size_t>* files_read = nullptr) {
  static constexpr std::array<char, 512> kZeros{};
  for (std::size_t index = 0; index < paths.size(); ++index) {
    const std::filesystem::path& path = paths[index];
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return false;
    auto data = ReadFile(path);
    if (files_read != nullptr) files_read->store(index + 1, std::memory_order_release);
    if (!data) {
      Log(LogLevel::kWarning, "archive_failed", {{"file", path.string()}, {"error", data.error().message}});
      continue;
    }
    store::Sha256 digest{};
    if (digests != nullptr) {
      auto published = digests->Wait(index);
      if (!published) return false;  // closed: the archive is dropped
      digest = *published;
    } else {
      SHA256(data->data(), data->size(), digest.data());
    }
    const std::string name = ToHex(digest).substr(0, 16) + "-" + path.filename().string();
    const auto header = TarHeader(name.substr(0, 99), data->size(), now);
    out.write(header.data(), header.size());
    out.write(reinterpret_cast<const char*>(data->data()), static_cast<std::streamsize>(data->size()));
    out.write(kZeros.data(), static_cast<std::streamsize>((512 - data->size() % 512) % 512));
  }
  out.write(kZeros.data(), 512);
  out.write(kZeros.data(), 512);
  return static_cast<bool>(out);
}


// Writes a file with O_DIRECT through an aligned buffer: the archive copy of a 378 MB CRL through the page
// cache (sendfile, or a buffered write) cost about 1 s of CPU at 10M entries (perf: copy_folio_from_iter in
// the archive thread), CPU the import's own threads need on a 2-core machine; a direct write is a DMA from
// the buffer. The unaligned tail is written buffered. Where O_DIRECT is refused (tmpfs), everything is.
class DirectWriter {
 public:
  explicit DirectWriter(const std::filesystem::path& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
    if (fd_ < 0) fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    buffer_ = static_cast<char*>(std::aligned_alloc(kAlign, kBufferSize));
    ok_ = fd_ >= 0 && buffer_ != nullptr;
  }
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;
  ~DirectWriter() {
    if (fd_ >= 0) ::close(fd_);
    std::free(buffer_);
  }

  void write(const char* data, std::streamsize size) {
    auto left = static_cast<std::size_t>(size);
    while (ok_ && left > 0) {
      const std::size_t take = std::min(left, kBufferSize - used_);
      std::memcpy(buffer_ + used_, data, take);
      used_ += take;
      data += take;
      left -= take;
      if (used_ == kBufferSize) ok_ = WriteAll(buffer_, used_) && ((used_ = 0), true);
    }
  }
  // Writes what is buffered: the aligned part directly, the rest buffered. False if anything failed.
  bool Finish() {
    if (!ok_) return false;
    const std::size_t aligned = used_ / kAlign * kAlign;
    if (aligned > 0) ok_ = WriteAll(buffer_, aligned);
    if (ok_ && used_ > aligned) {
      const int flags = ::fcntl(fd_, F_GETFL);
      ok_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) == 0 && WriteAll(buffer_ + aligned, used_ - aligned);
    }
    used_ = 0;
    return ok_;
  }
  explicit operator bool() const { return ok_; }

 private:
  static constexpr std::size_t kAlign = 4096;
  static constexpr std::size_t kBufferSize = std::size_t{4} << 20;
  bool WriteAll(const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t written = ::write(fd_, data, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) return false;
      data += written;
      size -= static_cast<std::size_t>(written);
    }
    return true;
  }
  int fd_ = -1;
  char* buffer_ = nullptr;
  std::size_t used_ = 0;
  bool ok_ = false;
};

// Copies `from` to `to` (DirectWriter), polling `stop` between chunks.
bool CopyFile(const std::filesystem::path& from, const std::filesystem::path& to, const std::atomic<bool>& stop) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  DirectWriter out(to);
  std::vector<char> chunk(std::size_t{1} << 20);
  bool ok = static_cast<bool>(out);
  while (ok) {
    if (stop.load(std::memory_order_relaxed)) {
      ok = false;
      break;
    }
    const ssize_t got = ::read(in, chunk.data(), chunk.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ok = false;
    if (got <= 0) break;
    out.write(chunk.data(), got);
    ok = static_cast<bool>(out);
  }
  ::close(in);
  return ok && out.Finish();
}

// The synchronous archive: used when only some of the files of a call were imported (the others were held
// already), so the background copy of all of them is not the right content.
void Archive(const ImportOptions& options, const store::IssuerId& issuer, const std::vector<const PreparedFile*>& files,
             UnixSeconds now) {
  if (options.archive_directory.empty() || files.empty()) return;
  std::error_code error;
  const std::filesystem::path directory = ArchiveDirectory(options, issuer);
  std::filesystem::create_directories(directory, error);
  const auto target = ArchiveName(directory, ArchiveStamp(now), files.front()->sha256, files.size());
  if (files.size() == 1) {
    std::filesystem::copy_file(files.front()->input.path, target, std::filesystem::copy_options::skip_existing, error);
    if (error) Log(LogLevel::kWarning, "archive_failed", {{"file", files.front()->label()}, {"error", error.message()}});
    return;
  }
  std::vector<std::filesystem::path> paths;
  for (const PreparedFile* file : files) paths.push_back(file->input.path);
  std::ofstream out(target, std::ios::binary | std::ios::trunc);
  if (!WriteTar(out, paths, now, nullptr)) {
    Log(LogLevel::kWarning, "archive_failed", {{"file", target.string()}, {"error", "write failed"}});
  }
}

// The archive copy of a whole call, written on a second thread while the import parses and merges (copying
// 378 MB took about 1 s of the 10M-entry import when it ran after the commit). It is written under a
// temporary name and renamed into place only once the import has committed (Keep); a refused or
// unchanged import deletes it. A copy left by a killed importer is pruned with the retention period.
class BackgroundArchive {
 public:
  BackgroundArchive(const ImportOptions& options, const store::IssuerId& issuer, const std::vector<ImportInput>& inputs,
                    UnixSeconds now)
      : options_(options), issuer_(issuer), now_(now), digests_(inputs.size()) {
    if (options.archive_directory.empty() || inputs.empty()) return;
    for (const ImportInput& input : inputs) paths_.push_back(input.path);
    std::error_code error;
    directory_ = ArchiveDirectory(options, issuer);
    std::filesystem::create_directories(directory_, error);
    temporary_ = directory_ / (ArchiveStamp(now) + "-partial-" + std::to_string(::getpid()) + ".tmp");
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "import-archive");
      if (paths_.size() == 1) {
        ok_ = CopyFile(paths_.front(), temporary_, stop_);
        files_read_.store(1, std::memory_order_release);
      } else {
        DirectWriter out(temporary_);
        ok_ = WriteTar(out, paths_, now_, &stop_, &digests_, &files_read_) && out.Finish();
      }
    });
  }
  BackgroundArchive(const BackgroundArchive&) = delete;
  BackgroundArchive& operator=(const BackgroundArchive&) = delete;
  ~BackgroundArchive() {
    stop_ = true;
    digests_.Close();
    Finish();
  }

  // Where the import publishes its files' digests, in call order (see DigestBoard).
  DigestBoard* digests() { return &digests_; }
  // How many of the call's files, from the first, the archive will not read again (all when not archiving).
  [[nodiscard]] std::size_t files_read() const {
    return thread_.joinable() ? files_read_.load(std::memory_order_acquire) : std::numeric_limits<std::size_t>::max();
  }
  // The same count for other threads to watch; none when not archiving.
  [[nodiscard]] const std::atomic<std::size_t>* read_progress() const { return thread_.joinable() ? &files_read_ : nullptr; }

  // After the commit: the files imported, in call order. When they are all the call's files the background
  // copy is renamed into place; otherwise it is dropped and the imported ones are archived here.
  void Keep(const std::vector<const PreparedFile*>& imported) {
    if (!thread_.joinable() || imported.empty()) return;
    const bool all = imported.size() == paths_.size();
    if (!all) {
      stop_ = true;
      digests_.Close();
    }
    Finish();
    if (!all) return Archive(options_, issuer_, imported, now_);
    std::error_code error;
    if (!ok_) {
      Log(LogLevel::kWarning, "archive_failed", {{"file", paths_.front().string()}, {"error", "copy failed"}});
      std::filesystem::remove(temporary_, error);
      return;
    }
    const auto target = ArchiveName(directory_, ArchiveStamp(now_), imported.front()->sha256, imported.size());
    if (paths_.size() == 1 && std::filesystem::exists(target, error)) {  // the old copy_file skipped existing
      std::filesystem::remove(temporary_, error);
      return;
    }
    std::filesystem::rename(temporary_, target, error);
    if (error) Log(LogLevel::kWarning, "archive_failed", {{"file", target.string()}, {"error", error.message()}});
    temporary_.clear();
  }

 private:
  void Finish() {
    if (!thread_.joinable()) return;
    thread_.join();
    if (!temporary_.empty() && stop_) {
      std::error_code ignored;
      std::filesystem::remove(temporary_, ignored);
      temporary_.clear();
    }
  }

  const ImportOptions& options_;
  store::IssuerId issuer_;
  UnixSeconds now_;
  std::vector<std::filesystem::path> paths_;
  std::filesystem::path directory_;
  std::filesystem::path temporary_;
  std::atomic<bool> stop_{false};
  bool ok_ = false;  // written by the thread, read after join
  std::atomic<std::size_t> files_read_{0};
  DigestBoard digests_;
  std::thread thread_;
};

// Retention: archived files older than the period go. Once per import, not per file.
void PruneArchive(const ImportOptions& options) {
  if (options.archive_directory.empty()) return;
  std::error_code error;
  const auto now = std::filesystem::file_time_type::clock::now();
  const auto cutoff = now - std::chrono::seconds(options.archive_retention_seconds);
  // A background copy left by a killed importer (BackgroundArchive) goes after a day: no import runs that long.
  const auto partial_cutoff = now - std::chrono::hours(24);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(options.archive_directory, error)) {
    if (!entry.is_regular_file(error)) continue;
    const std::string name = entry.path().filename().string();
    const bool partial = name.find("-partial-") != std::string::npos && name.ends_with(".tmp");
    const auto written = entry.last_write_time(error);
    if (written < cutoff || (partial && written < partial_cutoff)) std::filesystem::remove(entry.path(), error);
  }
}

}  // namespace

std::string_view ToString(CrlKind kind) {
  switch (kind) {
    case CrlKind::kFull: return "full";
    case CrlKind::kPartition: return "partition";
    case CrlKind::kAuthorityRevocationList: return "arl";
    case CrlKind::kDelta: return "delta";
  }
  return "full";
}

bool ImportReport::nothing_to_do() const {
  return std::all_of(files.begin(), files.end(), [](const FileReport& f) { return f.unchanged; });
}

Result<ImportReport> Importer::Import(const X509* issuer_certificate, const std::vector<ImportInput>& inputs,
                                      const ProgressSink& progress) {
  const auto started = std::chrono::steady_clock::now();
  const UnixSeconds now = clock_.Now();
  auto identity = store::IssuerIdentity::FromCertificate(issuer_certificate);
  if (!identity) return std::unexpected(identity.error());

  std::vector<HistoryRecord> history;
  Hasher* running_hasher = nullptr;  // the current attempt's, while it runs
  auto refuse = [&](const Error& error, const std::vector<PreparedFile>& prepared) -> Result<ImportReport> {
    if (running_hasher != nullptr) running_hasher->Stop();  // its files' hash_done may be read now
    for (const ImportInput& input : inputs) {
      HistoryRecord record;
      record.at = now;
      record.issuer = identity->subject_text;
      record.source = input.source.empty() ? input.path.string() : input.source;
      for (const PreparedFile& file : prepared) {
        if (file.input.path != input.path) continue;
        record.kind = ToString(file.kind);
        record.partition = file.partition_name;
        record.number = file.number.ToString();
        record.this_update = file.parser ? file.parser->header().this_update : 0;
        record.next_update = file.parser ? file.parser->header().next_update : std::nullopt;
        if (file.hash_done) record.sha256 = ToHex(file.sha256);
      }
      record.issuer_key = identity->id.hex();
      record.result = "refused";
      record.reason = error.Describe();
      record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      history.push_back(std::move(record));
    }
    AppendHistory(store_directory_, history);
    return std::unexpected(error);
  };

  if (inputs.empty()) return Fail(ErrorCode::kInvalidArgument, "no CRL files given");
  if (X509_check_ca(const_cast<X509*>(issuer_certificate)) < 1) {
    return refuse(Error{ErrorCode::kVerificationFailed, identity->subject_text + " is not a CA certificate"}, {});
  }
  if ((X509_get_extension_flags(const_cast<X509*>(issuer_certificate)) & EXFLAG_KUSAGE) &&
      !(X509_get_key_usage(const_cast<X509*>(issuer_certificate)) & KU_CRL_SIGN)) {
    return refuse(Error{ErrorCode::kVerificationFailed, identity->subject_text + " may not sign CRLs (no cRLSign)"}, {});
  }

  BackgroundArchive archive(options_, identity->id, inputs, now);
  std::vector<bool> needs_sort(inputs.size(), false);
  // Partition sets are parsed on a worker thread (MergeFilesInRanges) unless that gave up on this set.
  bool in_ranges_allowed = options_.parallel_range_entries > 0;
  // At most: in ranges, then on this thread (the set's serials are uneven), then with sorted indexes.
  for (int attempt = 0; attempt < 3; ++attempt) {
    // --- Everything that needs no store: parse, names, key identifiers, signature set-up, times ---
    std::vector<PreparedFile> files;
    files.reserve(inputs.size());
    std::uint64_t total_bytes = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      auto file = Prepare(inputs[i], *identity, issuer_certificate, options_, now);
      if (!file) return refuse(file.error(), files);
      file->needs_sort = needs_sort[i];
      file->archive_read = archive.read_progress();
      total_bytes += file->parser->header().entries.size();
      files.push_back(std::move(*file));
    }
    Hasher hasher(files, archive.digests());  // `files` does not grow from here on
    running_hasher = &hasher;
    struct Forget {
      Hasher*& hasher;
      ~Forget() { hasher = nullptr; }
    } forget{running_hasher};

    // --- One write transaction for all files ---
    auto txn = store_.BeginWrite();
    if (!txn) return std::unexpected(txn.error());
    auto issuer = store_.EnsureIssuer(*txn, *identity);
    if (!issuer) return std::unexpected(issuer.error());

    ImportReport report;
    report.issuer = identity->id;
    report.issuer_name = identity->subject_text;
    std::vector<PreparedFile*> bases;
    std::vector<PreparedFile*> deltas;
    std::vector<bool> replaced(issuer->state.last_partition_no + 2 + files.size(), false);
    for (PreparedFile& file : files) {
      auto partition = store_.EnsurePartition(*txn, *issuer, file.scope, file.distribution_point, file.partition_name);
      if (!partition) return refuse(FileError(file, partition.error()), files);
      file.partition = std::move(*partition);
      if (replaced.size() <= file.partition.partition_no) replaced.resize(file.partition.partition_no + 1, false);
      if (file.kind == CrlKind::kDelta) {
        deltas.push_back(&file);
        continue;
      }
      const auto& base = file.partition.base;
      const auto& delta = file.partition.delta;
      if (base && file.number == base->number) {
        if (file.FinishHash() == base->sha256) {
          file.unchanged = true;
          continue;
        }
        return refuse(Error{ErrorCode::kRefused, file.label() + ": CRL number " + file.number.ToString() +
                                                     " is already held with different content"},
                      files);
      }
      if (base && file.number < base->number) {
        return refuse(Error{ErrorCode::kRefused, file.label() + ": CRL number " + file.number.ToString() +
                                                     " is lower than the held CRL number " + base->number.ToString() +
                                                     " (" + file.partition_name + ")"},
                      files);
      }
      if (delta && !(delta->number < file.number)) {
        return refuse(Error{ErrorCode::kRefused, file.label() + ": CRL number " + file.number.ToString() +
                                                     " does not exceed the held delta CRL number " +
                                                     delta->number.ToString()},
                      files);
      }
      if (replaced[file.partition.partition_no]) {
        return refuse(Error{ErrorCode::kInvalidArgument,
                            file.label() + ": a second CRL for " + file.partition_name + " in one import"},
                      files);
      }
      replaced[file.partition.partition_no] = true;
      bases.push_back(&file);
    }

    std::uint64_t done_bytes = 0;
    bool retry = false;   // a file is not sorted by serial: retry with sorted indexes
    bool uneven = false;  // the worker gave up on the set: retry on this thread
    auto absorb = [&](const store::EntryMerge::Counts& counts) {
      report.added += counts.added;
      report.removed += counts.removed;
      report.changed += counts.changed;
      report.unchanged += counts.unchanged;
      report.holds_kept += counts.holds_kept;
    };
    if (!bases.empty()) {
      // One file has nothing to be parsed beside; a file that needs a sorted index is walked out of order.
      const bool in_ranges = in_ranges_allowed && bases.size() >= 2 &&
                             std::none_of(bases.begin(), bases.end(), [](const PreparedFile* f) { return f->needs_sort; });
      auto counts = in_ranges ? MergeFilesInRanges(store_, *txn, issuer->state.issuer_no, replaced, bases,
                                                   options_.parallel_range_entries, progress, done_bytes, total_bytes)
                              : MergeFiles(store_, *txn, issuer->state.issuer_no, store::EntryMerge::Mode::kReplacePartitions,
                                           replaced, bases, progress, done_bytes, total_bytes);
      if (!counts && IsUnsorted(counts.error())) {
        retry = true;
      } else if (!counts && in_ranges && IsUneven(counts.error())) {
        uneven = true;
      } else if (!counts) {
        return refuse(counts.error(), files);
      } else {
        absorb(*counts);
      }
    }
    // --- Record the new complete CRLs in their partitions, before any delta of this call is judged ---
    for (PreparedFile* file : retry || uneven ? std::vector<PreparedFile*>{} : bases) {
      if (file->partition.base) file->previous_entries = file->partition.base->entry_count;
      store::CrlSummary summary;
      summary.number = file->number;
      summary.this_update = file->parser->header().this_update;
      summary.next_update = file->parser->header().next_update;
      summary.imported_at = now;
      summary.sha256 = file->FinishHash();
      summary.entry_count = file->entries;
      auto id = store_.RecordCrl(*txn, *issuer, file->partition.partition_no, false, summary);
      if (!id) return std::unexpected(id.error());
      summary.crl_id = *id;
      file->partition.base = summary;
      file->partition.delta.reset();  // a newer complete CRL supersedes the deltas
      if (auto put = store_.PutPartition(*txn, issuer->state.issuer_no, file->partition); !put) {
        return std::unexpected(put.error());
      }
    }

    // Deltas in CRL number order, each on top of what is held (RFC 5280 5.2.4).
    std::sort(deltas.begin(), deltas.end(), [](const PreparedFile* a, const PreparedFile* b) { return a->number < b->number; });
    for (PreparedFile* file : retry || uneven ? std::vector<PreparedFile*>{} : deltas) {
      // Re-read: a base imported in this same call may have updated the partition.
      auto current = store_.GetPartition(txn->get(), issuer->state.issuer_no, file->partition.partition_no);
      if (!current) return std::unexpected(current.error());
      file->partition = std::move(**current);
      const auto& base = file->partition.base;
      const auto& delta = file->partition.delta;
      if (!base) {
        return refuse(Error{ErrorCode::kRefused, file->label() + ": a delta CRL for " + file->partition_name +
                                                     ", for which no complete CRL is held"},
                      files);
      }
      if (base->number < *file->delta_base) {
        return refuse(Error{ErrorCode::kRefused, file->label() + ": the delta CRL is based on CRL number " +
                                                     file->delta_base->ToString() + " but the held CRL number is " +
                                                     base->number.ToString()},
                      files);
      }
      if (delta && file->number == delta->number && file->FinishHash() == delta->sha256) {
        file->unchanged = true;
        continue;
      }
      const CrlNumber& held = delta && base->number < delta->number ? delta->number : base->number;
      if (!(held < file->number)) {
        return refuse(Error{ErrorCode::kRefused, file->label() + ": delta CRL number " + file->number.ToString() +
                                                     " does not exceed the held CRL number " + held.ToString()},
                      files);
      }
      auto counts = MergeFiles(store_, *txn, issuer->state.issuer_no, store::EntryMerge::Mode::kApplyDelta, {},
                               {file}, progress, done_bytes, total_bytes);
      if (!counts && IsUnsorted(counts.error())) {
        retry = true;
        break;
      }
      if (!counts) return refuse(counts.error(), files);
      absorb(*counts);
      // Keep the partition's delta summary current for the next delta of this call.
      store::CrlSummary summary;
      summary.number = file->number;
      summary.this_update = file->parser->header().this_update;
      summary.next_update = file->parser->header().next_update;
      summary.imported_at = now;
      summary.sha256 = file->FinishHash();
      summary.entry_count = base->entry_count + counts->added - std::min(base->entry_count, counts->removed);
      auto id = store_.RecordCrl(*txn, *issuer, file->partition.partition_no, true, summary);
      if (!id) return std::unexpected(id.error());
      summary.crl_id = *id;
      file->partition.delta = summary;
      if (auto put = store_.PutPartition(*txn, issuer->state.issuer_no, file->partition); !put) {
        return std::unexpected(put.error());
      }
    }
    if (retry) {
      // A file was not sorted by serial: redo everything with a sorted index for the files that need one.
      txn->Abort();
      std::fill(needs_sort.begin(), needs_sort.end(), true);  // the rare unsorted set: the only safe choice
      continue;
    }
    if (uneven) {
      // Nothing was committed: redo everything on this thread (MergeFiles keeps one entry per file in memory).
      Log(LogLevel::kInfo, "import_ranges_uneven", {{"issuer", identity->subject_text}, {"files", std::to_string(bases.size())}});
      txn->Abort();
      in_ranges_allowed = false;
      continue;
    }

    // --- The signatures must hold before anything commits ---
    for (PreparedFile& file : files) {
      if (file.unchanged) continue;
      if (const Result<void>& verified = file.Verified(); !verified) return refuse(FileError(file, verified.error()), files);
    }

    // --- Size check: a CRL much smaller than the one it replaces is probably wrong or partial ---
    for (PreparedFile* file : bases) {
      const auto& previous = file->previous_entries;
      if (!previous || options_.allow_shrink || *previous == 0) continue;
      const double floor = static_cast<double>(*previous) * (1.0 - options_.max_shrink_fraction);
      if (static_cast<double>(file->entries) < floor) {
        return refuse(Error{ErrorCode::kRefused,
                            file->label() + ": " + file->partition_name + " would shrink from " +
                                std::to_string(*previous) + " to " + std::to_string(file->entries) +
                                " entries, more than " + std::to_string(static_cast<int>(options_.max_shrink_fraction * 100)) +
                                "% (a wrong or partial file? --allow-shrink if it is right)"},
                      files);
      }
    }

    // --- An ARL that revokes a CA certificate for key compromise: that CA's every answer is revoked ---
    for (PreparedFile& ca_file : files) {
      PreparedFile* file = &ca_file;
      if (file->unchanged || file->scope != PartitionScope::kCaCerts) continue;  // full ARLs and delta ARLs
      auto known = store_.ListIssuers(txn->get());
      if (!known) return std::unexpected(known.error());
      for (store::IssuerRecord& candidate : *known) {
        auto certificate = ParseCertificate(candidate.certificate_der);
        if (!certificate) continue;
        if (X509_check_issued(const_cast<X509*>(issuer_certificate), certificate->get()) != X509_V_OK) continue;
        auto serial = IntegerMagnitude(X509_get0_serialNumber(certificate->get()));
        if (!serial) continue;
        auto entry = store_.GetRevoked(txn->get(), issuer->state.issuer_no, *serial);
        if (!entry) return std::unexpected(entry.error());
        if (!*entry || (*entry)->partition_no != file->partition.partition_no) continue;
        if ((*entry)->reason != store::Reason::kCaCompromise && (*entry)->reason != store::Reason::kKeyCompromise) continue;
        store::IssuerRecord& target = candidate.id == issuer->id ? *issuer : candidate;
        const store::CompromiseRecord record{(*entry)->invalidity_date.value_or((*entry)->revocation_time), now,
                                             "ARL " + file->number.ToString() + " of " + identity->subject_text};
        if (auto set = store_.SetCompromise(*txn, target, record); !set) return std::unexpected(set.error());
        report.warnings.push_back("CA key compromise: every certificate of key " + target.id.hex() +
                                  " is revoked from " + IsoTime(record.since));
      }
    }

    if (auto updated = store_.UpdateIssuer(*txn, *issuer); !updated) return std::unexpected(updated.error());
    if (report.holds_kept > 0) {
      report.warnings.push_back(std::to_string(report.holds_kept) +
                                " certificateHold entries are no longer listed; kept revoked (JPKI never releases a hold)");
    }
    const bool changed_anything = std::any_of(files.begin(), files.end(), [](const PreparedFile& f) { return !f.unchanged; });
    if (changed_anything) {
      LeavePageCache(files, archive.files_read());
      if (auto committed = txn->Commit(); !committed) return std::unexpected(committed.error());
    }  // else: the transaction aborts and the data file is untouched

    for (PreparedFile& file : files) {
      FileReport file_report;
      file_report.source = file.label();
      file_report.sha256 = file.FinishHash();
      file_report.kind = file.kind;
      file_report.partition = file.distribution_point.empty() ? "" : file.partition_name;
      file_report.number = file.number.ToString();
      file_report.this_update = file.parser->header().this_update;
      file_report.next_update = file.parser->header().next_update;
      file_report.entries = file.entries;
      file_report.unchanged = file.unchanged;
      report.files.push_back(file_report);

      HistoryRecord record;
      record.at = now;
      record.issuer = identity->subject_text;
      record.issuer_key = identity->id.hex();
      record.source = file.label();
      record.sha256 = ToHex(file.sha256);
      record.kind = ToString(file.kind);
      record.partition = file_report.partition;
      record.number = file_report.number;
      record.this_update = file_report.this_update;
      record.next_update = file_report.next_update;
      record.entries = file.entries;
      record.result = file.unchanged ? "unchanged" : "imported";
      history.push_back(std::move(record));
    }
    std::vector<const PreparedFile*> imported;
    for (const PreparedFile& file : files) {
      if (!file.unchanged) imported.push_back(&file);
    }
    archive.Keep(imported);
    if (!history.empty() && files.size() == 1) {
      history.back().added = report.added;
      history.back().removed = report.removed;
      history.back().changed = report.changed;
    }
    if (!history.empty()) history.back().holds_kept = report.holds_kept;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    for (HistoryRecord& record : history) record.seconds = seconds;
    AppendHistory(store_directory_, history);
    if (changed_anything) PruneArchive(options_);
    for (const std::string& warning : report.warnings) Log(LogLevel::kWarning, "import_warning", {{"issuer", identity->subject_text}, {"warning", warning}});
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
  }
  return Fail(ErrorCode::kInternal, "the import did not settle on an order of entries");
}

// --- History ---

namespace {

// A reader for the flat JSON objects AppendHistory writes (strings, integers, null).
class FlatJson {
 public:
  explicit FlatJson(std::string_view text) : text_(text) {}
  bool Parse(std::vector<std::pair<std::string, std::string>>& fields) {
    Skip();
    if (!Eat('{')) return false;
    Skip();
    if (Eat('}')) return true;
    for (;;) {
      std::string key;
      std::string value;
      Skip();
      if (!String(key)) return false;
      Skip();
      if (!Eat(':')) return false;
      Skip();
      if (Peek() == '"') {
        if (!String(value)) return false;
      } else {
        while (position_ < text_.size() && text_[position_] != ',' && text_[position_] != '}') value += text_[position_++];
      }
      fields.emplace_back(std::move(key), std::move(value));
      Skip();
      if (Eat('}')) return true;
      if (!Eat(',')) return false;
    }
  }

 private:
  char Peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++position_;
    return true;
  }
  void Skip() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\t')) ++position_;
  }
  bool String(std::string& out) {
    if (!Eat('"')) return false;
    while (position_ < text_.size()) {
      char c = text_[position_++];
      if (c == '"') return true;
      if (c == '\\' && position_ < text_.size()) {
        const char escaped = text_[position_++];
        if (escaped == 'n') c = '\n';
        else if (escaped == 't') c = '\t';
        else if (escaped == 'u' && position_ + 4 <= text_.size()) {
          c = static_cast<char>(std::stoi(std::string(text_.substr(position_, 4)), nullptr, 16));
          position_ += 4;
        } else {
          c = escaped;
        }
      }
      out += c;
    }
    return false;
  }
  std::string_view text_;
  std::size_t position_ = 0;
};

std::int64_t ToInt(const std::string& text) {
  try {
    return std::stoll(text);
  } catch (...) {
    return 0;
  }
}

double ToDouble(const std::string& text) {
  try {
    return std::stod(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::optional<HistoryRecord> ParseHistoryLine(std::string_view line) {
  std::vector<std::pair<std::string, std::string>> fields;
  if (line.empty() || !FlatJson(line).Parse(fields)) return std::nullopt;
  HistoryRecord record;
  for (const auto& [key, value] : fields) {
    if (key == "at") record.at = ToInt(value);
    else if (key == "issuer") record.issuer = value;
    else if (key == "issuer_key") record.issuer_key = value;
    else if (key == "source") record.source = value;
    else if (key == "sha256") record.sha256 = value;
    else if (key == "kind") record.kind = value;
    else if (key == "partition") record.partition = value;
    else if (key == "number") record.number = value;
    else if (key == "this_update") record.this_update = ToInt(value);
    else if (key == "next_update" && value != "null") record.next_update = ToInt(value);
    else if (key == "entries") record.entries = static_cast<std::uint64_t>(ToInt(value));
    else if (key == "added") record.added = static_cast<std::uint64_t>(ToInt(value));
    else if (key == "removed") record.removed = static_cast<std::uint64_t>(ToInt(value));
    else if (key == "changed") record.changed = static_cast<std::uint64_t>(ToInt(value));
    else if (key == "result") record.result = value;
    else if (key == "reason") record.reason = value;
    else if (key == "seconds") record.seconds = ToDouble(value);
    else if (key == "holds_kept") record.holds_kept = static_cast<std::uint64_t>(ToInt(value));
  }
  return record;
}

Result<std::vector<HistoryRecord>> ReadHistory(const std::filesystem::path& store_directory) {
  std::vector<HistoryRecord> out;
  std::ifstream in(store_directory / "history.jsonl");
  if (!in) return out;
  std::string line;
  while (std::getline(in, line)) {
    if (auto record = ParseHistoryLine(line)) out.push_back(std::move(*record));
  }
  return out;
}

}  // namespace ocsp::importer
