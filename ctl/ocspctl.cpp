// ocspctl: the operator's command line for the status store.
//
// Exit codes (kExitCodes below, printed by --help): 0 done (or nothing to do), 1 the input was refused (a CRL
// failed a check), 2 bad usage or configuration, 3 the environment failed (store, file system, network).
// Output: text laid out for people on a terminal; --json prints one JSON document for scripts and monitoring.
// Commands: import, sync, status, lookup, history, partitions, compromise, check-config, presign; a function per
// command, wired in main.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <ctime>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/openssl.h"
#include "common/text.h"
#include "config/config.h"
#include "importer/import.h"
#include "importer/sync.h"
#include "responder/snapshot.h"
#include "responder/presigner.h"
#include "responder/authority.h"
#include "signer/signer.h"
#include "store/store.h"

namespace {

using namespace ocsp;

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitEnvironment = 3;
constexpr const char* kExitCodes =
    "Exit codes: 0 done (or nothing to do); 1 input refused (a CRL failed a check; the store is unchanged);\n"
    "2 bad usage or configuration; 3 environment failure (store, file system, network).\n";

int ExitCodeFor(const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kRefused:
    case ErrorCode::kVerificationFailed:
      return kExitRefused;
    default:
      return kExitEnvironment;
  }
}

std::string JsonTime(std::optional<UnixSeconds> seconds) {
  return seconds ? JsonQuote(IsoTime(*seconds)) : std::string("null");
}

// Where the store is and how imports behave, from --store or the configuration file.
struct Context {
  std::string config_path;
  std::string store_path;
  bool json = false;
  std::optional<config::Config> config;
  std::filesystem::path store_directory;
  std::size_t map_size_bytes = store::kDefaultMapSizeBytes;
  importer::ImportOptions import_options;

  Result<void> Resolve() {
    if (!config_path.empty()) {
      auto loaded = config::LoadConfig(config_path);
      if (!loaded) return std::unexpected(loaded.error());
      config = std::move(*loaded);
      map_size_bytes = config->map_size_bytes;
      import_options = importer::ImportOptionsFrom(*config);
      store_directory = config->store_path;
    }
    if (!store_path.empty()) store_directory = store_path;
    if (store_directory.empty()) {
      return Fail(ErrorCode::kInvalidArgument, "name the store with --store DIR or --config FILE");
    }
    if (!config) import_options.archive_directory = store_directory / "archive";
    return {};
  }

  Result<store::Store> Open(bool read_only) const {
    return store::Store::Open(store_directory, {map_size_bytes, read_only});
  }
};

int Report(const Error& error) {
  std::cerr << "ocspctl: " << error.Describe() << "\n";
  return ExitCodeFor(error);
}

int UsageError(const Error& error) {
  std::cerr << "ocspctl: " << error.message << "\n";
  return kExitUsage;
}

