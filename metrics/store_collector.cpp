#include "metrics/store_collector.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>

#include "common/file_descriptor.h"
#include "common/log.h"
#include "importer/import.h"
#include "metrics/families.h"

namespace ocsp::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;


// A CRL number as a float: exact up to 2^53, far beyond any CA's daily counter.
double NumberValue(const store::CrlNumber& number) {
  double value = 0;
  for (std::uint8_t byte : number.view()) value = value * 256 + byte;
  return value;
}

// The history names a complete CRL's partition "" (and a refused one's "complete CRL", as the store does).
std::string PartitionKey(const std::string& history_partition) {
  return history_partition.empty() ? std::string("complete CRL") : history_partition;
}

}  // namespace

StoreCollector::StoreCollector(const store::Store& store, std::filesystem::path store_directory,
                               std::vector<IssuerLabel> issuers, const Clock& clock)
    : store_(store), history_path_(std::move(store_directory) / "history.jsonl"), clock_(clock) {
  for (IssuerLabel& issuer : issuers) names_[issuer.id.hex()] = std::move(issuer.name);
}

std::string StoreCollector::LabelOf(const std::string& key_hex) const {
  if (auto found = names_.find(key_hex); found != names_.end()) return found->second;
  return "key:" + key_hex.substr(0, 16);
}

