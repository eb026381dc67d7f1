#include "importer/crl_import.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <vector>

#include "common/openssl.h"

namespace ocsp::importer {
namespace {

std::string FormatTime(UnixSeconds seconds) {
  UniquePtr<ASN1_GENERALIZEDTIME> time = ToGeneralizedTime(seconds);
  if (!time) return std::to_string(seconds);
  std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(time.get())),
                   static_cast<std::size_t>(ASN1_STRING_length(time.get())));
  return text;
}

// CRL extensions this version understands. Anything else marked critical makes the CRL unusable
// (RFC 5280 5.2).
bool KnownCrlExtension(int nid) {
  switch (nid) {
    case NID_crl_number:
    case NID_authority_key_identifier:
    case NID_issuer_alt_name:
    case NID_delta_crl:
    case NID_issuing_distribution_point:
    case NID_freshest_crl:
    case NID_info_access:
      return true;
    default:
      return false;
  }
}

bool KnownEntryExtension(int nid) {
  switch (nid) {
    case NID_crl_reason:
    case NID_invalidity_date:
    case NID_hold_instruction_code:
    case NID_certificate_issuer:
      return true;
    default:
      return false;
  }
}

template <typename Getter>
Result<void> CheckCriticalExtensions(int count, Getter get, bool (*known)(int), const std::string& where) {
  for (int i = 0; i < count; ++i) {
    X509_EXTENSION* extension = get(i);
    if (!X509_EXTENSION_get_critical(extension)) continue;
    const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(extension));
    if (!known(nid)) {
      char oid[80];
      OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(extension), 1);
      return Fail(ErrorCode::kRefused, where + " carries an unknown critical extension " + oid);
    }
  }
  return {};
}

Result<void> CheckKeyIdentifiers(const X509_CRL* crl, const X509* ca) {
  int critical = 0;
  UniquePtr<AUTHORITY_KEYID> aki(static_cast<AUTHORITY_KEYID*>(
      X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, &critical, nullptr)));
  if (!aki || aki->keyid == nullptr) return {};
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(const_cast<X509*>(ca));
  if (ski == nullptr) return {};
  if (ASN1_OCTET_STRING_cmp(aki->keyid, ski) != 0) {
    return Fail(ErrorCode::kVerificationFailed,
                "the CRL's authority key identifier " +
                    ToHex({aki->keyid->data, static_cast<std::size_t>(aki->keyid->length)}) +
                    " is not the CA's subject key identifier " +
                    ToHex({ski->data, static_cast<std::size_t>(ski->length)}));
  }
  return {};
}

Result<store::NewEntry> ReadEntry(X509_REVOKED* revoked, std::size_t index) {
  const std::string where = "CRL entry " + std::to_string(index);
  store::NewEntry out;
  auto serial = IntegerMagnitude(X509_REVOKED_get0_serialNumber(revoked));
  if (!serial) return Fail(ErrorCode::kInvalidArgument, where + ": serial: " + serial.error().message);
  if (serial->size() > store::kMaxSerialBytes) {
    return Fail(ErrorCode::kInvalidArgument, where + ": serial of " + std::to_string(serial->size()) +
                                                 " octets (at most " +
                                                 std::to_string(store::kMaxSerialBytes) + " accepted)");
  }
  out.serial = std::move(*serial);

  auto revoked_at = ToUnixSeconds(X509_REVOKED_get0_revocationDate(revoked));
  if (!revoked_at) return Fail(ErrorCode::kInvalidArgument, where + ": revocationDate: " + revoked_at.error().message);
  out.entry.revocation_time = *revoked_at;

  const std::string serial_hex = "serial 0x" + ToHex(out.serial);
  if (auto check = CheckCriticalExtensions(
          X509_REVOKED_get_ext_count(revoked), [&](int i) { return X509_REVOKED_get_ext(revoked, i); },
          KnownEntryExtension, where + " (" + serial_hex + ")");
      !check) {
    return std::unexpected(check.error());
  }

  int critical = -1;
  if (void* issuer = X509_REVOKED_get_ext_d2i(revoked, NID_certificate_issuer, &critical, nullptr)) {
    GENERAL_NAMES_free(static_cast<GENERAL_NAMES*>(issuer));
    return Fail(ErrorCode::kRefused, where + " (" + serial_hex +
                                         ") names a certificateIssuer: indirect CRLs are not supported");
  }
  critical = -1;
  UniquePtr<ASN1_ENUMERATED> reason(
      static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(revoked, NID_crl_reason, &critical, nullptr)));
  if (reason) {
    const long code = ASN1_ENUMERATED_get(reason.get());
    if (code < 0 || code > 10 || code == 7) {
      return Fail(ErrorCode::kInvalidArgument, where + " (" + serial_hex + "): reason code " +
                                                   std::to_string(code) + " is not a CRLReason");
    }
    if (code == static_cast<long>(store::Reason::kRemoveFromCrl)) {
      return Fail(ErrorCode::kRefused,
                  where + " (" + serial_hex + "): removeFromCRL belongs only in a delta CRL");
    }
    out.entry.reason = static_cast<store::Reason>(code);
  } else if (critical != -1) {
    return Fail(ErrorCode::kInvalidArgument, where + " (" + serial_hex + "): undecodable reasonCode");
  }
  critical = -1;
  UniquePtr<ASN1_GENERALIZEDTIME> invalidity(static_cast<ASN1_GENERALIZEDTIME*>(
      X509_REVOKED_get_ext_d2i(revoked, NID_invalidity_date, &critical, nullptr)));
  if (invalidity) {
    auto seconds = ToUnixSeconds(invalidity.get());
    if (!seconds) return Fail(ErrorCode::kInvalidArgument, where + ": invalidityDate: " + seconds.error().message);
    out.entry.invalidity_date = *seconds;
  } else if (critical != -1) {
    return Fail(ErrorCode::kInvalidArgument, where + " (" + serial_hex + "): undecodable invalidityDate");
  }
  return out;
}

}  // namespace