// A progress bar on a terminal; nothing otherwise.
class ProgressBar {
 public:
  ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressBar() {
    if (drawn_) std::cerr << "\r\033[K" << std::flush;
  }
  void Update(std::uint64_t done, std::uint64_t total) {
    if (!enabled_ || total == 0) return;
    const int percent = static_cast<int>(done * 100 / total);
    if (percent == last_percent_) return;
    last_percent_ = percent;
    const int filled = percent / 4;
    std::cerr << "\rimporting [" << std::string(static_cast<std::size_t>(filled), '#')
              << std::string(static_cast<std::size_t>(25 - filled), ' ') << "] " << percent << "%" << std::flush;
    drawn_ = true;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  int last_percent_ = -1;
};

void PrintImport(const importer::ImportReport& report, bool json) {
  std::uint64_t entries = 0;
  for (const auto& file : report.files) entries += file.entries;
  const double rate = report.seconds > 0 ? static_cast<double>(entries) / report.seconds : 0;
  if (json) {
    std::cout << "{\"issuer\":" << JsonQuote(report.issuer_name) << ",\"key\":" << JsonQuote(report.issuer.hex())
              << ",\"added\":" << report.added << ",\"removed\":" << report.removed << ",\"changed\":" << report.changed
              << ",\"unchanged\":" << report.unchanged << ",\"holds_kept\":" << report.holds_kept
              << ",\"entries\":" << entries << ",\"seconds\":" << report.seconds
              << ",\"entries_per_second\":" << static_cast<std::uint64_t>(rate) << ",\"files\":[";
    for (std::size_t i = 0; i < report.files.size(); ++i) {
      const auto& file = report.files[i];
      std::cout << (i ? "," : "") << "{\"source\":" << JsonQuote(file.source) << ",\"kind\":" << JsonQuote(importer::ToString(file.kind))
                << ",\"partition\":" << JsonQuote(file.partition) << ",\"number\":" << JsonQuote(file.number)
                << ",\"this_update\":" << JsonTime(file.this_update) << ",\"next_update\":" << JsonTime(file.next_update)
                << ",\"entries\":" << file.entries << ",\"sha256\":" << JsonQuote(ToHex(file.sha256))
                << ",\"result\":" << JsonQuote(file.unchanged ? "unchanged" : "imported") << "}";
    }
    std::cout << "],\"warnings\":[";
    for (std::size_t i = 0; i < report.warnings.size(); ++i) std::cout << (i ? "," : "") << JsonQuote(report.warnings[i]);
    std::cout << "]}\n";
    return;
  }
  for (const std::string& warning : report.warnings) std::cerr << "ocspctl: warning: " << warning << "\n";
  if (report.nothing_to_do()) {
    std::cout << "unchanged: " << report.files.size() << " CRL(s) of " << report.issuer_name
              << " already held (CRL " << (report.files.empty() ? "?" : report.files.front().number) << ")\n";
    return;
  }
  std::size_t imported = 0;
  for (const auto& file : report.files) imported += file.unchanged ? 0 : 1;
  std::ostringstream line;
  line.setf(std::ios::fixed);
  line.precision(2);
  line << "imported " << imported << " CRL(s) of " << report.issuer_name;
  if (report.files.size() == 1) line << " (CRL " << report.files.front().number << ")";
  line << ": added " << report.added << ", removed " << report.removed << ", changed " << report.changed
       << ", unchanged " << report.unchanged << "; " << entries << " entries in " << report.seconds << " s ("
       << static_cast<std::uint64_t>(rate) << " entries/s)";
  std::cout << line.str() << "\n";
}

int Import(Context& context, const std::string& issuer_path, const std::vector<std::string>& crl_paths,
           bool allow_expired, bool allow_shrink) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  auto issuer = LoadCertificate(issuer_path);
  if (!issuer) return Report(issuer.error());
  auto store = context.Open(false);
  if (!store) return Report(store.error());
  importer::ImportOptions options = context.import_options;
  options.allow_expired = allow_expired;
  options.allow_shrink = allow_shrink;
  std::vector<importer::ImportInput> inputs;
  for (const std::string& path : crl_paths) inputs.push_back({path, path});
  SystemClock clock;
  ProgressBar bar;
  importer::Importer importer(*store, context.store_directory, clock, options);
  auto report = importer.Import(issuer->get(), inputs,
                                [&](std::uint64_t done, std::uint64_t total) { bar.Update(done, total); });
  if (!report) {
    if (context.json) {
      std::cout << "{\"result\":\"refused\",\"reason\":" << JsonQuote(report.error().Describe()) << "}\n";
    }
    std::cerr << "ocspctl: refused, the store is unchanged: " << report.error().Describe() << "\n";
    return ExitCodeFor(report.error());
  }
  PrintImport(*report, context.json);
  return 0;
}

std::string SubjectOf(const Bytes& certificate_der) {
  auto certificate = ParseCertificate(certificate_der);
  if (!certificate) return "?";
  auto identity = store::IssuerIdentity::FromCertificate(certificate->get());
  return identity ? identity->subject_text : "?";
}

// The configured [[issuer]] whose CA has this key, and its responder certificate (the certificate only: status
// must work for whoever may read the store, not only for who may read the key).
struct SignerSummary {
  std::string name;
  std::string subject;
  std::optional<UnixSeconds> not_after;
};

std::optional<SignerSummary> SignerFor(const Context& context, const store::IssuerId& id) {
  if (!context.config) return std::nullopt;
  for (const config::IssuerConfig& issuer : context.config->issuers) {
    auto ca = LoadCertificate(issuer.certificate);
    if (!ca) continue;
    auto identity = store::IssuerIdentity::FromCertificate(ca->get());
    if (!identity || !(identity->id == id)) continue;
    // The responder certificate in use now: valid now, the latest notBefore (SignerSet::Active's rule), read
    // without the keys.
    SignerSummary summary{issuer.name, "?", std::nullopt};
    const UnixSeconds now = SystemClock().Now();
    std::optional<UnixSeconds> best_not_before;
    for (const config::ResponderConfig& responder_config : issuer.responders) {
      auto responder = LoadCertificate(responder_config.certificate);
      if (!responder) continue;
      auto not_before = ToUnixSeconds(X509_get0_notBefore(responder->get()));
      auto not_after = ToUnixSeconds(X509_get0_notAfter(responder->get()));
      if (!not_before || !not_after || *not_before > now || *not_after < now) continue;
      if (best_not_before && *best_not_before >= *not_before) continue;
      best_not_before = *not_before;
      summary.subject = NameText(X509_get_subject_name(responder->get()));
      summary.not_after = *not_after;
    }
    return summary;
  }
  return std::nullopt;
}