void StoreCollector::ReadNewHistory() const {
  FileDescriptor fd(::open(history_path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return;  // no import yet
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return;
  const auto size = static_cast<std::uint64_t>(info.st_size);
  if (info.st_ino != history_inode_ || size < history_offset_) {
    // A new or truncated file: start again.
    history_inode_ = info.st_ino;
    history_offset_ = 0;
    history_partial_.clear();
    imports_.clear();
    partition_imports_.clear();
  }
  bool skip_first_line = false;
  if (size - history_offset_ > kMaxHistoryBytesPerScrape) {
    // Too far behind (the first scrape of a long history): only the newest lines count.
    history_offset_ = size - kMaxHistoryBytesPerScrape;
    history_partial_.clear();
    skip_first_line = true;
  }
  std::string chunk(size - history_offset_, '\0');
  std::size_t got = 0;
  while (got < chunk.size()) {
    const ssize_t n = ::pread(fd.get(), chunk.data() + got, chunk.size() - got,
                              static_cast<off_t>(history_offset_ + got));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  chunk.resize(got);
  history_offset_ += got;
  std::string_view rest(chunk);
  if (skip_first_line) {
    const auto newline = rest.find('\n');
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  }
  while (!rest.empty()) {
    const auto newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      history_partial_ += rest;  // the importer is writing this line now
      break;
    }
    std::string line = std::move(history_partial_);
    history_partial_.clear();
    line += rest.substr(0, newline);
    rest.remove_prefix(newline + 1);
    auto record = importer::ParseHistoryLine(line);
    if (!record || record->issuer_key.empty()) continue;  // torn, or written before issuer_key existed
    IssuerImport& issuer = imports_[record->issuer_key];
    ++issuer.attempts[record->result];
    issuer.holds_kept += record->holds_kept;
    issuer.last_seconds = record->seconds;
    PartitionImport& partition = partition_imports_[{record->issuer_key, PartitionKey(record->partition)}];
    partition.last_attempt = record->at;
    partition.last_result = record->result;
    if (record->result != "refused") partition.last_success = record->at;
  }
}

std::vector<MetricFamily> StoreCollector::Collect() const {
  std::lock_guard lock(mutex_);
  ReadNewHistory();
  const UnixSeconds now = clock_.Now();
  Families f;

  auto& readable = f.Add("ocsp_store_readable", "1 when the last scrape could read the store, else 0",
                         MetricType::Gauge);
  auto& map_size = f.Add("ocsp_store_map_size_bytes", "LMDB map size: the most the store can grow to",
                         MetricType::Gauge);
  auto& map_used = f.Add("ocsp_store_map_used_bytes", "LMDB pages in use, in bytes", MetricType::Gauge);
  auto& readers_max = f.Add("ocsp_store_readers_max", "LMDB reader table slots", MetricType::Gauge);
  auto& readers_used = f.Add("ocsp_store_readers_used", "LMDB reader slots held now (every process)",
                             MetricType::Gauge);
  if (auto info = store_.GetMapInfo()) {
    Gauge(map_size, {}, static_cast<double>(info->map_size_bytes));
    Gauge(map_used, {}, static_cast<double>(info->used_bytes));
    Gauge(readers_max, {}, info->max_readers);
    Gauge(readers_used, {}, info->readers_used);
  }

  auto& complete = f.Add("ocsp_store_issuer_complete",
                         "1 when the issuer's CRL is complete (a full CRL, or every pinned partition held)",
                         MetricType::Gauge);
  auto& compromised = f.Add("ocsp_store_issuer_compromised", "1 when the CA's key is declared compromised",
                            MetricType::Gauge);
  auto& held = f.Add("ocsp_store_issuer_partitions_held", "Partitions with a CRL", MetricType::Gauge);
  auto& expected = f.Add("ocsp_store_issuer_partitions_expected", "Pinned partitions (0: not pinned)",
                         MetricType::Gauge);
  auto& missing_count = f.Add("ocsp_store_issuer_partitions_missing", "Pinned partitions without a CRL",
                              MetricType::Gauge);
  auto& issuer_entries = f.Add("ocsp_store_issuer_entries", "Revoked serials held for the issuer",
                               MetricType::Gauge);
  auto& issuer_next = f.Add("ocsp_store_issuer_next_update_timestamp_seconds",
                            "Earliest nextUpdate over the issuer's partitions", MetricType::Gauge);
  auto& number = f.Add("ocsp_store_crl_number", "CRL number of the partition's current CRL", MetricType::Gauge);
  auto& this_update = f.Add("ocsp_store_crl_this_update_timestamp_seconds", "thisUpdate of the current CRL",
                            MetricType::Gauge);
  auto& next_update = f.Add("ocsp_store_crl_next_update_timestamp_seconds", "nextUpdate of the current CRL",
                            MetricType::Gauge);
  auto& until_next = f.Add("ocsp_store_crl_time_to_next_update_seconds",
                           "Seconds until the current CRL's nextUpdate (negative once past)", MetricType::Gauge);
  auto& entries = f.Add("ocsp_store_crl_entries", "Entries of the partition after its current CRL",
                        MetricType::Gauge);
  auto& missing = f.Add("ocsp_store_partition_missing", "1 for a pinned partition without a CRL, else 0",
                        MetricType::Gauge);
  auto& last_attempt = f.Add("ocsp_importer_last_attempt_timestamp_seconds",
                             "When a CRL of the partition was last offered to the importer", MetricType::Gauge);
  auto& last_success = f.Add("ocsp_importer_last_success_timestamp_seconds",
                             "When a CRL of the partition was last imported or found unchanged", MetricType::Gauge);
  auto& last_result = f.Add("ocsp_importer_last_result",
                            "1 for the result of the partition's last import attempt", MetricType::Gauge);
  auto& attempts = f.Add("ocsp_importer_attempts_total", "CRL files offered to the importer, by result",
                         MetricType::Counter);
  auto& holds = f.Add("ocsp_importer_holds_kept_total",
                      "certificateHold entries a newer CRL dropped and the store kept revoked", MetricType::Counter);
  auto& duration = f.Add("ocsp_importer_last_duration_seconds", "Wall time of the issuer's last import call",
                         MetricType::Gauge);

  bool ok = false;
  if (auto txn = store_.BeginRead()) {
    if (auto issuers = store_.ListIssuers(txn->get())) {
      ok = true;
      for (const store::IssuerRecord& issuer : *issuers) {
        const std::string key = issuer.id.hex();
        const std::string name = LabelOf(key);
        const store::IssuerState& state = issuer.state;
        const store::Coverage& coverage = state.coverage;
        Gauge(complete, {{"issuer", name}}, coverage.complete ? 1 : 0);
        Gauge(compromised, {{"issuer", name}}, state.compromised_since ? 1 : 0);
        Gauge(held, {{"issuer", name}}, coverage.partitions_held);
        Gauge(expected, {{"issuer", name}}, coverage.partitions_expected);
        Gauge(issuer_entries, {{"issuer", name}}, static_cast<double>(coverage.entries));
        if (coverage.earliest_next_update) {
          Gauge(issuer_next, {{"issuer", name}}, static_cast<double>(*coverage.earliest_next_update));
        }
        auto partitions = store_.ListPartitions(txn->get(), state.issuer_no);
        if (!partitions) {
          ok = false;
          continue;
        }
        std::uint32_t missing_here = 0;
        for (const store::PartitionRecord& partition : *partitions) {
          const std::vector<ClientMetric::Label> labels{{"issuer", name}, {"partition", partition.name}};
          const bool is_missing = partition.expected && !partition.base;
          missing_here += is_missing ? 1 : 0;
          Gauge(missing, labels, is_missing ? 1 : 0);
          if (const auto& crl = partition.effective()) {
            Gauge(number, labels, NumberValue(crl->number));
            Gauge(this_update, labels, static_cast<double>(crl->this_update));
            if (crl->next_update) {
              Gauge(next_update, labels, static_cast<double>(*crl->next_update));
              Gauge(until_next, labels, static_cast<double>(*crl->next_update - now));
            }
            Gauge(entries, labels, static_cast<double>(crl->entry_count));
          }
          if (auto found = partition_imports_.find({key, partition.name}); found != partition_imports_.end()) {
            const PartitionImport& import = found->second;
            Gauge(last_attempt, labels, static_cast<double>(import.last_attempt));
            if (import.last_success != 0) Gauge(last_success, labels, static_cast<double>(import.last_success));
            auto with_result = labels;
            with_result.push_back({"result", import.last_result});
            Gauge(last_result, std::move(with_result), 1);
          }
        }
        Gauge(missing_count, {{"issuer", name}}, missing_here);
        const IssuerImport* import = nullptr;
        if (auto found = imports_.find(key); found != imports_.end()) import = &found->second;
        for (const char* result : {"imported", "unchanged", "refused"}) {
          std::uint64_t count = 0;
          if (import != nullptr) {
            if (auto it = import->attempts.find(result); it != import->attempts.end()) count = it->second;
          }
          Counter(attempts, {{"issuer", name}, {"result", result}}, static_cast<double>(count));
        }
        Counter(holds, {{"issuer", name}}, import != nullptr ? static_cast<double>(import->holds_kept) : 0);
        if (import != nullptr) Gauge(duration, {{"issuer", name}}, import->last_seconds);
      }
    }
  }
  if (!ok) Log(LogLevel::kWarning, "metrics_store_unreadable");
  Gauge(readable, {}, ok ? 1 : 0);
  return f.Take();
}

}  // namespace ocsp::metrics
