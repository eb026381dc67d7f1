// `ocspctl sync`: fetch the CRL sources named in the configuration and import what changed.
//
// A source ([[source]] in the configuration) is either a URL (http or https, fetched with libcurl) or a local
// directory (every regular *.crl, *.der, *.pem file in it, dot files excepted; case does not matter). Sync()
// visits every source, skips what has not changed since it was last imported (HTTP 304 to a conditional GET,
// or content with the same SHA-256), and hands the changed files of each issuer to ONE Importer::Import call,
// so an issuer's files switch together or not at all. A directory must therefore hold the issuer's current
// CRLs only (one full CRL, or one per partition), not an archive of old ones.
//
// What Sync remembers between runs lives in `<store_directory>/sync-state.json` (format below). A source's
// entry advances only when the import that carried its content succeeded, so a refused CRL is fetched and
// refused again at the next run (and keeps alerting) instead of being silently skipped.
// Downloads go to `<store_directory>/incoming/` (mode 0700) and are removed after their issuer's import.
// Directory files are imported in place, not copied: a file replaced between hashing and import is at worst
// imported again at the next run, and the importer recognises identical content.
// `<store_directory>/sync.lock` keeps two syncs of one store from running at once (the second is refused).
//
// sync-state.json, version 1: one JSON object; keys other than these are refused.
//   {
//     "format": 1,
//     "sources": {
//       "<URL, or absolute path of a file of a directory source>": {
//         "etag": "<ETag header of the last imported download, verbatim with its quotes; \"\" if none>",
//         "last_modified": "<Last-Modified header of that download; \"\" if none>",
//         "sha256": "<64 lower-case hex digits of the content last imported>",
//         "imported_at": <Unix seconds of that import>
//       }, ...
//     }
//   }
// It is rewritten atomically (temporary file, fsync, rename). If it cannot be read, Sync warns and fetches
// everything again: imports of content the store already holds are harmless.
//
// Thread safety: a Fetcher is one libcurl easy handle and belongs to one thread at a time. Sync() may run on
// any thread; the lock file keeps concurrent syncs of one store apart, across processes too.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "importer/import.h"
#include "store/store.h"

namespace ocsp::importer {

struct SyncOptions {
  std::size_t max_bytes = std::size_t{2} << 30;  // a larger download is aborted, a larger file skipped
  long connect_timeout_seconds = 10;
  long total_timeout_seconds = 600;  // one whole download, connection included
};

// From the [sync] and [import] tables.
SyncOptions SyncOptionsFrom(const config::Config& config);
ImportOptions ImportOptionsFrom(const config::Config& config);

struct CurlEasyDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// The validators of a download, sent back as If-None-Match and If-Modified-Since.
struct HttpValidators {
  std::string etag;
  std::string last_modified;
};

struct FetchResult {
  bool not_modified = false;  // HTTP 304: nothing was written
  HttpValidators validators;  // of the 200 response (empty strings for headers it did not send)
  std::uint64_t bytes = 0;
  store::Sha256 sha256{};     // of the body, hashed while it was written
};

// Downloads one URL at a time into a file. Keeps its connections open between fetches.
class Fetcher {
 public:
  static Result<Fetcher> Create(const SyncOptions& options);

  // GET `url` into `destination` (created with mode 0600, replaced if it exists). With `previous`
  // validators the request is conditional and a 304 is `not_modified`. Follows at most 3 redirects, to http
  // and https only; verifies TLS peers against the system's CAs. On any error `destination` is removed and
  // the message names the URL and the cause: the HTTP status, the size limit, or curl's own words.
  [[nodiscard]] Result<FetchResult> Fetch(const std::string& url, const HttpValidators& previous,
                                          const std::filesystem::path& destination);

 private:
  Fetcher(CurlEasyPtr curl, SyncOptions options) : curl_(std::move(curl)), options_(options) {}
  CurlEasyPtr curl_;
  SyncOptions options_;
};

// One regular file of a directory source, with the hash that decides whether it changed.
struct DirectoryFile {
  std::filesystem::path path;  // absolute
  std::uint64_t bytes = 0;
  store::Sha256 sha256{};
};

// The CRL files of a directory source, sorted by name. A file larger than `max_bytes` is an error naming it:
// better to stop than to import an issuer's partitions without one of them.
[[nodiscard]] Result<std::vector<DirectoryFile>> ListDirectorySource(const std::filesystem::path& directory,
                                                                     std::size_t max_bytes);

// What Sync remembers of one source (one URL, or one file of a directory).
struct SourceState {
  HttpValidators validators;
  store::Sha256 sha256{};
  UnixSeconds imported_at = 0;
};
using SyncState = std::map<std::string, SourceState>;  // keyed by URL or absolute file path

[[nodiscard]] Result<SyncState> ReadSyncState(const std::filesystem::path& state_file);
[[nodiscard]] Result<void> WriteSyncState(const std::filesystem::path& state_file, const SyncState& state);

enum class SourceOutcome {
  kNotModified,   // the server answered 304
  kUnchanged,     // same SHA-256 as the content last imported (or the store already held it)
  kImported,      // part of a successful import
  kRefused,       // the importer refused its issuer's files (the reason says which file and why)
  kFetchFailed,   // download or directory read failed
  kImportFailed,  // the import could not run: store, file system, the issuer's certificate
};
// "not-modified", "unchanged", "imported", "refused", "fetch-failed", "import-failed"
std::string_view ToString(SourceOutcome outcome);

struct SourceReport {
  std::string issuer;  // the [[issuer]] name
  std::string source;  // the URL, a file of a directory source, or the directory when it could not be read
  SourceOutcome outcome = SourceOutcome::kUnchanged;
  std::string reason;  // for refused and failed; empty otherwise
  std::uint64_t bytes = 0;               // fetched (0 when not modified or failed)
  std::optional<store::Sha256> sha256;  // of the content fetched
};

// An issuer that had changed files: what its single import did.
struct IssuerSyncReport {
  std::string issuer;
  std::optional<ImportReport> import;  // when the import succeeded
  std::optional<Error> error;          // when it was refused or failed
};

struct SyncReport {
  // Grouped by issuer (in the order the configuration first names them), each issuer's sources in
  // configuration order, a directory's files by name.
  std::vector<SourceReport> sources;
  std::vector<IssuerSyncReport> issuers;  // only issuers that had something to import
  std::vector<std::string> warnings;     // nothing failed, but an operator should know (unreadable state)

  [[nodiscard]] bool any_refused() const;
  [[nodiscard]] bool any_failed() const;  // a fetch or an import that could not run
  [[nodiscard]] bool ok() const { return !any_refused() && !any_failed(); }
};

// Fetches every configured source and imports what changed, issuer by issuer. A failing source or issuer does
// not stop the others; the report says what happened to each. The error result is for what stops the whole
// sync before it starts: another sync holds the lock, the incoming directory cannot be created.
[[nodiscard]] Result<SyncReport> Sync(const config::Config& config, store::Store& store,
                                      const std::filesystem::path& store_directory, const Clock& clock,
                                      const ImportOptions& options, const ProgressSink& progress = nullptr);

}  // namespace ocsp::importer