int Status(Context& context) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  auto store = context.Open(true);
  if (!store) return Report(store.error());
  auto txn = store->BeginRead();
  if (!txn) return Report(txn.error());
  auto issuers = store->ListIssuers(txn->get());
  if (!issuers) return Report(issuers.error());
  const UnixSeconds now = SystemClock().Now();
  std::error_code size_error;
  const auto store_bytes = std::filesystem::file_size(context.store_directory / "data.mdb", size_error);
  if (context.json) {
    std::cout << "{\"store\":" << JsonQuote(context.store_directory.string())
              << ",\"store_bytes\":" << (size_error ? 0 : store_bytes) << ",\"issuers\":[";
  } else {
    std::cout << "store " << context.store_directory.string() << ": " << issuers->size() << " issuer(s), "
              << (size_error                   ? std::string("size unknown")
                  : store_bytes < (1u << 20) ? std::to_string(store_bytes / 1024) + " KiB"
                                               : std::to_string(store_bytes >> 20) + " MiB")
              << "\n";
  }
  bool first = true;
  for (const store::IssuerRecord& record : *issuers) {
    const std::optional<SignerSummary> signer = SignerFor(context, record.id);
    const store::Coverage& coverage = record.state.coverage;
    const bool fresh = !coverage.earliest_next_update || *coverage.earliest_next_update > now;
    auto partitions = store->ListPartitions(txn->get(), record.state.issuer_no);
    if (!partitions) return Report(partitions.error());
    std::optional<store::CrlNumber> number;
    for (const auto& partition : *partitions) {
      if (partition.effective() && (!number || *number < partition.effective()->number)) number = partition.effective()->number;
    }
    if (context.json) {
      std::cout << (first ? "" : ",") << "{\"subject\":" << JsonQuote(SubjectOf(record.certificate_der))
                << ",\"key\":" << JsonQuote(record.id.hex()) << ",\"partitions_held\":" << coverage.partitions_held
                << ",\"partitions_expected\":" << coverage.partitions_expected
                << ",\"pinned\":" << (record.state.pinned ? "true" : "false")
                << ",\"complete\":" << (coverage.complete ? "true" : "false") << ",\"entries\":" << coverage.entries
                << ",\"highest_crl_number\":" << (number ? JsonQuote(number->ToString()) : "null")
                << ",\"oldest_this_update\":" << JsonTime(coverage.partitions_held ? std::optional(coverage.oldest_this_update) : std::nullopt)
                << ",\"earliest_next_update\":" << JsonTime(coverage.earliest_next_update)
                << ",\"fresh\":" << (fresh ? "true" : "false")
                << ",\"compromised_since\":" << JsonTime(record.state.compromised_since)
                << ",\"configured_as\":" << (signer ? JsonQuote(signer->name) : "null")
                << ",\"signer\":" << (signer ? JsonQuote(signer->subject) : "null")
                << ",\"signer_not_after\":" << JsonTime(signer ? signer->not_after : std::nullopt) << "}";
      first = false;
      continue;
    }
    std::cout << "issuer " << SubjectOf(record.certificate_der) << "\n  key " << record.id.hex() << "\n";
    if (signer) {
      std::cout << "  configured as " << signer->name << ", signed by " << signer->subject << " until "
                << (signer->not_after ? IsoTime(*signer->not_after) : "?")
                << (signer->not_after && *signer->not_after < now + 30 * 86400 ? " (EXPIRES WITHIN 30 DAYS)" : "")
                << "\n";
    } else if (context.config) {
      std::cout << "  not configured: the responder does not answer for it\n";
    }
    if (record.state.compromised_since) {
      std::cout << "  KEY COMPROMISED since " << IsoTime(*record.state.compromised_since)
                << ": every certificate is answered revoked\n";
    }
    if (partitions->empty()) {
      std::cout << "  no CRL imported: answers unknown\n";
      continue;
    }
    std::cout << "  " << coverage.partitions_held << " partition(s) held"
              << (record.state.pinned ? ", " + std::to_string(coverage.partitions_expected) + " expected (pinned)" : "")
              << ", coverage " << (coverage.complete ? "complete" : "INCOMPLETE (answers tryLater for unlisted serials)")
              << ", " << coverage.entries << " revoked\n";
    if (number) std::cout << "  highest CRL number " << number->ToString() << "\n";
    std::cout << "  oldest thisUpdate " << IsoTime(coverage.oldest_this_update) << ", earliest nextUpdate "
              << (coverage.earliest_next_update ? IsoTime(*coverage.earliest_next_update) : "none")
              << (fresh ? "" : " (EXPIRED: answers tryLater)") << "\n";
  }
  if (context.json) std::cout << "]}\n";
  return 0;
}

int History(Context& context, std::size_t limit) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  auto records = importer::ReadHistory(context.store_directory);
  if (!records) return Report(records.error());
  const std::size_t start = records->size() > limit ? records->size() - limit : 0;
  if (context.json) std::cout << "[";
  for (std::size_t i = start; i < records->size(); ++i) {
    const importer::HistoryRecord& r = (*records)[i];
    if (context.json) {
      std::cout << (i > start ? "," : "") << "{\"at\":" << JsonTime(r.at) << ",\"issuer\":" << JsonQuote(r.issuer)
                << ",\"source\":" << JsonQuote(r.source) << ",\"sha256\":" << JsonQuote(r.sha256) << ",\"kind\":" << JsonQuote(r.kind)
                << ",\"partition\":" << JsonQuote(r.partition) << ",\"number\":" << JsonQuote(r.number)
                << ",\"this_update\":" << JsonTime(r.this_update ? std::optional(r.this_update) : std::nullopt)
                << ",\"next_update\":" << JsonTime(r.next_update) << ",\"entries\":" << r.entries
                << ",\"result\":" << JsonQuote(r.result) << ",\"reason\":" << JsonQuote(r.reason) << "}";
      continue;
    }
    std::cout << IsoTime(r.at) << "  " << r.result << "  " << (r.kind.empty() ? "-" : r.kind) << " CRL "
              << (r.number.empty() ? "?" : r.number) << "  " << r.entries << " entries  "
              << (r.sha256.empty() ? "" : r.sha256.substr(0, 16) + "  ") << r.source;
    if (!r.partition.empty()) std::cout << "  [" << r.partition << "]";
    if (!r.reason.empty()) std::cout << "\n    " << r.reason;
    std::cout << "\n";
  }
  if (context.json) std::cout << "]\n";
  return 0;
}

