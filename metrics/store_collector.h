// Gauges of the status store and the import history, computed when /metrics is scraped: per issuer and
// partition the CRL number, thisUpdate, nextUpdate, seconds until nextUpdate, entries, whether a pinned
// partition is missing, the last import attempt, success and result; per issuer coverage, import attempts by
// result, holds kept and the last import's duration; the LMDB map's size and use and its reader slots.
//
// Cost per scrape: one short read transaction listing every issuer's partitions (about 1,900 records per JPKI
// CA; no entry is read), and only the lines appended to history.jsonl since the previous scrape, at most
// kMaxHistoryBytesPerScrape of them (the first scrape starts that far from the end). Series are exported only
// for partitions the store holds, so a refused file with an odd name cannot add label values.
// Thread safety: Collect may be called from any thread; calls are serialised by an internal mutex.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "store/store.h"

namespace ocsp::metrics {

// The label an issuer's series carry: the configured [[issuer]] name. An issuer in the store that the
// configuration does not name is labelled "key:<first 16 hex digits of its key hash>".
struct IssuerLabel {
  store::IssuerId id;
  std::string name;
};

inline constexpr std::uint64_t kMaxHistoryBytesPerScrape = std::uint64_t{16} << 20;

class StoreCollector : public prometheus::Collectable {
 public:
  StoreCollector(const store::Store& store, std::filesystem::path store_directory, std::vector<IssuerLabel> issuers,
                 const Clock& clock);

  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct PartitionImport {
    UnixSeconds last_attempt = 0;
    UnixSeconds last_success = 0;  // imported or unchanged
    std::string last_result;       // "imported", "unchanged", "refused"
  };
  struct IssuerImport {
    std::map<std::string, std::uint64_t> attempts;  // by result: three values
    std::uint64_t holds_kept = 0;
    double last_seconds = 0;
  };
  void ReadNewHistory() const;
  [[nodiscard]] std::string LabelOf(const std::string& key_hex) const;

  const store::Store& store_;
  const std::filesystem::path history_path_;
  const Clock& clock_;
  std::map<std::string, std::string> names_;  // key hash (hex) -> label

  mutable std::mutex mutex_;
  mutable std::uint64_t history_offset_ = 0;
  mutable std::uint64_t history_inode_ = 0;
  mutable std::string history_partial_;  // a line not yet complete
  mutable std::map<std::string, IssuerImport> imports_;  // by key hash (hex)
  mutable std::map<std::pair<std::string, std::string>, PartitionImport> partition_imports_;  // (key, partition)
};

}  // namespace ocsp::metrics
