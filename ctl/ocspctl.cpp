// ocspctl: the operator's command line for the status store.
//
// Exit codes: 0 done (or nothing to do), 1 the input was refused (a CRL failed a check), 2 bad usage or
// configuration, 3 the environment failed (store, file system).
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>
#include <optional>

#include "common/openssl.h"
#include "config/config.h"
#include "importer/crl_import.h"
#include "store/store.h"

namespace {

using namespace ocsp;

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitEnvironment = 3;

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

int Report(const Error& error) {
  std::cerr << "ocspctl: " << error.Describe() << "\n";
  return ExitCodeFor(error);
}

std::string IsoTime(UnixSeconds seconds) {
  char text[32];
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm parts{};
  gmtime_r(&t, &parts);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

struct StoreLocation {
  std::string config_path;
  std::string store_path;
  std::size_t map_size_bytes = std::size_t{1024} << 20;
  UnixSeconds max_clock_skew = 300;

  Result<std::filesystem::path> Resolve() {
    if (!store_path.empty()) return std::filesystem::path(store_path);
    if (config_path.empty()) {
      return Fail(ErrorCode::kInvalidArgument, "name the store with --store DIR or --config FILE");
    }
    auto config = config::LoadConfig(config_path);
    if (!config) return std::unexpected(config.error());
    map_size_bytes = config->map_size_bytes;
    max_clock_skew = config->import_max_clock_skew_seconds;
    return config->store_path;
  }
};

int Import(StoreLocation& location, const std::string& issuer_path, const std::string& crl_path,
           bool allow_expired) {
  auto store_path = location.Resolve();
  if (!store_path) {
    std::cerr << "ocspctl: " << store_path.error().message << "\n";
    return kExitUsage;
  }
  auto issuer = LoadCertificate(issuer_path);
  if (!issuer) return Report(issuer.error());
  auto crl = ReadFile(crl_path);
  if (!crl) return Report(crl.error());
  auto store = store::Store::Open(*store_path, {location.map_size_bytes, false});
  if (!store) return Report(store.error());

  SystemClock clock;
  importer::ImportOptions options;
  options.allow_expired = allow_expired;
  options.max_clock_skew_seconds = location.max_clock_skew;
  importer::CrlImporter importer(*store, clock, options);
  auto report = importer.Import(issuer->get(), *crl);
  if (!report) {
    std::cerr << "ocspctl: " << crl_path << " refused, the store is unchanged: " << report.error().Describe()
              << "\n";
    return ExitCodeFor(report.error());
  }
  if (report->outcome == importer::ImportReport::Outcome::kUnchanged) {
    std::cout << "unchanged: CRL " << report->number.ToString() << " of " << report->issuer_name
              << " is already current\n";
    return 0;
  }
  std::cout << "imported CRL " << report->number.ToString() << " of " << report->issuer_name << ": "
            << report->entries << " revoked (before: "
            << (report->previous_number ? "CRL " + report->previous_number->ToString() + ", " +
                                              std::to_string(report->previous_entries) + " revoked"
                                        : std::string("none"))
            << "), thisUpdate " << IsoTime(report->this_update) << ", nextUpdate "
            << (report->next_update ? IsoTime(*report->next_update) : "none") << "\n";
  return 0;
}

int Status(StoreLocation& location) {
  auto store_path = location.Resolve();
  if (!store_path) {
    std::cerr << "ocspctl: " << store_path.error().message << "\n";
    return kExitUsage;
  }
  auto store = store::Store::Open(*store_path, {location.map_size_bytes, true});
  if (!store) return Report(store.error());
  auto txn = store->BeginRead();
  if (!txn) return Report(txn.error());
  auto issuers = store->ListIssuers(txn->get());
  if (!issuers) return Report(issuers.error());
  const UnixSeconds now = SystemClock().Now();
  std::cout << "store " << store_path->string() << ": " << issuers->size() << " issuer(s)\n";
  for (const store::IssuerRecord& record : *issuers) {
    auto certificate = ParseCertificate(record.certificate_der);
    std::string subject = "?";
    if (certificate) {
      auto identity = store::IssuerIdentity::FromCertificate(certificate->get());
      if (identity) subject = identity->subject_text;
    }
    std::cout << "issuer " << subject << "\n  key " << record.id.hex() << "\n";
    if (!record.state.current_crl) {
      std::cout << "  no CRL imported: answers unknown\n";
      continue;
    }
    const store::CrlSummary& crl = *record.state.current_crl;
    const bool fresh = !crl.next_update || *crl.next_update > now;
    std::cout << "  CRL " << crl.number.ToString() << ", " << crl.entry_count << " revoked, thisUpdate "
              << IsoTime(crl.this_update) << ", nextUpdate "
              << (crl.next_update ? IsoTime(*crl.next_update) : "none") << (fresh ? "" : " (EXPIRED)")
              << ", imported " << IsoTime(crl.imported_at) << ", sha256 " << ToHex(crl.sha256) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ocspctl: operate the OCSP responder's status store"};
  app.require_subcommand(1);
  StoreLocation location;
  auto* where = app.add_option_group("store location");
  where->add_option("-c,--config", location.config_path, "the responder's configuration file");
  where->add_option("-s,--store", location.store_path, "the store directory (overrides --config)");

  auto* import = app.add_subcommand("import", "verify a CRL against its CA and make it the issuer's current CRL");
  std::string issuer_path;
  std::string crl_path;
  bool allow_expired = false;
  import->add_option("--issuer", issuer_path, "the CA certificate (PEM or DER) that signed the CRL")->required();
  import->add_option("crl", crl_path, "the CRL file (DER or PEM)")->required();
  import->add_flag("--allow-expired", allow_expired, "import even though the CRL's nextUpdate has passed");

  auto* status = app.add_subcommand("status", "show the issuers and their current CRLs");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return kExitUsage;
  }
  try {
    if (import->parsed()) return Import(location, issuer_path, crl_path, allow_expired);
    if (status->parsed()) return Status(location);
  } catch (const std::exception& error) {
    std::cerr << "ocspctl: " << error.what() << "\n";
    return kExitEnvironment;
  }
  return kExitUsage;
}