Result<store::IssuerIdentity> IdentityOf(const std::string& path) {
  auto certificate = LoadCertificate(path);
  if (!certificate) return std::unexpected(certificate.error());
  return store::IssuerIdentity::FromCertificate(certificate->get());
}

int Partitions(Context& context, const std::string& issuer_path, bool pin, bool unpin) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  auto identity = IdentityOf(issuer_path);
  if (!identity) return Report(identity.error());
  auto store = context.Open(!(pin || unpin));
  if (!store) return Report(store.error());
  if (pin || unpin) {
    auto txn = store->BeginWrite();
    if (!txn) return Report(txn.error());
    auto issuer = store->GetIssuer(txn->get(), identity->id);
    if (!issuer) return Report(issuer.error());
    if (!*issuer) return Report(Error{ErrorCode::kNotFound, "the store holds no CRL of " + identity->subject_text});
    auto pinned = store->PinPartitions(*txn, **issuer, pin);
    if (!pinned) return Report(pinned.error());
    if (auto committed = txn->Commit(); !committed) return Report(committed.error());
    std::cout << (pin ? "pinned " + std::to_string(*pinned) + " partition(s) as expected for "
                      : std::string("unpinned the partitions of "))
              << identity->subject_text << "\n";
    return 0;
  }
  auto txn = store->BeginRead();
  if (!txn) return Report(txn.error());
  auto issuer = store->GetIssuerState(txn->get(), identity->id);
  if (!issuer) return Report(issuer.error());
  if (!*issuer) return Report(Error{ErrorCode::kNotFound, "the store holds no CRL of " + identity->subject_text});
  auto partitions = store->ListPartitions(txn->get(), (*issuer)->issuer_no);
  if (!partitions) return Report(partitions.error());
  if (context.json) std::cout << "[";
  for (std::size_t i = 0; i < partitions->size(); ++i) {
    const store::PartitionRecord& p = (*partitions)[i];
    const auto& current = p.effective();
    const char* scope = p.scope == store::PartitionScope::kAll ? "all" : p.scope == store::PartitionScope::kCaCerts ? "ca" : "user";
    if (context.json) {
      std::cout << (i ? "," : "") << "{\"name\":" << JsonQuote(p.name) << ",\"scope\":" << JsonQuote(scope)
                << ",\"expected\":" << (p.expected ? "true" : "false")
                << ",\"number\":" << (current ? JsonQuote(current->number.ToString()) : "null")
                << ",\"delta\":" << (p.delta ? JsonQuote(p.delta->number.ToString()) : "null")
                << ",\"this_update\":" << JsonTime(current ? std::optional(current->this_update) : std::nullopt)
                << ",\"next_update\":" << JsonTime(current ? current->next_update : std::nullopt)
                << ",\"entries\":" << (current ? current->entry_count : 0) << "}";
      continue;
    }
    std::cout << p.name << "  [" << scope << (p.expected ? ", expected" : "") << "]  ";
    if (current) {
      std::cout << "CRL " << (p.base ? p.base->number.ToString() : "?")
                << (p.delta ? " + delta " + p.delta->number.ToString() : "") << ", " << current->entry_count
                << " entries, nextUpdate " << (current->next_update ? IsoTime(*current->next_update) : "none");
    } else {
      std::cout << "MISSING";
    }
    std::cout << "\n";
  }
  if (context.json) std::cout << "]\n";
  return 0;
}

std::optional<UnixSeconds> ParseTime(const std::string& text) {
  std::tm parts{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<UnixSeconds>(timegm(&parts));
}

int Compromise(Context& context, const std::string& issuer_path, const std::string& since_text,
               const std::string& declared_by) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  const auto since = ParseTime(since_text);
  if (!since) return UsageError(Error{ErrorCode::kInvalidArgument, "--since takes YYYY-MM-DDTHH:MM:SSZ"});
  if (declared_by.empty()) return UsageError(Error{ErrorCode::kInvalidArgument, "--by names who declares it"});
  auto certificate = LoadCertificate(issuer_path);
  if (!certificate) return Report(certificate.error());
  auto identity = store::IssuerIdentity::FromCertificate(certificate->get());
  if (!identity) return Report(identity.error());
  auto store = context.Open(false);
  if (!store) return Report(store.error());
  auto txn = store->BeginWrite();
  if (!txn) return Report(txn.error());
  auto issuer = store->EnsureIssuer(*txn, *identity);
  if (!issuer) return Report(issuer.error());
  const store::CompromiseRecord record{*since, SystemClock().Now(), declared_by};
  if (auto set = store->SetCompromise(*txn, *issuer, record); !set) return Report(set.error());
  if (auto committed = txn->Commit(); !committed) return Report(committed.error());
  std::cout << "declared: the key of " << identity->subject_text << " is compromised since "
            << IsoTime(*issuer->state.compromised_since) << "; every certificate it issued is answered revoked "
            << "(cACompromise)\n";
  return 0;
}

