#include "importer/sync.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <set>
#include <utility>

#include "common/bytes.h"
#include "common/file_descriptor.h"
#include "common/openssl.h"

namespace ocsp::importer {
namespace {

constexpr long kMaxRedirects = 3;
constexpr std::size_t kReadChunkBytes = std::size_t{1} << 20;
constexpr const char* kStateFileName = "sync-state.json";
constexpr const char* kLockFileName = "sync.lock";
constexpr const char* kIncomingDirectoryName = "incoming";

std::string ErrnoText(int error) { return std::strerror(error); }

// Returns 0 or the errno of the failed write.
int WriteAll(int fd, const char* data, std::size_t length) {
  while (length > 0) {
    const ssize_t written = ::write(fd, data, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    length -= static_cast<std::size_t>(written);
  }
  return 0;
}

// SHA-256 over data that arrives in pieces (a download, a file read in chunks).
class Sha256Hasher {
 public:
  Sha256Hasher() : context_(EVP_MD_CTX_new()) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) context_.reset();
  }
  [[nodiscard]] bool valid() const { return context_ != nullptr; }
  void Update(const void* data, std::size_t length) { EVP_DigestUpdate(context_.get(), data, length); }
  store::Sha256 Finish() {
    store::Sha256 digest{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(context_.get(), digest.data(), &length);
    return digest;
  }

 private:
  UniquePtr<EVP_MD_CTX> context_;
};

// ---- fetching ------------------------------------------------------------------------------------------------

Result<void> InitCurlOnce() {
  // curl_global_init must run once before any handle exists and is never undone: the process is short-lived.
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    return Fail(ErrorCode::kInternal, std::string("curl_global_init: ") + curl_easy_strerror(code));
  }
  return {};
}

// Where libcurl's write callback puts the body, and what it found out on the way.
struct Download {
  int fd = -1;
  std::size_t max_bytes = 0;
  std::uint64_t bytes = 0;
  bool too_large = false;
  int write_error = 0;
  Sha256Hasher hash;
};

std::size_t WriteBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto& download = *static_cast<Download*>(user);
  const std::size_t length = size * count;
  // The server's Content-Length (CURLOPT_MAXFILESIZE_LARGE) may be absent or lie: count what actually arrives.
  if (length > download.max_bytes - download.bytes) {
    download.too_large = true;
    return 0;  // anything but `length` aborts the transfer
  }
  if (const int error = WriteAll(download.fd, data, length); error != 0) {
    download.write_error = error;
    return 0;
  }
  download.hash.Update(data, length);
  download.bytes += length;
  return length;
}

std::string ResponseHeader(CURL* curl, const char* name) {
  curl_header* header = nullptr;
  // Request -1 is the last one, after redirects: its validators are the ones that describe the body.
  if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &header) != CURLHE_OK || header == nullptr) return {};
  return header->value;
}

bool IsSafeHeaderValue(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

std::string ToLower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
  return text;
}

// ---- directory sources ---------------------------------------------------------------------------------------

// The form a directory takes in state keys: absolute, normalised, no trailing slash; the parent_path() of the
// keys of its files.
std::string DirectoryKey(const std::filesystem::path& directory) {
  std::error_code error;
  std::filesystem::path normal = std::filesystem::absolute(directory, error).lexically_normal();
  if (error) normal = directory.lexically_normal();
  if (!normal.has_filename() && normal.has_relative_path()) normal = normal.parent_path();
  return normal.string();
}

bool IsCrlFileName(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  if (name.empty() || name.front() == '.') return false;  // editors' and rsync's temporary files
  const std::string extension = ToLower(path.extension().string());
  return extension == ".crl" || extension == ".der" || extension == ".pem";
}

struct FileDigest {
  std::uint64_t bytes = 0;
  store::Sha256 sha256{};
};