Result<ImportReport> CrlImporter::Import(const X509* issuer_certificate, ByteView crl_file) {
  // --- Parse ---
  auto der = PemOrDer(crl_file, "X509 CRL");
  if (!der) return std::unexpected(der.error());
  const unsigned char* cursor = der->data();
  UniquePtr<X509_CRL> crl(d2i_X509_CRL(nullptr, &cursor, static_cast<long>(der->size())));
  if (!crl) return Fail(ErrorCode::kInvalidArgument, "not a CRL: " + DrainOpenSslErrors());
  if (cursor != der->data() + der->size()) {
    return Fail(ErrorCode::kInvalidArgument, "trailing bytes after the CRL");
  }

  auto identity = store::IssuerIdentity::FromCertificate(issuer_certificate);
  if (!identity) return std::unexpected(identity.error());

  // --- Verify: the issuer is a CA that may sign CRLs, named by the CRL, whose key signed it ---
  if (X509_check_ca(const_cast<X509*>(issuer_certificate)) < 1) {
    return Fail(ErrorCode::kVerificationFailed, identity->subject_text + " is not a CA certificate");
  }
  if ((X509_get_extension_flags(const_cast<X509*>(issuer_certificate)) & EXFLAG_KUSAGE) &&
      !(X509_get_key_usage(const_cast<X509*>(issuer_certificate)) & KU_CRL_SIGN)) {
    return Fail(ErrorCode::kVerificationFailed, identity->subject_text + " may not sign CRLs (no cRLSign)");
  }
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer_certificate)) != 0) {
    UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_CRL_get_issuer(crl.get()), 0, XN_FLAG_RFC2253);
    char* text = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &text);
    return Fail(ErrorCode::kVerificationFailed,
                "the CRL is issued by " + std::string(text, static_cast<std::size_t>(length)) + ", not by " +
                    identity->subject_text);
  }
  if (auto check = CheckKeyIdentifiers(crl.get(), issuer_certificate); !check) {
    return std::unexpected(check.error());
  }
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer_certificate);
  if (issuer_key == nullptr || X509_CRL_verify(crl.get(), issuer_key) != 1) {
    return Fail(ErrorCode::kVerificationFailed,
                "the CRL's signature does not verify with the key of " + identity->subject_text + " (key " +
                    identity->id.hex() + "): " + DrainOpenSslErrors());
  }

  // --- Check what this version can answer from ---
  if (auto check = CheckCriticalExtensions(
          X509_CRL_get_ext_count(crl.get()), [&](int i) { return X509_CRL_get_ext(crl.get(), i); },
          KnownCrlExtension, "the CRL");
      !check) {
    return std::unexpected(check.error());
  }
  if (X509_CRL_get_ext_by_NID(crl.get(), NID_delta_crl, -1) >= 0) {
    return Fail(ErrorCode::kRefused, "this is a delta CRL; delta CRLs are not supported yet");
  }
  if (X509_CRL_get_ext_by_NID(crl.get(), NID_issuing_distribution_point, -1) >= 0) {
    return Fail(ErrorCode::kRefused,
                "the CRL has an issuing distribution point (a partition); partitioned CRLs are not supported "
                "yet, and answering `good` from one partition would be wrong");
  }
  int critical = -1;
  UniquePtr<ASN1_INTEGER> number_integer(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, &critical, nullptr)));
  if (!number_integer) return Fail(ErrorCode::kRefused, "the CRL has no CRL number (RFC 5280 5.2.3)");
  auto number_magnitude = IntegerMagnitude(number_integer.get());
  if (!number_magnitude) return Fail(ErrorCode::kInvalidArgument, "CRL number: " + number_magnitude.error().message);
  auto number = store::CrlNumber::FromMagnitude(*number_magnitude);
  if (!number) return std::unexpected(number.error());

  const UnixSeconds now = clock_.Now();
  auto this_update = ToUnixSeconds(X509_CRL_get0_lastUpdate(crl.get()));
  if (!this_update) return Fail(ErrorCode::kInvalidArgument, "thisUpdate: " + this_update.error().message);
  if (*this_update > now + options_.max_clock_skew_seconds) {
    return Fail(ErrorCode::kRefused, "the CRL's thisUpdate " + FormatTime(*this_update) +
                                         " is in the future (now " + FormatTime(now) + ")");
  }
  const ASN1_TIME* next_update_time = X509_CRL_get0_nextUpdate(crl.get());
  if (next_update_time == nullptr) {
    return Fail(ErrorCode::kRefused, "the CRL has no nextUpdate: nothing would say when its answers expire");
  }
  auto next_update = ToUnixSeconds(next_update_time);
  if (!next_update) return Fail(ErrorCode::kInvalidArgument, "nextUpdate: " + next_update.error().message);
  if (*next_update <= *this_update) {
    return Fail(ErrorCode::kInvalidArgument, "the CRL's nextUpdate is not after its thisUpdate");
  }
  if (*next_update <= now && !options_.allow_expired) {
    return Fail(ErrorCode::kRefused, "the CRL expired at " + FormatTime(*next_update) +
                                         " (import it anyway with --allow-expired)");
  }

  std::vector<store::NewEntry> entries;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  const int count = revoked == nullptr ? 0 : sk_X509_REVOKED_num(revoked);
  entries.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto entry = ReadEntry(sk_X509_REVOKED_value(revoked, i), static_cast<std::size_t>(i));
    if (!entry) return std::unexpected(entry.error());
    entries.push_back(std::move(*entry));
  }
  std::sort(entries.begin(), entries.end(), [](const store::NewEntry& a, const store::NewEntry& b) {
    return store::SerialLess(a.serial, b.serial);
  });
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (!store::SerialLess(entries[i - 1].serial, entries[i].serial)) {
      return Fail(ErrorCode::kInvalidArgument, "serial 0x" + ToHex(entries[i].serial) + " is listed twice");
    }
  }

  store::CrlSummary summary;
  summary.number = *number;
  summary.this_update = *this_update;
  summary.next_update = *next_update;
  summary.imported_at = now;
  SHA256(der->data(), der->size(), summary.sha256.data());

  ImportReport report;
  report.issuer = identity->id;
  report.issuer_name = identity->subject_text;
  report.number = *number;
  report.this_update = *this_update;
  report.next_update = *next_update;
  report.entries = entries.size();

  // --- Commit, or leave everything as it was ---
  auto txn = store_.BeginWrite();
  if (!txn) return std::unexpected(txn.error());
  auto issuer = store_.EnsureIssuer(*txn, *identity);
  if (!issuer) return std::unexpected(issuer.error());
  if (const auto& current = issuer->state.current_crl) {
    report.previous_number = current->number;
    report.previous_entries = current->entry_count;
    if (current->number == *number) {
      if (current->sha256 == summary.sha256) {
        report.outcome = ImportReport::Outcome::kUnchanged;
        return report;  // the transaction aborts: nothing changes
      }
      return Fail(ErrorCode::kRefused, "CRL number " + number->ToString() +
                                           " is already held with different content");
    }
    if (*number < current->number) {
      return Fail(ErrorCode::kRefused, "CRL number " + number->ToString() +
                                           " is lower than the held CRL number " + current->number.ToString());
    }
  }
  auto replaced = store_.ReplaceCrl(*txn, *issuer, summary, entries);
  if (!replaced) return std::unexpected(replaced.error());
  if (auto committed = txn->Commit(); !committed) return std::unexpected(committed.error());
  return report;
}

}  // namespace ocsp::importer