// What the responder would answer for one serial of one configured issuer, decided by the responder's own
// StatusAuthority over the store, without signing. The only place ocspctl builds a StatusAuthority.
responder::Decision DecideWithoutSigning(const store::Store& store, const store::IssuerDirectory& issuers,
                                         const config::Config& config, MDB_txn* txn,
                                         const responder::DecodedRequest& request) {
  SystemClock clock;
  // No signer is loaded (lookup must not need the responder key); Decide only passes them through.
  std::vector<const signer::SignerSet*> no_signers(issuers.size(), nullptr);
  responder::StatusAuthority authority(store, issuers, std::move(no_signers), clock, config.next_update_grace_seconds,
                                       config.max_response_validity_seconds);
  return authority.Decide(txn, request);
}

// "0x1002", "1002", "10:02" (hex, as openssl prints serials) -> the minimal unsigned magnitude.
std::optional<Bytes> ParseSerial(std::string text) {
  if (text.starts_with("0x") || text.starts_with("0X")) text = text.substr(2);
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    digits.push_back(c);
  }
  if (digits.empty() || digits.size() > 40) return std::nullopt;
  if (digits.size() % 2) digits.insert(digits.begin(), '0');
  Bytes serial;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    serial.push_back(static_cast<std::uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  while (serial.size() > 1 && serial.front() == 0) serial.erase(serial.begin());
  return serial;
}

std::string_view CertStatusName(signer::CertStatus status) {
  switch (status) {
    case signer::CertStatus::kGood: return "good";
    case signer::CertStatus::kRevoked: return "revoked";
    case signer::CertStatus::kUnknown: return "unknown";
  }
  return "?";
}

std::string_view ExceptionName(signer::ResponseStatus status) {
  switch (status) {
    case signer::ResponseStatus::kMalformedRequest: return "malformedRequest";
    case signer::ResponseStatus::kInternalError: return "internalError";
    case signer::ResponseStatus::kTryLater: return "tryLater";
    case signer::ResponseStatus::kSigRequired: return "sigRequired";
    case signer::ResponseStatus::kUnauthorized: return "unauthorized";
    default: return "successful";
  }
}

// `ocspctl lookup SERIAL --issuer NAME`: exit 0 whatever the answer; 1 if the serial or issuer is not understood.
int Lookup(Context& context, const std::string& serial_text, const std::string& issuer_name) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  if (!context.config) return UsageError(Error{ErrorCode::kInvalidArgument, "lookup needs --config FILE: it names the issuers"});
  const auto serial = ParseSerial(serial_text);
  if (!serial) return UsageError(Error{ErrorCode::kInvalidArgument, "SERIAL is hexadecimal, e.g. 0x1002 or 10:02"});
  store::IssuerDirectory directory;
  std::optional<std::size_t> chosen;
  for (const config::IssuerConfig& issuer : context.config->issuers) {
    auto ca = LoadCertificate(issuer.certificate);
    if (!ca) return Report(Error{ca.error().code, "issuer " + issuer.name + ": " + ca.error().message});
    auto identity = store::IssuerIdentity::FromCertificate(ca->get());
    if (!identity) return Report(identity.error());
    auto index = directory.Add(std::move(*identity));
    if (!index) return Report(index.error());
    if (issuer.name == issuer_name) chosen = *index;
  }
  if (!chosen) {
    std::string names;
    for (const auto& issuer : context.config->issuers) names += (names.empty() ? "" : ", ") + issuer.name;
    return UsageError(Error{ErrorCode::kInvalidArgument, "no [[issuer]] named '" + issuer_name + "' (configured: " + names + ")"});
  }
  auto store = context.Open(true);
  if (!store) return Report(store.error());
  auto txn = store->BeginRead();
  if (!txn) return Report(txn.error());

  // The request a verifier would send: SHA-256 CertID of the chosen issuer, this serial, no nonce.
  const store::IssuerIdentity& identity = directory.at(*chosen);
  const auto& hashes = identity.HashesFor(store::HashAlgorithm::kSha256);
  responder::DecodedRequest request;
  request.certs.push_back({nullptr, store::HashAlgorithm::kSha256, hashes.name_hash, hashes.key_hash, *serial});
  const responder::Decision decision = DecideWithoutSigning(*store, directory, *context.config, txn->get(), request);

  std::string answer;
  std::string why;
  std::optional<signer::SingleAnswer> single;
  if (decision.exception) {
    answer = ExceptionName(*decision.exception);
    why = decision.reason + " (sent unsigned, never cached)";
  } else if (!decision.answers.empty()) {
    single = decision.answers.front();
    answer = CertStatusName(single->status);
    switch (single->status) {
      case signer::CertStatus::kRevoked:
        why = "listed since " + IsoTime(single->revocation_time) + ", reason " +
              (single->reason ? std::string(store::ToString(static_cast<store::Reason>(*single->reason))) : "none given") +
              (single->invalidity_date ? ", invalid since " + IsoTime(*single->invalidity_date) : "");
        break;
      case signer::CertStatus::kGood:
        why = "absent from every expected CRL partition of the issuer, all held and fresh";
        break;
      case signer::CertStatus::kUnknown:
        why = "no CRL of the issuer's end-entity certificates has been imported";
        break;
    }
  }
  const std::string serial_hex = ToHex(*serial);
  if (context.json) {
    std::cout << "{\"issuer\":" << JsonQuote(issuer_name) << ",\"serial\":" << JsonQuote(serial_hex)
              << ",\"answer\":" << JsonQuote(answer) << ",\"why\":" << JsonQuote(why)
              << ",\"this_update\":" << JsonTime(single ? std::optional(single->this_update) : std::nullopt)
              << ",\"next_update\":" << JsonTime(single ? single->next_update : std::nullopt)
              << ",\"cacheable_until\":" << JsonTime(decision.next_update) << "}\n";
    return 0;
  }
  std::cout << "issuer     " << issuer_name << " (" << identity.subject_text << ")\n"
            << "serial     0x" << serial_hex << "\n"
            << "answer     " << answer << "\n"
            << "why        " << why << "\n";
  if (single) {
    std::cout << "thisUpdate " << IsoTime(single->this_update) << "\n"
              << "nextUpdate " << (single->next_update ? IsoTime(*single->next_update) : "none") << "\n";
  }
  std::cout << "HTTP cache " << (decision.next_update ? "until " + IsoTime(*decision.next_update) : std::string("no")) << "\n";
  return 0;
}