Result<FileDigest> HashFile(const std::filesystem::path& path, std::size_t max_bytes) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrorCode::kIo, "cannot open " + path.string() + ": " + ErrnoText(errno));
  Sha256Hasher hash;
  if (!hash.valid()) return Fail(ErrorCode::kCrypto, "SHA-256: " + DrainOpenSslErrors());
  std::vector<char> buffer(kReadChunkBytes);
  FileDigest digest;
  for (;;) {
    const ssize_t got = ::read(fd.get(), buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrorCode::kIo, "cannot read " + path.string() + ": " + ErrnoText(errno));
    }
    if (got == 0) break;
    digest.bytes += static_cast<std::uint64_t>(got);
    if (digest.bytes > max_bytes) {  // it grew after the size check
      return Fail(ErrorCode::kRefused,
                  path.string() + " is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
    hash.Update(buffer.data(), static_cast<std::size_t>(got));
  }
  digest.sha256 = hash.Finish();
  return digest;
}

// ---- the state file ------------------------------------------------------------------------------------------

void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;  // other bytes as they are: the reader takes them back unchanged
        }
    }
  }
  out += '"';
}

std::string StateToJson(const SyncState& state) {
  std::string out = "{\n  \"format\": 1,\n  \"sources\": {";
  bool first = true;
  for (const auto& [key, entry] : state) {
    out += first ? "\n    " : ",\n    ";
    first = false;
    AppendJsonString(out, key);
    out += ": {\"etag\": ";
    AppendJsonString(out, entry.validators.etag);
    out += ", \"last_modified\": ";
    AppendJsonString(out, entry.validators.last_modified);
    out += ", \"sha256\": \"" + ToHex(entry.sha256) + "\", \"imported_at\": " + std::to_string(entry.imported_at) +
           "}";
  }
  out += state.empty() ? "}\n}\n" : "\n  }\n}\n";
  return out;
}