// `ocspctl check-config`: what `ocsp-responder --check-config` checks, plus the store, as the current user.
// Exit 2 if the configuration or a certificate or key is refused, 3 if the store cannot be opened.
int CheckConfig(Context& context) {
  if (context.config_path.empty()) return UsageError(Error{ErrorCode::kInvalidArgument, "check-config needs --config FILE"});
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  const UnixSeconds now = SystemClock().Now();
  struct Row {
    std::string what, result;
    bool ok;
  };
  std::vector<Row> rows;
  int exit_code = 0;
  rows.push_back({"configuration " + context.config_path, "ok", true});
  for (const config::IssuerConfig& issuer : context.config->issuers) {
    auto ca = LoadCertificate(issuer.certificate);
    if (!ca) {
      rows.push_back({"issuer " + issuer.name, ca.error().Describe(), false});
      exit_code = kExitUsage;
      continue;
    }
    std::vector<signer::SignerFiles> responders;
    for (const config::ResponderConfig& responder : issuer.responders) {
      responders.push_back(
          {responder.certificate, responder.key, responder.pkcs11_module, responder.pin_file, responder.signature});
    }
    auto signers = signer::SignerSet::Load(responders, ca->get(), now);
    if (!signers) {
      rows.push_back({"issuer " + issuer.name, signers.error().Describe(), false});
      exit_code = kExitUsage;
      continue;
    }
    const signer::Signer* active = signers->Active(now);
    rows.push_back({"issuer " + issuer.name,
                    "ok, " + std::to_string(signers->signers().size()) + " responder certificate(s); the one in use is valid until " +
                        (active ? IsoTime(active->not_after()) : std::string("?")),
                    true});
  }
  if (context.config->issuers.empty()) {
    rows.push_back({"issuers", "no [[issuer]] is configured", false});
    exit_code = kExitUsage;
  }
  if (auto store = context.Open(true); store) {
    rows.push_back({"store " + context.store_directory.string(), "ok", true});
  } else {
    rows.push_back({"store " + context.store_directory.string(), store.error().Describe(), false});
    if (exit_code == 0) exit_code = kExitEnvironment;
  }
  if (context.json) {
    std::cout << "{\"ok\":" << (exit_code == 0 ? "true" : "false") << ",\"checks\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      std::cout << (i ? "," : "") << "{\"what\":" << JsonQuote(rows[i].what) << ",\"ok\":" << (rows[i].ok ? "true" : "false")
                << ",\"result\":" << JsonQuote(rows[i].result) << "}";
    }
    std::cout << "]}\n";
  } else {
    std::size_t width = 0;
    for (const Row& row : rows) width = std::max(width, row.what.size());
    for (const Row& row : rows) {
      std::cout << (row.ok ? "ok    " : "FAIL  ") << row.what << std::string(width - row.what.size() + 2, ' ')
                << row.result << "\n";
    }
  }
  return exit_code;
}

// `ocspctl sync`: fetch the configured [[source]]s and import what changed (importer/sync.h). One line per
// source, then the summary of each issuer's import. Exit: 3 if a fetch or an import could not run, else 1 if
// something was refused, else 0.
int Sync(Context& context) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  if (!context.config) {
    return UsageError(Error{ErrorCode::kInvalidArgument, "sync needs --config FILE: the sources are named there"});
  }
  if (context.config->sources.empty()) {
    return UsageError(Error{ErrorCode::kInvalidArgument, context.config_path + " names no [[source]]"});
  }
  auto store = context.Open(false);
  if (!store) return Report(store.error());
  SystemClock clock;
  auto report = [&] {
    ProgressBar bar;  // gone before the report is printed
    return importer::Sync(*context.config, *store, context.store_directory, clock, context.import_options,
                          [&](std::uint64_t done, std::uint64_t total) { bar.Update(done, total); });
  }();
  if (!report) return Report(report.error());  // another sync runs, or incoming/ cannot be made

  if (context.json) {
    std::cout << "{\"sources\":[";
    for (std::size_t i = 0; i < report->sources.size(); ++i) {
      const importer::SourceReport& source = report->sources[i];
      std::cout << (i ? "," : "") << "{\"issuer\":" << JsonQuote(source.issuer) << ",\"source\":" << JsonQuote(source.source)
                << ",\"result\":" << JsonQuote(importer::ToString(source.outcome)) << ",\"reason\":" << JsonQuote(source.reason)
                << ",\"bytes\":" << source.bytes
                << ",\"sha256\":" << (source.sha256 ? JsonQuote(ToHex(*source.sha256)) : std::string("null")) << "}";
    }
    std::cout << "],\"imports\":[";
    for (std::size_t i = 0; i < report->issuers.size(); ++i) {
      const importer::IssuerSyncReport& issuer = report->issuers[i];
      std::cout << (i ? "," : "") << "{\"issuer\":" << JsonQuote(issuer.issuer)
                << ",\"reason\":" << (issuer.error ? JsonQuote(issuer.error->Describe()) : std::string("null"))
                << ",\"report\":";
      if (issuer.import) {
        PrintImport(*issuer.import, true);  // one JSON object (its trailing newline is JSON whitespace)
      } else {
        std::cout << "null";
      }
      std::cout << "}";
    }
    std::cout << "],\"warnings\":[";
    for (std::size_t i = 0; i < report->warnings.size(); ++i) std::cout << (i ? "," : "") << JsonQuote(report->warnings[i]);
    std::cout << "],\"ok\":" << (report->ok() ? "true" : "false") << "}\n";
  } else {
    for (const std::string& warning : report->warnings) std::cerr << "ocspctl: warning: " << warning << "\n";
    for (const importer::SourceReport& source : report->sources) {
      std::cout << importer::ToString(source.outcome) << "  " << source.issuer << "  " << source.source;
      if (source.outcome == importer::SourceOutcome::kImported) std::cout << "  (" << source.bytes << " bytes)";
      if (!source.reason.empty()) std::cout << "\n    " << source.reason;
      std::cout << "\n";
    }
    for (const importer::IssuerSyncReport& issuer : report->issuers) {
      if (issuer.import) PrintImport(*issuer.import, false);
    }
  }
  if (report->any_failed()) return kExitEnvironment;
  if (report->any_refused()) return kExitRefused;
  return 0;
}