// A reader for exactly the JSON the state file uses: objects, strings and integers.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  Result<void> ExpectEnd() {
    SkipSpace();
    if (position_ != text_.size()) return Malformed("trailing data");
    return {};
  }

  // Reads `{ "key": value, ... }`, calling `member` with each key to read its value.
  Result<void> Object(const std::function<Result<void>(const std::string& key)>& member) {
    if (!Consume('{')) return Malformed("expected {");
    if (Consume('}')) return {};
    for (;;) {
      auto key = String();
      if (!key) return std::unexpected(key.error());
      if (!Consume(':')) return Malformed("expected :");
      if (auto value = member(*key); !value) return value;
      if (Consume('}')) return {};
      if (!Consume(',')) return Malformed("expected , or }");
    }
  }

  Result<std::string> String() {
    if (!Consume('"')) return Malformed("expected a string");
    std::string out;
    while (position_ < text_.size()) {
      const char c = text_[position_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Malformed("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (position_ >= text_.size()) break;
      const char escaped = text_[position_++];
      switch (escaped) {
        case '"': case '\\': case '/': out += escaped; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto code = CodeUnit();
          if (!code) return std::unexpected(code.error());
          std::uint32_t point = *code;
          if (point >= 0xd800 && point <= 0xdbff) {  // a surrogate pair
            if (!Consume('\\', false) || !Consume('u', false)) return Malformed("lone surrogate");
            auto low = CodeUnit();
            if (!low) return std::unexpected(low.error());
            if (*low < 0xdc00 || *low > 0xdfff) return Malformed("bad surrogate pair");
            point = 0x10000 + ((point - 0xd800) << 10) + (*low - 0xdc00);
          }
          AppendUtf8(out, point);
          break;
        }
        default: return Malformed("bad escape");
      }
    }
    return Malformed("unterminated string");
  }

  Result<std::int64_t> Integer() {
    SkipSpace();
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text_.data() + position_, text_.data() + text_.size(), value);
    if (ec != std::errc()) return Malformed("expected an integer");
    position_ = static_cast<std::size_t>(end - text_.data());
    return value;
  }

  std::unexpected<Error> Malformed(std::string_view what) const {
    return Fail(ErrorCode::kInvalidArgument, std::string(what) + " at byte " + std::to_string(position_));
  }

 private:
  void SkipSpace() {
    while (position_ < text_.size() &&
           (text_[position_] == ' ' || text_[position_] == '\n' || text_[position_] == '\r' ||
            text_[position_] == '\t')) {
      ++position_;
    }
  }
  bool Consume(char c, bool skip_space = true) {
    if (skip_space) SkipSpace();
    if (position_ < text_.size() && text_[position_] == c) {
      ++position_;
      return true;
    }
    return false;
  }
  Result<std::uint32_t> CodeUnit() {
    if (text_.size() - position_ < 4) return Malformed("short \\u escape");
    std::uint32_t value = 0;
    const auto [end, ec] = std::from_chars(text_.data() + position_, text_.data() + position_ + 4, value, 16);
    if (ec != std::errc() || end != text_.data() + position_ + 4) return Malformed("bad \\u escape");
    position_ += 4;
    return value;
  }
  static void AppendUtf8(std::string& out, std::uint32_t point) {
    if (point < 0x80) {
      out += static_cast<char>(point);
    } else if (point < 0x800) {
      out += static_cast<char>(0xc0 | (point >> 6));
      out += static_cast<char>(0x80 | (point & 0x3f));
    } else if (point < 0x10000) {
      out += static_cast<char>(0xe0 | (point >> 12));
      out += static_cast<char>(0x80 | ((point >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (point & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (point >> 18));
      out += static_cast<char>(0x80 | ((point >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((point >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (point & 0x3f));
    }
  }

  std::string_view text_;
  std::size_t position_ = 0;
};

std::optional<store::Sha256> Sha256FromHex(std::string_view hex) {
  store::Sha256 digest{};
  if (hex.size() != digest.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, digest[i], 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
  }
  return digest;
}

Result<SyncState> StateFromJson(std::string_view text) {
  JsonReader reader(text);
  SyncState state;
  bool format_seen = false;
  auto entry_member = [&](SourceState& entry, const std::string& key) -> Result<void> {
    if (key == "imported_at") {
      auto value = reader.Integer();
      if (!value) return std::unexpected(value.error());
      entry.imported_at = *value;
      return {};
    }
    auto value = reader.String();
    if (!value) return std::unexpected(value.error());
    if (key == "etag") {
      entry.validators.etag = std::move(*value);
    } else if (key == "last_modified") {
      entry.validators.last_modified = std::move(*value);
    } else if (key == "sha256") {
      auto digest = Sha256FromHex(*value);
      if (!digest) return reader.Malformed("sha256 is not 64 hex digits");
      entry.sha256 = *digest;
    } else {
      return reader.Malformed("unknown key \"" + key + "\"");
    }
    return {};
  };
  auto top_member = [&](const std::string& key) -> Result<void> {
    if (key == "format") {
      auto format = reader.Integer();
      if (!format) return std::unexpected(format.error());
      if (*format != 1) return reader.Malformed("format " + std::to_string(*format) + " is not 1");
      format_seen = true;
      return {};
    }
    if (key == "sources") {
      return reader.Object([&](const std::string& source) -> Result<void> {
        SourceState& entry = state[source];
        return reader.Object([&](const std::string& field) { return entry_member(entry, field); });
      });
    }
    return reader.Malformed("unknown key \"" + key + "\"");
  };
  if (auto read = reader.Object(top_member); !read) return std::unexpected(read.error());
  if (auto end = reader.ExpectEnd(); !end) return std::unexpected(end.error());
  if (!format_seen) return Fail(ErrorCode::kInvalidArgument, "no \"format\"");
  return state;
}

// ---- sync ----------------------------------------------------------------------------------------------------

bool IsRefusal(ErrorCode code) {
  return code == ErrorCode::kInvalidArgument || code == ErrorCode::kRefused ||
         code == ErrorCode::kVerificationFailed;
}

// Held for the whole sync: a second `ocspctl sync` (a timer and an operator) must not share incoming/ and
// the state file. flock() is released by the kernel if the process dies.
Result<FileDescriptor> LockSync(const std::filesystem::path& store_directory) {
  const std::filesystem::path path = store_directory / kLockFileName;
  FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Fail(ErrorCode::kIo, "cannot open " + path.string() + ": " + ErrnoText(errno));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Fail(ErrorCode::kUnavailable, "another sync of " + store_directory.string() + " is running");
    }
    return Fail(ErrorCode::kIo, "cannot lock " + path.string() + ": " + ErrnoText(errno));
  }
  return fd;
}

// Creates incoming/ with mode 0700 (downloads are not for other users' eyes) and empties it: whatever is left
// there comes from a sync that died, and we hold the lock.
Result<std::filesystem::path> PrepareIncoming(const std::filesystem::path& store_directory) {
  const std::filesystem::path incoming = store_directory / kIncomingDirectoryName;
  std::error_code error;
  std::filesystem::create_directories(incoming, error);
  if (!error) std::filesystem::permissions(incoming, std::filesystem::perms::owner_all, error);
  std::vector<std::filesystem::path> leftovers;
  for (std::filesystem::directory_iterator entry(incoming, error), end; !error && entry != end;
       entry.increment(error)) {
    leftovers.push_back(entry->path());
  }
  for (const auto& path : leftovers) {
    if (!error) std::filesystem::remove_all(path, error);
  }
  if (error) return Fail(ErrorCode::kIo, "cannot prepare " + incoming.string() + ": " + error.message());
  return incoming;
}

// Removes the downloads of one issuer when its import is over, whichever way it ended.
class IncomingFiles {
 public:
  IncomingFiles() = default;
  IncomingFiles(const IncomingFiles&) = delete;
  IncomingFiles& operator=(const IncomingFiles&) = delete;
  ~IncomingFiles() {
    for (const auto& path : paths_) {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  }
  void Add(std::filesystem::path path) { paths_.push_back(std::move(path)); }

 private:
  std::vector<std::filesystem::path> paths_;
};

// A changed file waiting for its issuer's import.
struct PendingFile {
  std::size_t report_index = 0;
  std::string state_key;
  SourceState state;
  ImportInput input;
};

class SyncRun {
 public:
  SyncRun(const config::Config& config, store::Store& store, const std::filesystem::path& store_directory,
          const Clock& clock, const ImportOptions& options, const ProgressSink& progress)
      : config_(config),
        store_(store),
        store_directory_(store_directory),
        clock_(clock),
        options_(options),
        progress_(progress),
        sync_options_(SyncOptionsFrom(config)),
        state_file_(store_directory / kStateFileName) {}

  Result<SyncReport> Run() {
    auto lock = LockSync(store_directory_);
    if (!lock) return std::unexpected(lock.error());
    auto incoming = PrepareIncoming(store_directory_);
    if (!incoming) return std::unexpected(incoming.error());
    incoming_ = *incoming;
    LoadState();
    fetcher_ = Fetcher::Create(sync_options_);

    std::vector<std::string> issuer_order;
    for (const config::SourceConfig& source : config_.sources) {
      if (std::find(issuer_order.begin(), issuer_order.end(), source.issuer) == issuer_order.end()) {
        issuer_order.push_back(source.issuer);
      }
    }
    for (const std::string& issuer : issuer_order) SyncIssuer(issuer);

    if (PruneState() || state_dirty_) SaveState();
    return std::move(report_);
  }

 private:
  void LoadState() {
    std::error_code error;
    if (!std::filesystem::exists(state_file_, error)) return;  // the first sync
    auto state = ReadSyncState(state_file_);
    if (state) {
      state_ = std::move(*state);
    } else {
      report_.warnings.push_back(state.error().message + "; fetching every source again");
      state_dirty_ = true;  // replace the unreadable file
    }
  }

  void SaveState() {
    if (auto saved = WriteSyncState(state_file_, state_); !saved) {
      // The imports stand; the next sync fetches their files again and finds them already held.
      report_.warnings.push_back(saved.error().message);
    } else {
      state_dirty_ = false;
    }
  }

  // Forgets files that left their directory and sources that left the configuration. Entries of sources
  // that could not be listed this time are kept: they are unknown, not gone.
  bool PruneState() {
    return std::erase_if(state_, [&](const auto& item) {
             const std::string& key = item.first;
             if (live_keys_.contains(key)) return false;
             return !unlisted_directories_.contains(std::filesystem::path(key).parent_path().string());
           }) > 0;
  }

  std::size_t AddReport(const std::string& issuer, std::string source, SourceOutcome outcome,
                        std::string reason = {}) {
    report_.sources.push_back(SourceReport{issuer, std::move(source), outcome, std::move(reason), 0, {}});
    return report_.sources.size() - 1;
  }

  void SyncIssuer(const std::string& name) {
    std::vector<std::size_t> source_indexes;
    for (std::size_t i = 0; i < config_.sources.size(); ++i) {
      if (config_.sources[i].issuer == name) source_indexes.push_back(i);
    }
    auto fail_all = [&](const std::string& reason) {
      for (const std::size_t i : source_indexes) {
        const config::SourceConfig& source = config_.sources[i];
        if (!source.url.empty()) {
          live_keys_.insert(source.url);
        } else {
          unlisted_directories_.insert(DirectoryKey(source.directory));
        }
        AddReport(name, source.Location(), SourceOutcome::kImportFailed, reason);
      }
    };
    const auto issuer =
        std::find_if(config_.issuers.begin(), config_.issuers.end(),
                     [&](const config::IssuerConfig& candidate) { return candidate.name == name; });
    if (issuer == config_.issuers.end()) return fail_all("no [[issuer]] is named \"" + name + "\"");
    // Before any download: without the certificate nothing fetched could be imported.
    auto certificate = LoadCertificate(issuer->certificate);
    if (!certificate) return fail_all("issuer certificate: " + certificate.error().message);

    IncomingFiles downloads;
    std::vector<PendingFile> pending;
    for (const std::size_t i : source_indexes) {
      const config::SourceConfig& source = config_.sources[i];
      if (!source.url.empty()) {
        FetchUrl(name, source.url, incoming_ / ("source-" + std::to_string(i) + ".download"), downloads,
                 pending);
      } else {
        ScanDirectory(name, source.directory, pending);
      }
    }
    if (!pending.empty()) ImportPending(name, certificate->get(), pending);
  }

  void FetchUrl(const std::string& issuer, const std::string& url, const std::filesystem::path& destination,
                IncomingFiles& downloads, std::vector<PendingFile>& pending) {
    live_keys_.insert(url);
    if (!fetcher_) {
      AddReport(issuer, url, SourceOutcome::kFetchFailed, fetcher_.error().message);
      return;
    }
    const auto known = state_.find(url);
    const HttpValidators previous = known == state_.end() ? HttpValidators{} : known->second.validators;
    downloads.Add(destination);
    auto fetched = fetcher_->Fetch(url, previous, destination);
    if (!fetched) {
      AddReport(issuer, url, SourceOutcome::kFetchFailed, fetched.error().message);
      return;
    }
    if (fetched->not_modified) {
      AddReport(issuer, url, SourceOutcome::kNotModified);
      return;
    }
    const std::size_t index = AddReport(issuer, url, SourceOutcome::kUnchanged);
    report_.sources[index].bytes = fetched->bytes;
    report_.sources[index].sha256 = fetched->sha256;
    if (known != state_.end() && known->second.sha256 == fetched->sha256) {
      // The server did not honour the condition, or its validators changed: keep the new ones so that the
      // next request can be answered with 304. The content itself was imported before.
      if (known->second.validators.etag != fetched->validators.etag ||
          known->second.validators.last_modified != fetched->validators.last_modified) {
        known->second.validators = fetched->validators;
        state_dirty_ = true;
      }
      return;
    }
    pending.push_back(PendingFile{index, url, SourceState{fetched->validators, fetched->sha256, 0},
                                  ImportInput{destination, url}});
  }

  void ScanDirectory(const std::string& issuer, const std::filesystem::path& directory,
                     std::vector<PendingFile>& pending) {
    auto files = ListDirectorySource(directory, sync_options_.max_bytes);
    if (!files || files->empty()) {
      unlisted_directories_.insert(DirectoryKey(directory));
      AddReport(issuer, directory.string(), SourceOutcome::kFetchFailed,
                files ? "no *.crl, *.der or *.pem file in " + directory.string() : files.error().message);
      return;
    }
    for (const DirectoryFile& file : *files) {
      const std::string key = file.path.string();
      live_keys_.insert(key);
      const std::size_t index = AddReport(issuer, key, SourceOutcome::kUnchanged);
      report_.sources[index].bytes = file.bytes;
      report_.sources[index].sha256 = file.sha256;
      const auto known = state_.find(key);
      if (known != state_.end() && known->second.sha256 == file.sha256) continue;
      pending.push_back(PendingFile{index, key, SourceState{{}, file.sha256, 0}, ImportInput{file.path, key}});
    }
  }

  void ImportPending(const std::string& issuer, const X509* certificate, std::vector<PendingFile>& pending) {
    std::vector<ImportInput> inputs;
    inputs.reserve(pending.size());
    for (const PendingFile& file : pending) inputs.push_back(file.input);

    Importer importer(store_, store_directory_, clock_, options_);
    auto imported = importer.Import(certificate, inputs, progress_);
    IssuerSyncReport issuer_report{issuer, std::nullopt, std::nullopt};
    if (!imported) {
      const SourceOutcome outcome =
          IsRefusal(imported.error().code) ? SourceOutcome::kRefused : SourceOutcome::kImportFailed;
      for (const PendingFile& file : pending) {
        report_.sources[file.report_index].outcome = outcome;
        report_.sources[file.report_index].reason = imported.error().Describe();
      }
      issuer_report.error = imported.error();
      report_.issuers.push_back(std::move(issuer_report));
      return;
    }
    const UnixSeconds now = clock_.Now();
    for (PendingFile& file : pending) {
      const auto file_report =
          std::find_if(imported->files.begin(), imported->files.end(),
                       [&](const FileReport& candidate) { return candidate.source == file.input.source; });
      const bool already_held = file_report != imported->files.end() && file_report->unchanged;
      report_.sources[file.report_index].outcome =
          already_held ? SourceOutcome::kUnchanged : SourceOutcome::kImported;
      file.state.imported_at = now;
      state_[file.state_key] = file.state;
    }
    issuer_report.import = std::move(*imported);
    report_.issuers.push_back(std::move(issuer_report));
    state_dirty_ = true;
    SaveState();  // now, not at the end: a later crash must not make this issuer's files look new again
  }

  const config::Config& config_;
  store::Store& store_;
  const std::filesystem::path& store_directory_;
  const Clock& clock_;
  const ImportOptions& options_;
  const ProgressSink& progress_;
  const SyncOptions sync_options_;
  const std::filesystem::path state_file_;

  std::filesystem::path incoming_;
  Result<Fetcher> fetcher_ = Fail(ErrorCode::kInternal, "no fetcher");
  SyncState state_;
  bool state_dirty_ = false;
  std::set<std::string> live_keys_;             // state keys seen in this sync
  std::set<std::string> unlisted_directories_;  // directory sources whose files are unknown this time
  SyncReport report_;
};

}  // namespace

SyncOptions SyncOptionsFrom(const config::Config& config) {
  return SyncOptions{config.sync.max_bytes, config.sync.connect_timeout_seconds, config.sync.timeout_seconds};
}

ImportOptions ImportOptionsFrom(const config::Config& config) {
  ImportOptions options;
  options.max_clock_skew_seconds = config.import_max_clock_skew_seconds;
  options.max_shrink_fraction = config.import_max_shrink_fraction;
  options.archive_directory = config.import_archive_directory;
  options.archive_retention_seconds = UnixSeconds{config.import_archive_retention_days} * 86400;
  return options;
}

Result<Fetcher> Fetcher::Create(const SyncOptions& options) {
  if (auto init = InitCurlOnce(); !init) return std::unexpected(init.error());
  CurlEasyPtr curl(curl_easy_init());
  if (!curl) return Fail(ErrorCode::kInternal, "curl_easy_init failed");
  return Fetcher(std::move(curl), options);
}

Result<FetchResult> Fetcher::Fetch(const std::string& url, const HttpValidators& previous,
                                   const std::filesystem::path& destination) {
  CURL* curl = curl_.get();

  // Conditional GET. The validators are sent back verbatim, as RFC 9110 asks; ones that could split a header
  // (a hostile or broken server's) are not sent at all.
  CurlSlistPtr headers;
  auto add_header = [&](const std::string& name, const std::string& value) {
    if (value.empty() || !IsSafeHeaderValue(value)) return true;
    curl_slist* list = curl_slist_append(headers.get(), (name + ": " + value).c_str());
    if (list == nullptr) return false;
    if (!headers) headers.reset(list);  // the first append creates the list, later ones extend it in place
    return true;
  };
  if (!add_header("If-None-Match", previous.etag) || !add_header("If-Modified-Since", previous.last_modified)) {
    return Fail(ErrorCode::kInternal, url + ": out of memory");
  }

  Download download;
  download.max_bytes = options_.max_bytes;
  if (!download.hash.valid()) return Fail(ErrorCode::kCrypto, "SHA-256: " + DrainOpenSslErrors());
  FileDescriptor file(::open(destination.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!file.valid()) {
    return Fail(ErrorCode::kIo, url + ": cannot create " + destination.string() + ": " + ErrnoText(errno));
  }
  download.fd = file.get();
  // Whatever goes wrong from here, no partial download stays behind.
  auto fail = [&](ErrorCode code, const std::string& cause) {
    std::error_code ignored;
    std::filesystem::remove(destination, ignored);
    return Fail(code, url + ": " + cause);
  };

  char error_text[CURL_ERROR_SIZE] = {};
  // The handle must not keep pointers to this frame's header list, buffer and download once it returns.
  struct ForgetOptions {
    CURL* curl;
    ~ForgetOptions() { curl_easy_reset(curl); }
  } forget_options{curl};
  CURLcode setup = CURLE_OK;
  auto set = [&](CURLoption option, auto value) {
    if (setup == CURLE_OK) setup = curl_easy_setopt(curl, option, value);
  };
  set(CURLOPT_URL, url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");  // a redirect to file:// or ftp:// is refused
  set(CURLOPT_FOLLOWLOCATION, 1L);
  set(CURLOPT_MAXREDIRS, kMaxRedirects);
  set(CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_seconds);
  set(CURLOPT_TIMEOUT, options_.total_timeout_seconds);
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_bytes));
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  set(CURLOPT_NOSIGNAL, 1L);       // timeouts without SIGALRM: safe in a threaded process
  set(CURLOPT_FAILONERROR, 1L);    // an error page is not a CRL: stop at the status line
  set(CURLOPT_USERAGENT, "ocsp-responder-sync");
  set(CURLOPT_HTTPHEADER, headers.get());
  set(CURLOPT_ERRORBUFFER, error_text);
  set(CURLOPT_WRITEFUNCTION, &WriteBody);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&download));
  if (setup != CURLE_OK) {
    return fail(ErrorCode::kInternal, std::string("curl option: ") + curl_easy_strerror(setup));
  }

  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  const char* effective_url = nullptr;
  curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &effective_url);
  const std::string redirected =
      effective_url != nullptr && url != effective_url ? std::string(" (redirected to ") + effective_url + ")"
                                                       : std::string();
  if (download.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return fail(ErrorCode::kRefused, "larger than the limit of " + std::to_string(options_.max_bytes) +
                                         " bytes; download aborted" + redirected);
  }
  if (download.write_error != 0) {
    return fail(ErrorCode::kIo, "cannot write " + destination.string() + ": " + ErrnoText(download.write_error));
  }
  if (code == CURLE_HTTP_RETURNED_ERROR) {
    return fail(status == 404 || status == 410 ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                "HTTP status " + std::to_string(status) + redirected);
  }
  if (code != CURLE_OK) {
    // curl's error buffer has the details ("Failed to connect to ... port 80 after 3 ms: Connection
    // refused"); its generic text only when the buffer is empty.
    const std::string cause = error_text[0] != '\0' ? error_text : curl_easy_strerror(code);
    return fail(code == CURLE_UNSUPPORTED_PROTOCOL ? ErrorCode::kInvalidArgument : ErrorCode::kUnavailable,
                cause + redirected);
  }
  if (status == 304 && (!previous.etag.empty() || !previous.last_modified.empty())) {
    std::error_code ignored;
    std::filesystem::remove(destination, ignored);
    return FetchResult{true, previous, 0, {}};
  }
  if (status != 200) {
    return fail(ErrorCode::kUnavailable, "unexpected HTTP status " + std::to_string(status) + redirected);
  }
  if (const int error = file.Close(); error != 0) {
    return fail(ErrorCode::kIo, "cannot write " + destination.string() + ": " + ErrnoText(error));
  }
  FetchResult result;
  result.validators = {ResponseHeader(curl, "ETag"), ResponseHeader(curl, "Last-Modified")};
  result.bytes = download.bytes;
  result.sha256 = download.hash.Finish();
  return result;
}

Result<std::vector<DirectoryFile>> ListDirectorySource(const std::filesystem::path& directory,
                                                       std::size_t max_bytes) {
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  for (std::filesystem::directory_iterator entry(directory, error), end; !error && entry != end;
       entry.increment(error)) {
    std::error_code vanished;
    // is_regular_file follows symbolic links; a file that vanished meanwhile is skipped.
    if (IsCrlFileName(entry->path()) && entry->is_regular_file(vanished)) candidates.push_back(entry->path());
  }
  if (error) return Fail(ErrorCode::kIo, "cannot read directory " + directory.string() + ": " + error.message());

  std::vector<DirectoryFile> files;
  for (const std::filesystem::path& candidate : candidates) {
    std::filesystem::path path = std::filesystem::absolute(candidate, error).lexically_normal();
    if (error) path = candidate;
    const std::uintmax_t size = std::filesystem::file_size(path, error);
    if (error) return Fail(ErrorCode::kIo, "cannot stat " + path.string() + ": " + error.message());
    if (size > max_bytes) {
      return Fail(ErrorCode::kRefused, path.string() + " is larger than the limit of " +
                                           std::to_string(max_bytes) + " bytes (sync.max_bytes)");
    }
    auto digest = HashFile(path, max_bytes);
    if (!digest) return std::unexpected(digest.error());
    files.push_back(DirectoryFile{path, digest->bytes, digest->sha256});
  }
  std::sort(files.begin(), files.end(),
            [](const DirectoryFile& a, const DirectoryFile& b) { return a.path < b.path; });
  return files;
}

Result<SyncState> ReadSyncState(const std::filesystem::path& state_file) {
  auto data = ReadFile(state_file);
  if (!data) return std::unexpected(data.error());
  auto state = StateFromJson(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()));
  if (!state) return Fail(ErrorCode::kInvalidArgument, state_file.string() + ": " + state.error().message);
  return state;
}

Result<void> WriteSyncState(const std::filesystem::path& state_file, const SyncState& state) {
  const std::string text = StateToJson(state);
  std::filesystem::path temporary = state_file;
  temporary += ".tmp";
  auto fail = [&](const std::string& what, int error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    return Fail(ErrorCode::kIo, "cannot " + what + ": " + ErrnoText(error));
  };
  FileDescriptor file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!file.valid()) return fail("create " + temporary.string(), errno);
  if (const int error = WriteAll(file.get(), text.data(), text.size()); error != 0) {
    return fail("write " + temporary.string(), error);
  }
  // The rename must not reach the disk before the data it points to.
  if (::fsync(file.get()) != 0) return fail("fsync " + temporary.string(), errno);
  if (const int error = file.Close(); error != 0) return fail("write " + temporary.string(), error);
  if (::rename(temporary.c_str(), state_file.c_str()) != 0) return fail("rename to " + state_file.string(), errno);
  const std::filesystem::path parent = state_file.has_parent_path() ? state_file.parent_path() : ".";
  FileDescriptor directory(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory.valid()) ::fsync(directory.get());  // best effort: the rename itself is done
  return {};
}

std::string_view ToString(SourceOutcome outcome) {
  switch (outcome) {
    case SourceOutcome::kNotModified: return "not-modified";
    case SourceOutcome::kUnchanged: return "unchanged";
    case SourceOutcome::kImported: return "imported";
    case SourceOutcome::kRefused: return "refused";
    case SourceOutcome::kFetchFailed: return "fetch-failed";
    case SourceOutcome::kImportFailed: return "import-failed";
  }
  return "?";
}

bool SyncReport::any_refused() const {
  return std::any_of(sources.begin(), sources.end(),
                     [](const SourceReport& source) { return source.outcome == SourceOutcome::kRefused; });
}

bool SyncReport::any_failed() const {
  return std::any_of(sources.begin(), sources.end(), [](const SourceReport& source) {
    return source.outcome == SourceOutcome::kFetchFailed || source.outcome == SourceOutcome::kImportFailed;
  });
}

Result<SyncReport> Sync(const config::Config& config, store::Store& store,
                        const std::filesystem::path& store_directory, const Clock& clock,
                        const ImportOptions& options, const ProgressSink& progress) {
  return SyncRun(config, store, store_directory, clock, options, progress).Run();
}

}  // namespace ocsp::importer