// Signs every response the presigner would, now, in this process: after a first import, before the responder
// starts, or to measure signing throughput. Uses the configured responder certificates and keys.
int Presign(Context& context, unsigned threads) {
  if (auto resolved = context.Resolve(); !resolved) return UsageError(resolved.error());
  if (!context.config) return UsageError(Error{ErrorCode::kInvalidArgument, "presign needs --config (the keys)"});
  SystemClock clock;
  auto store = context.Open(/*read_only=*/false);
  if (!store) return Report(store.error());
  const config::Config& config = *context.config;
  // The responder's own snapshot: the same issuers, responder certificates, keys and decisions.
  auto snapshot = responder::BuildSnapshot(config, &*store, clock, 1);
  if (!snapshot) return UsageError(snapshot.error());
  responder::ResponseWriter writer(*store, config.presign.max_good_responses);
  responder::PresignOptions options = responder::PresignOptionsFrom(config.presign);
  if (threads != 0) options.threads = threads;
  options.idle_priority = false;  // the operator asked for it now
  const std::shared_ptr<const responder::Snapshot> current = *snapshot;
  responder::Presigner presigner(*store, [current] { return current; }, writer, clock, options);
  const auto started = std::chrono::steady_clock::now();
  auto progress = presigner.RunUntilDone();
  writer.Stop();
  if (!progress) return Report(progress.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double rate = progress->signing_seconds > 0 ? static_cast<double>(progress->signed_responses) / progress->signing_seconds : 0;
  const auto stats = writer.stats();
  auto txn = store->BeginRead();
  if (!txn) return Report(txn.error());
  auto counts = store->CountResponses(txn->get());
  if (!counts) return Report(counts.error());
  if (context.json) {
    std::cout << "{\"signed\":" << progress->signed_responses << ",\"written\":" << stats.written
              << ",\"stale\":" << stats.stale << ",\"skipped\":" << progress->skipped
              << ",\"failed\":" << progress->failed << ",\"threads\":" << options.threads
              << ",\"seconds\":" << seconds << ",\"signing_seconds\":" << progress->signing_seconds
              << ",\"signatures_per_second\":" << rate << ",\"stored_good\":" << counts->good
              << ",\"stored_revoked\":" << counts->revoked << "}\n";
  } else {
    std::cout << "presigned " << progress->signed_responses << " responses in " << seconds << " s ("
              << static_cast<long long>(rate) << " signatures/s on " << options.threads << " threads); "
              << stats.stale << " stale, " << progress->skipped << " skipped, " << progress->failed << " failed\n"
              << "stored: " << counts->revoked << " revoked, " << counts->good << " good\n";
  }
  return progress->failed == 0 && stats.failures == 0 ? 0 : kExitEnvironment;
}

// A partition set is read through a descriptor per partition (1,900 for a JPKI CA) when the open-file limit
// allows (importer/import.h); systemd's default soft limit is 1,024 below a much higher hard limit, so take
// the hard one. Nothing here uses select(), which a descriptor past 1,024 would break.
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  RaiseOpenFileLimit();
  CLI::App app{"ocspctl: operate the OCSP responder's status store"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.fallthrough();  // --store, --config and --json may follow the subcommand too
  Context context;
  app.add_option("-c,--config", context.config_path, "the responder's configuration file");
  app.add_option("-s,--store", context.store_path, "the store directory (overrides the configuration)");
  app.add_flag("--json", context.json, "print JSON instead of text");

  auto* import = app.add_subcommand("import", "verify CRLs of one CA and switch the store to them in one transaction");
  std::string issuer_path;
  std::vector<std::string> crl_paths;
  bool allow_expired = false;
  bool allow_shrink = false;
  import->add_option("--issuer", issuer_path, "the CA certificate (PEM or DER) that signed the CRLs")->required();
  import->add_option("crls", crl_paths, "CRL files (DER or PEM): full CRLs, partitions, ARLs, delta CRLs")->required();
  import->add_flag("--allow-expired", allow_expired, "import even though a CRL's nextUpdate has passed");
  import->add_flag("--allow-shrink", allow_shrink, "import even though a CRL is much smaller than the one it replaces");

  auto* status = app.add_subcommand("status", "show issuers, coverage and freshness");
  auto* sync = app.add_subcommand("sync", "fetch the configured CRL sources and import what changed");

  auto* history = app.add_subcommand("history", "list the import history (newest last)");
  std::size_t limit = 50;
  history->add_option("-n,--limit", limit, "how many records")->capture_default_str();

  auto* partitions = app.add_subcommand("partitions", "list an issuer's partitions, or pin the expected set");
  std::string partitions_issuer;
  bool pin = false;
  bool unpin = false;
  partitions->add_option("--issuer", partitions_issuer, "the CA certificate")->required();
  auto* pin_flag = partitions->add_flag("--pin", pin, "expect exactly the partitions held now (a missing one then means tryLater)");
  partitions->add_flag("--unpin", unpin, "forget the expected set")->excludes(pin_flag);

  auto* lookup = app.add_subcommand("lookup", "say what the responder would answer for a serial, and why (signs nothing)");
  std::string lookup_serial;
  std::string lookup_issuer;
  lookup->add_option("serial", lookup_serial, "the certificate's serial number in hex (0x1002, 1002 or 10:02)")->required();
  lookup->add_option("--issuer", lookup_issuer, "the name of the [[issuer]] in the configuration")->required();

  auto* check_config = app.add_subcommand("check-config", "check the configuration, certificates, keys and store");

  auto* compromise = app.add_subcommand("compromise", "declare a CA key compromised (RFC 5280 cACompromise)");
  std::string compromise_issuer;
  std::string since;
  std::string declared_by;
  compromise->add_option("--issuer", compromise_issuer, "the CA certificate whose key is compromised")->required();
  compromise->add_option("--since", since, "from when, YYYY-MM-DDTHH:MM:SSZ")->required();
  compromise->add_option("--by", declared_by, "who declares it (recorded)")->required();

  auto* presign = app.add_subcommand("presign", "sign every response the presigner would, now (needs --config)");
  unsigned presign_threads = 0;
  presign->add_option("--threads", presign_threads, "signing threads (default: presign.threads, or one per core)");

  for (CLI::App* command : app.get_subcommands({})) command->footer(kExitCodes);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return kExitUsage;
  }
  try {
    if (import->parsed()) return Import(context, issuer_path, crl_paths, allow_expired, allow_shrink);
    if (status->parsed()) return Status(context);
    if (sync->parsed()) return Sync(context);
    if (history->parsed()) return History(context, limit);
    if (partitions->parsed()) return Partitions(context, partitions_issuer, pin, unpin);
    if (lookup->parsed()) return Lookup(context, lookup_serial, lookup_issuer);
    if (check_config->parsed()) return CheckConfig(context);
    if (compromise->parsed()) return Compromise(context, compromise_issuer, since, declared_by);
    if (presign->parsed()) return Presign(context, presign_threads);
  } catch (const std::exception& error) {
    std::cerr << "ocspctl: " << error.what() << "\n";
    return kExitEnvironment;
  }
  return kExitUsage;
}
