#include "importer/crl_parser.h"

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/openssl.h"
#include "importer/der.h"

namespace ocsp::importer {
namespace {

// OID contents (DER, without tag and length).
constexpr std::array<std::uint8_t, 3> kReasonCode{0x55, 0x1d, 0x15};
constexpr std::array<std::uint8_t, 3> kHoldInstruction{0x55, 0x1d, 0x17};
constexpr std::array<std::uint8_t, 3> kInvalidityDate{0x55, 0x1d, 0x18};
constexpr std::array<std::uint8_t, 3> kCertificateIssuer{0x55, 0x1d, 0x1d};
constexpr std::array<std::uint8_t, 3> kIssuerAltName{0x55, 0x1d, 0x12};
constexpr std::array<std::uint8_t, 3> kCrlNumber{0x55, 0x1d, 0x14};
constexpr std::array<std::uint8_t, 3> kDeltaCrlIndicator{0x55, 0x1d, 0x1b};
constexpr std::array<std::uint8_t, 3> kIssuingDistributionPoint{0x55, 0x1d, 0x1c};
constexpr std::array<std::uint8_t, 3> kAuthorityKeyIdentifier{0x55, 0x1d, 0x23};
constexpr std::array<std::uint8_t, 3> kFreshestCrl{0x55, 0x1d, 0x2e};
constexpr std::array<std::uint8_t, 8> kAuthorityInfoAccess{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01};

template <std::size_t N>
bool Is(ByteView oid, const std::array<std::uint8_t, N>& expected) {
  return oid.size() == N && std::memcmp(oid.data(), expected.data(), N) == 0;
}

std::string OidText(ByteView oid) {
  const unsigned char* cursor = oid.data();
  // Re-wrap the contents as a full OBJECT IDENTIFIER for OpenSSL's printer.
  Bytes full{der::kOid, static_cast<std::uint8_t>(oid.size())};
  if (oid.size() >= 0x80) return ToHex(oid);
  full.insert(full.end(), oid.begin(), oid.end());
  cursor = full.data();
  ASN1_OBJECT* object = d2i_ASN1_OBJECT(nullptr, &cursor, static_cast<long>(full.size()));
  if (object == nullptr) {
    ERR_clear_error();
    return ToHex(oid);
  }
  char text[128];
  OBJ_obj2txt(text, sizeof text, object, 1);
  ASN1_OBJECT_free(object);
  return text;
}

struct Extension {
  ByteView oid;
  bool critical = false;
  ByteView value;  // extnValue contents
  std::size_t offset = 0;        // of the Extension SEQUENCE
  std::size_t value_offset = 0;  // of the extnValue contents
};

// Calls `visit` for each Extension in an Extensions SEQUENCE; refuses duplicates (RFC 5280 4.2).
bool ValidOid(ByteView oid);
Result<void> CheckPrimitive(const Tlv& element, std::string_view what);
Result<void> CheckName(const Tlv& name, std::string_view what);
Result<void> CheckDirectoryString(const Tlv& value, std::string_view what);

// GeneralNames contents: each a GeneralName whose contents are what its tag says where we can tell (a
// directoryName is a Name, a registeredID an OID).
Result<void> CheckGeneralNames(const Tlv& names, std::string_view what);

template <typename Visit>
Result<void> ForEachExtension(const Tlv& extensions, std::string_view where, Visit visit) {
  DerReader list = DerReader::Inside(extensions);
  if (list.empty()) return std::unexpected(DerError(extensions.offset, where, "empty extension list"));
  // Extension lists are short: a fixed array serves, and a heap list takes over past it.
  std::array<ByteView, 16> seen{};
  std::size_t seen_count = 0;
  std::vector<ByteView> seen_overflow;
  while (!list.empty()) {
    auto extension = list.Expect(der::kSequence, where);
    if (!extension) return std::unexpected(extension.error());
    DerReader fields = DerReader::Inside(*extension);
    auto oid = fields.Expect(der::kOid, where);
    if (!oid) return std::unexpected(oid.error());
    if (!ValidOid(oid->value)) return std::unexpected(DerError(oid->offset, where, "malformed OBJECT IDENTIFIER"));
    Extension parsed{oid->value, false, {}, extension->offset};
    auto critical = fields.Optional(der::kBoolean, where);
    if (!critical) return std::unexpected(critical.error());
    if (*critical) {
      const ByteView flag = (*critical)->value;
      if (flag.size() != 1 || (flag[0] != 0x00 && flag[0] != 0xff)) {
        return std::unexpected(DerError((*critical)->offset, where, "malformed BOOLEAN"));
      }
      parsed.critical = flag[0] == 0xff;
    }
    auto value = fields.Expect(der::kOctetString, where);
    if (!value) return std::unexpected(value.error());
    if (!fields.empty()) return std::unexpected(DerError(fields.offset(), where, "trailing data in an extension"));
    parsed.value = value->value;
    parsed.value_offset = value->offset + (value->encoding.size() - value->value.size());
    auto same = [&](ByteView other) {
      return other.size() == parsed.oid.size() && std::memcmp(other.data(), parsed.oid.data(), parsed.oid.size()) == 0;
    };
    if (std::any_of(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(seen_count), same) ||
        std::any_of(seen_overflow.begin(), seen_overflow.end(), same)) {
      return std::unexpected(DerError(extension->offset, where, "extension " + OidText(parsed.oid) + " appears twice"));
    }
    if (seen_count < seen.size()) {
      seen[seen_count++] = parsed.oid;
    } else {
      seen_overflow.push_back(parsed.oid);
    }
    if (auto result = visit(parsed); !result) return result;
  }
  return {};
}

Result<Tlv> ParseSingle(ByteView value, std::size_t offset, std::string_view what) {
  DerReader reader(value, offset);
  auto tlv = reader.Next(what);
  if (!tlv) return std::unexpected(tlv.error());
  if (!reader.empty()) return std::unexpected(DerError(reader.offset(), what, "trailing data"));
  return tlv;
}

// GeneralName tags (RFC 5280 4.2.1.6): [0] otherName .. [8] registeredID, primitive or constructed as defined.
bool IsGeneralNameTag(std::uint8_t tag) {
  switch (tag) {
    case 0xa0: case 0x81: case 0x82: case 0xa3: case 0xa4: case 0xa5: case 0x86: case 0x87: case 0x88:
      return true;
    default:
      return false;
  }
}

Result<void> CheckGeneralNames(const Tlv& names, std::string_view what) {
  DerReader reader = DerReader::Inside(names);
  if (reader.empty()) return std::unexpected(DerError(names.offset, what, "empty GeneralNames"));
  while (!reader.empty()) {
    auto general = reader.Next(what);
    if (!general) return std::unexpected(general.error());
    if (!IsGeneralNameTag(general->tag)) {
      return std::unexpected(DerError(general->offset, what, "something that is not a GeneralName"));
    }
    // otherName, x400Address and ediPartyName name no CRL distribution point we know how to match; refusing
    // them is safe and spares us their structures.
    if (general->tag == 0xa0 || general->tag == 0xa3 || general->tag == 0xa5) {
      return std::unexpected(DerError(general->offset, what, "a GeneralName form not supported here"));
    }
    if (general->tag == 0xa4) {  // directoryName [4] EXPLICIT Name
      auto name = ParseSingle(general->value, general->offset + (general->encoding.size() - general->value.size()), what);
      if (!name) return std::unexpected(name.error());
      if (name->tag != der::kSequence) return std::unexpected(DerError(general->offset, what, "directoryName is not a Name"));
      if (auto checked = CheckName(*name, what); !checked) {
        return std::unexpected(DerError(general->offset, what, checked.error().message));
      }
    } else if (general->tag == 0x88 && !ValidOid(general->value)) {
      return std::unexpected(DerError(general->offset, what, "registeredID is not an OBJECT IDENTIFIER"));
    } else if ((general->tag == 0x81 || general->tag == 0x82 || general->tag == 0x86) && general->value.empty()) {
      return std::unexpected(DerError(general->offset, what, "empty name"));
    }
  }
  return {};
}

Result<IssuingDistributionPoint> ParseDistributionPoint(const Extension& extension) {
  constexpr std::string_view kWhat = "issuingDistributionPoint";
  auto sequence = ParseSingle(extension.value, extension.value_offset, kWhat);
  if (!sequence) return std::unexpected(sequence.error());
  if (sequence->tag != der::kSequence) return std::unexpected(DerError(sequence->offset, kWhat, "not a SEQUENCE"));
  IssuingDistributionPoint point;
  bool only_user = false, only_ca = false;
  int last_field = -1;  // fields are [0]..[5], each at most once and in order (DER)
  DerReader fields = DerReader::Inside(*sequence);
  while (!fields.empty()) {
    auto field = fields.Next(kWhat);
    if (!field) return std::unexpected(field.error());
    const int number = field->tag & 0x1f;
    if ((field->tag & 0xc0) != 0x80 || number > 5 || number <= last_field) {
      return std::unexpected(DerError(field->offset, kWhat, "unknown field, or a field repeated or out of order"));
    }
    last_field = number;
    if (number == 1 || number == 2 || number == 4 || number == 5) {
      // BOOLEAN DEFAULT FALSE: DER omits FALSE and writes TRUE as 0xff. A BER TRUE (any other non-zero
      // octet) read as FALSE would turn an indirect CRL into a direct one, so it is refused, not guessed.
      if (field->tag != (0x80 | number) || field->value.size() != 1 || field->value[0] != 0xff) {
        return std::unexpected(DerError(field->offset, kWhat, "a BOOLEAN that is not DER's TRUE"));
      }
    }
    switch (number) {
      case 0: {  // distributionPoint [0] EXPLICIT DistributionPointName
        if (field->tag != 0xa0) return std::unexpected(DerError(field->offset, kWhat, "distributionPoint not constructed"));
        auto name = ParseSingle(field->value, field->offset + (field->encoding.size() - field->value.size()), kWhat);
        if (!name) return std::unexpected(name.error());
        point.distribution_point.assign(name->encoding.begin(), name->encoding.end());
        if (name->tag == 0xa0) {  // fullName [0] GeneralNames
          if (auto checked = CheckGeneralNames(*name, kWhat); !checked) return std::unexpected(checked.error());
          DerReader names = DerReader::Inside(*name);
          while (!names.empty()) {
            auto general = names.Next(kWhat);
            if (!general) return std::unexpected(general.error());
            if (!IsGeneralNameTag(general->tag)) {
              return std::unexpected(DerError(general->offset, kWhat, "fullName holds something that is not a GeneralName"));
            }
            if (!point.name.empty()) point.name += ", ";
            if (general->tag == 0x86) {
              point.name += "URI:" + std::string(general->value.begin(), general->value.end());
            } else if (general->tag == 0xa4) {
              point.name += "DirName:" + NameText(general->value);
            } else {
              point.name += "name:" + ToHex(general->encoding);
            }
          }
        } else if (name->tag == 0xa1) {  // nameRelativeToCRLIssuer [1] RelativeDistinguishedName
          return std::unexpected(DerError(name->offset, kWhat, "nameRelativeToCRLIssuer is not supported"));
        } else {
          return std::unexpected(DerError(name->offset, kWhat, "distributionPoint is neither fullName nor nameRelativeToCRLIssuer"));
        }
        break;
      }
      case 1: only_user = true; break;
      case 2: only_ca = true; break;
      case 3: return std::unexpected(DerError(field->offset, kWhat, "onlySomeReasons partitions are not supported"));
      case 4: return std::unexpected(DerError(field->offset, kWhat, "indirect CRLs are not supported"));
      case 5: return std::unexpected(DerError(field->offset, kWhat, "attribute-certificate CRLs are not supported"));
    }
  }
  if (only_user && only_ca) {
    return std::unexpected(DerError(extension.offset, kWhat, "both onlyContainsUserCerts and onlyContainsCACerts"));
  }
  point.scope = only_ca ? PartitionScope::kCaCerts : PartitionScope::kUserCerts;
  if (point.distribution_point.empty() && !only_user && !only_ca) {
    return std::unexpected(DerError(extension.offset, kWhat, "names no distribution point and no scope"));
  }
  if (point.name.empty()) point.name = only_ca ? "ARL" : "user certificates";
  return point;
}

Result<void> ReadCrlExtension(const Extension& extension, CrlHeader& header) {
  if (Is(extension.oid, kCrlNumber) || Is(extension.oid, kDeltaCrlIndicator)) {
    const bool delta = Is(extension.oid, kDeltaCrlIndicator);
    const std::string_view what = delta ? "deltaCRLIndicator" : "cRLNumber";
    auto integer = ParseSingle(extension.value, extension.value_offset, what);
    if (!integer) return std::unexpected(integer.error());
    if (integer->tag != der::kInteger) return std::unexpected(DerError(integer->offset, what, "not an INTEGER"));
    auto magnitude = ReadUnsignedInteger(*integer, what, 20);
    if (!magnitude) return std::unexpected(magnitude.error());
    (delta ? header.delta_base : header.crl_number) = Bytes(magnitude->begin(), magnitude->end());
    return {};
  }
  if (Is(extension.oid, kAuthorityKeyIdentifier)) {
    constexpr std::string_view kWhat = "authorityKeyIdentifier";
    auto sequence = ParseSingle(extension.value, extension.value_offset, kWhat);
    if (!sequence) return std::unexpected(sequence.error());
    if (sequence->tag != der::kSequence) return std::unexpected(DerError(sequence->offset, kWhat, "not a SEQUENCE"));
    // SEQUENCE { keyIdentifier [0] OCTET STRING, authorityCertIssuer [1], authorityCertSerialNumber [2] },
    // each optional, in order, at most once.
    DerReader fields = DerReader::Inside(*sequence);
    int last_field = -1;
    while (!fields.empty()) {
      auto field = fields.Next(kWhat);
      if (!field) return std::unexpected(field.error());
      const std::uint8_t expected[] = {0x80, 0xa1, 0x82};
      const int number = field->tag & 0x1f;
      if (number > 2 || number <= last_field || field->tag != expected[number]) {
        return std::unexpected(DerError(field->offset, kWhat, "unknown, repeated, out-of-order or wrongly encoded field"));
      }
      last_field = number;
      if (number == 0) header.authority_key_id = Bytes(field->value.begin(), field->value.end());
      if (number == 1) {
        if (auto checked = CheckGeneralNames(*field, kWhat); !checked) return std::unexpected(checked.error());
      }
      if (number == 2) {  // authorityCertSerialNumber [2] IMPLICIT INTEGER
        Tlv as_integer = *field;
        as_integer.tag = der::kInteger;
        if (auto valid = CheckPrimitive(as_integer, kWhat); !valid) return std::unexpected(valid.error());
      }
    }
    return {};
  }
  if (Is(extension.oid, kIssuingDistributionPoint)) {
    auto point = ParseDistributionPoint(extension);
    if (!point) return std::unexpected(point.error());
    header.distribution_point = std::move(*point);
    return {};
  }
  if (Is(extension.oid, kFreshestCrl) || Is(extension.oid, kAuthorityInfoAccess) || Is(extension.oid, kIssuerAltName)) {
    return {};  // informational for us
  }
  if (extension.critical) {
    return std::unexpected(
        DerError(extension.offset, "CRL extension", "unknown critical extension " + OidText(extension.oid)));
  }
  return {};
}

Result<void> ReadEntryExtension(const Extension& extension, CrlEntry& entry) {
  if (Is(extension.oid, kReasonCode)) {
    auto value = ParseSingle(extension.value, extension.value_offset, "reasonCode");
    if (!value) return std::unexpected(value.error());
    if (value->tag != der::kEnumerated || value->value.size() != 1) {
      return std::unexpected(DerError(value->offset, "reasonCode", "not a one-octet ENUMERATED"));
    }
    const std::uint8_t code = value->value[0];
    if (code > 10 || code == 7) {
      return std::unexpected(DerError(value->offset, "reasonCode", std::to_string(code) + " is not a CRLReason"));
    }
    entry.reason = static_cast<store::Reason>(code);
    return {};
  }
  if (Is(extension.oid, kInvalidityDate)) {
    auto value = ParseSingle(extension.value, extension.value_offset, "invalidityDate");
    if (!value) return std::unexpected(value.error());
    if (value->tag != der::kGeneralizedTime) {
      return std::unexpected(DerError(value->offset, "invalidityDate", "not a GeneralizedTime"));
    }
    auto time = ReadTime(*value, "invalidityDate");
    if (!time) return std::unexpected(time.error());
    entry.invalidity_date = *time;
    return {};
  }
  if (Is(extension.oid, kCertificateIssuer)) {
    return std::unexpected(
        DerError(extension.offset, "CRL entry", "certificateIssuer (an indirect CRL) is not supported"));
  }
  if (Is(extension.oid, kHoldInstruction)) return {};
  if (extension.critical) {
    return std::unexpected(
        DerError(extension.offset, "CRL entry", "unknown critical extension " + OidText(extension.oid)));
  }
  return {};
}

// An OBJECT IDENTIFIER's contents: non-empty, every subidentifier minimal (no leading 0x80) and complete.
bool ValidOid(ByteView oid) {
  if (oid.empty() || (oid.back() & 0x80) != 0) return false;
  bool start = true;
  for (std::uint8_t octet : oid) {
    if (start && octet == 0x80) return false;
    start = (octet & 0x80) == 0;
  }
  return true;
}

// The universal primitives a decoder validates on sight (what OpenSSL would refuse to decode as ANY).
Result<void> CheckPrimitive(const Tlv& element, std::string_view what) {
  const ByteView v = element.value;
  switch (element.tag) {
    case der::kBoolean:
      if (v.size() != 1) return std::unexpected(DerError(element.offset, what, "BOOLEAN of other than one octet"));
      break;
    case der::kInteger:
    case der::kEnumerated:
      if (v.empty() || (v.size() > 1 && ((v[0] == 0 && !(v[1] & 0x80)) || (v[0] == 0xff && (v[1] & 0x80))))) {
        return std::unexpected(DerError(element.offset, what, "empty or non-minimal INTEGER"));
      }
      break;
    case der::kBitString:
      if (v.empty() || v[0] > 7 || (v.size() == 1 && v[0] != 0)) {
        return std::unexpected(DerError(element.offset, what, "malformed BIT STRING"));
      }
      break;
    case 0x05:  // NULL
      if (!v.empty()) return std::unexpected(DerError(element.offset, what, "NULL with contents"));
      break;
    case der::kOid:
      if (!ValidOid(v)) return std::unexpected(DerError(element.offset, what, "malformed OBJECT IDENTIFIER"));
      break;
    default:
      break;
  }
  return {};
}

// Reports a structural problem inside `element` at the element itself: that is what is malformed.
Result<void> AtElement(const Tlv& element, std::string_view what, Result<void> inner) {
  if (inner) return inner;
  return std::unexpected(DerError(element.offset, what, inner.error().message));
}

// AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }
Result<void> CheckAlgorithmIdentifierFields(const Tlv& algorithm, std::string_view what) {
  DerReader fields = DerReader::Inside(algorithm);
  auto oid = fields.Expect(der::kOid, what);
  if (!oid) return std::unexpected(oid.error());
  if (!ValidOid(oid->value)) return std::unexpected(DerError(oid->offset, what, "malformed OBJECT IDENTIFIER"));
  if (!fields.empty()) {
    auto parameters = fields.Next(what);
    if (!parameters) return std::unexpected(parameters.error());
    if (auto valid = CheckPrimitive(*parameters, what); !valid) return valid;
  }
  if (!fields.empty()) return std::unexpected(DerError(fields.offset(), what, "more than one parameters field"));
  return {};
}

Result<void> CheckAlgorithmIdentifier(const Tlv& algorithm, std::string_view what) {
  return AtElement(algorithm, what, CheckAlgorithmIdentifierFields(algorithm, what));
}

bool ValidUtf8(ByteView text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::uint8_t lead = text[i];
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if ((lead & 0xe0) == 0xc0) { extra = 1; code = lead & 0x1f; }
    else if ((lead & 0xf0) == 0xe0) { extra = 2; code = lead & 0x0f; }
    else if ((lead & 0xf8) == 0xf0) { extra = 3; code = lead & 0x07; }
    else return false;
    if (i + extra >= text.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((text[i + k] & 0xc0) != 0x80) return false;
      code = (code << 6) | (text[i + k] & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((extra == 1 && code < 0x80) || (extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000) ||
        (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// The string types of names: what OpenSSL cannot convert to UTF-8 it refuses, and so do we.
Result<void> CheckDirectoryString(const Tlv& value, std::string_view what) {
  // Attribute values are the string types OpenSSL's X509_NAME reads (UTF8String, NumericString,
  // PrintableString, TeletexString, IA5String, UniversalString, BMPString). It refuses VisibleString and
  // GeneralString in a Name (the crl_parser_fuzzer found a GeneralString we took), and so no CA certificate
  // OpenSSL loads can have a subject a CRL with them would match; it admits a few more exotic ones in some
  // cases and not in others. Refusing all of those is the safe side of that line.
  const bool printable = value.tag == 0x0c || value.tag == 0x12 || value.tag == 0x13 || value.tag == 0x14 ||
                         value.tag == 0x16 || value.tag == 0x1c || value.tag == 0x1e;
  if (!printable) return std::unexpected(DerError(value.offset, what, "attribute value of a type a Name cannot hold"));
  switch (value.tag) {
    case 0x0c:  // UTF8String
      if (!ValidUtf8(value.value)) return std::unexpected(DerError(value.offset, what, "UTF8String that is not UTF-8"));
      break;
    case 0x1e:  // BMPString: UCS-2
      if (value.value.size() % 2 != 0) return std::unexpected(DerError(value.offset, what, "BMPString of odd length"));
      break;
    case 0x1c:  // UniversalString: UCS-4
      if (value.value.size() % 4 != 0) {
        return std::unexpected(DerError(value.offset, what, "UniversalString whose length is not a multiple of 4"));
      }
      break;
    default:
      break;
  }
  return {};
}

// Name ::= SEQUENCE OF RelativeDistinguishedName (SET SIZE (1..MAX) OF SEQUENCE { type OID, value ANY })
Result<void> CheckNameFields(const Tlv& name, std::string_view what) {
  DerReader rdns = DerReader::Inside(name);
  while (!rdns.empty()) {
    auto rdn = rdns.Expect(0x31, what);
    if (!rdn) return std::unexpected(rdn.error());
    DerReader attributes = DerReader::Inside(*rdn);
    if (attributes.empty()) return std::unexpected(DerError(rdn->offset, what, "empty RelativeDistinguishedName"));
    while (!attributes.empty()) {
      auto attribute = attributes.Expect(der::kSequence, what);
      if (!attribute) return std::unexpected(attribute.error());
      DerReader parts = DerReader::Inside(*attribute);
      auto type = parts.Expect(der::kOid, what);
      if (!type) return std::unexpected(type.error());
      if (!ValidOid(type->value)) return std::unexpected(DerError(type->offset, what, "malformed OBJECT IDENTIFIER"));
      auto value = parts.Next(what);
      if (!value) return std::unexpected(value.error());
      if (!parts.empty()) return std::unexpected(DerError(parts.offset(), what, "trailing data in an attribute"));
      if (auto text = CheckDirectoryString(*value, what); !text) return text;
    }
  }
  return {};
}

Result<void> CheckName(const Tlv& name, std::string_view what) {
  return AtElement(name, what, CheckNameFields(name, what));
}

}  // namespace

Result<CrlParser> CrlParser::Open(ByteView der) {
  DerReader top(der, 0);
  auto certificate_list = top.Expect(der::kSequence, "CertificateList");
  if (!certificate_list) return std::unexpected(certificate_list.error());
  if (!top.empty()) return std::unexpected(DerError(top.offset(), "CertificateList", "trailing bytes after the CRL"));

  CrlHeader header;
  DerReader outer = DerReader::Inside(*certificate_list);
  auto tbs = outer.Expect(der::kSequence, "tbsCertList");
  if (!tbs) return std::unexpected(tbs.error());
  header.tbs = tbs->encoding;
  auto algorithm = outer.Expect(der::kSequence, "signatureAlgorithm");
  if (!algorithm) return std::unexpected(algorithm.error());
  header.signature_algorithm = algorithm->encoding;
  if (auto checked = CheckAlgorithmIdentifier(*algorithm, "signatureAlgorithm"); !checked) {
    return std::unexpected(checked.error());
  }
  auto signature = outer.Expect(der::kBitString, "signatureValue");
  if (!signature) return std::unexpected(signature.error());
  if (signature->value.empty() || signature->value[0] != 0) {
    return std::unexpected(DerError(signature->offset, "signatureValue", "BIT STRING with unused bits"));
  }
  header.signature = signature->value.subspan(1);
  if (!outer.empty()) return std::unexpected(DerError(outer.offset(), "CertificateList", "unexpected field"));

  DerReader fields = DerReader::Inside(*tbs);
  auto version = fields.Optional(der::kInteger, "version");
  if (!version) return std::unexpected(version.error());
  if (*version && ((*version)->value.size() != 1 || (*version)->value[0] != 1)) {
    return std::unexpected(DerError((*version)->offset, "version", "only v2 (1) is defined"));
  }
  auto inner_algorithm = fields.Expect(der::kSequence, "signature");
  if (!inner_algorithm) return std::unexpected(inner_algorithm.error());
  header.tbs_signature_algorithm = inner_algorithm->encoding;
  if (auto checked = CheckAlgorithmIdentifier(*inner_algorithm, "signature"); !checked) {
    return std::unexpected(checked.error());
  }
  auto issuer = fields.Expect(der::kSequence, "issuer");
  if (!issuer) return std::unexpected(issuer.error());
  header.issuer = issuer->encoding;
  if (auto checked = CheckName(*issuer, "issuer"); !checked) return std::unexpected(checked.error());
  auto this_update = fields.Next("thisUpdate");
  if (!this_update) return std::unexpected(this_update.error());
  auto this_time = ReadTime(*this_update, "thisUpdate");
  if (!this_time) return std::unexpected(this_time.error());
  header.this_update = *this_time;
  if (auto tag = fields.PeekTag(); tag && IsTime(*tag)) {
    auto next_update = fields.Next("nextUpdate");
    if (!next_update) return std::unexpected(next_update.error());
    auto next_time = ReadTime(*next_update, "nextUpdate");
    if (!next_time) return std::unexpected(next_time.error());
    header.next_update = *next_time;
  }
  auto revoked = fields.Optional(der::kSequence, "revokedCertificates");
  if (!revoked) return std::unexpected(revoked.error());
  if (*revoked) {
    header.entries = (*revoked)->value;
    header.entries_offset = (*revoked)->offset + ((*revoked)->encoding.size() - (*revoked)->value.size());
  }
  auto extensions = fields.Optional(der::kContext0Constructed, "crlExtensions");
  if (!extensions) return std::unexpected(extensions.error());
  if (*extensions) {
    if (!*version) return std::unexpected(DerError((*extensions)->offset, "crlExtensions", "extensions in a v1 CRL"));
    DerReader wrapper = DerReader::Inside(**extensions);
    auto list = wrapper.Expect(der::kSequence, "crlExtensions");
    if (!list) return std::unexpected(list.error());
    if (!wrapper.empty()) return std::unexpected(DerError(wrapper.offset(), "crlExtensions", "trailing data"));
    auto read = ForEachExtension(*list, "CRL extension",
                                 [&](const Extension& extension) { return ReadCrlExtension(extension, header); });
    if (!read) return std::unexpected(read.error());
  }
  if (!fields.empty()) return std::unexpected(DerError(fields.offset(), "tbsCertList", "unexpected field"));
  if (header.signature_algorithm.size() != header.tbs_signature_algorithm.size() ||
      !std::equal(header.signature_algorithm.begin(), header.signature_algorithm.end(),
                  header.tbs_signature_algorithm.begin())) {
    return std::unexpected(DerError(algorithm->offset, "signatureAlgorithm",
                                    "differs from the signature algorithm inside tbsCertList (RFC 5280 5.1.1.2)"));
  }
  if (header.delta_base && !header.crl_number) {
    return std::unexpected(DerError((*extensions)->offset, "crlExtensions", "a delta CRL without a cRLNumber (RFC 5280 5.2.3)"));
  }
  return CrlParser(der, std::move(header));
}

namespace {

Result<CrlEntry> ParseEntry(const Tlv& sequence) {
  CrlEntry entry;
  entry.offset = sequence.offset;
  DerReader fields = DerReader::Inside(sequence);
  auto serial = fields.Expect(der::kInteger, "CRL entry serial");
  if (!serial) return std::unexpected(serial.error());
  auto magnitude = ReadUnsignedInteger(*serial, "CRL entry serial", kMaxSerialOctets);
  if (!magnitude) return std::unexpected(magnitude.error());
  entry.serial = *magnitude;
  auto date = fields.Next("CRL entry revocationDate");
  if (!date) return std::unexpected(date.error());
  auto when = ReadTime(*date, "CRL entry revocationDate");
  if (!when) return std::unexpected(when.error());
  entry.revocation_time = *when;
  auto extensions = fields.Optional(der::kSequence, "crlEntryExtensions");
  if (!extensions) return std::unexpected(extensions.error());
  if (*extensions) {
    auto read = ForEachExtension(**extensions, "CRL entry extension",
                                 [&](const Extension& extension) { return ReadEntryExtension(extension, entry); });
    if (!read) return std::unexpected(read.error());
  }
  if (!fields.empty()) return std::unexpected(DerError(fields.offset(), "CRL entry", "unexpected field"));
  return entry;
}

}  // namespace

EntryReader::EntryReader(ByteView entries, std::size_t base_offset) : entries_(entries), base_(base_offset) {}

std::size_t EntryReader::offset() const { return base_ + position_; }

Result<bool> EntryReader::Next(CrlEntry& out) {
  if (position_ == entries_.size()) return false;
  DerReader reader(entries_.subspan(position_), base_ + position_);
  auto sequence = reader.Expect(der::kSequence, "CRL entry");
  if (!sequence) return std::unexpected(sequence.error());
  auto entry = ParseEntry(*sequence);
  if (!entry) return std::unexpected(entry.error());
  position_ += sequence->encoding.size();
  out = *entry;
  return true;
}

namespace {

Result<RawEntry> LocateEntry(const Tlv& sequence) {
  DerReader fields = DerReader::Inside(sequence);
  auto serial = fields.Expect(der::kInteger, "CRL entry serial");
  if (!serial) return std::unexpected(serial.error());
  auto magnitude = ReadUnsignedInteger(*serial, "CRL entry serial", kMaxSerialOctets);
  if (!magnitude) return std::unexpected(magnitude.error());
  return RawEntry{sequence.encoding, *magnitude, sequence.offset};
}

}  // namespace

Result<bool> EntryReader::NextRaw(RawEntry& out) {
  if (position_ == entries_.size()) return false;
  DerReader reader(entries_.subspan(position_), base_ + position_);
  auto sequence = reader.Expect(der::kSequence, "CRL entry");
  if (!sequence) return std::unexpected(sequence.error());
  auto raw = LocateEntry(*sequence);
  if (!raw) return std::unexpected(raw.error());
  position_ += sequence->encoding.size();
  out = *raw;
  return true;
}

Result<CrlEntry> DecodeEntry(const RawEntry& raw) {
  // The encoding was read as one SEQUENCE element by NextRaw: its header is well formed.
  DerReader reader(raw.encoding, raw.offset);
  auto sequence = reader.Expect(der::kSequence, "CRL entry");
  if (!sequence) return std::unexpected(sequence.error());
  return ParseEntry(*sequence);
}

Result<RawEntry> ReadRawEntryAt(ByteView der, std::size_t offset) {
  if (offset >= der.size()) return Fail(ErrorCode::kInternal, "entry offset out of range");
  DerReader reader(der.subspan(offset), offset);
  auto sequence = reader.Expect(der::kSequence, "CRL entry");
  if (!sequence) return std::unexpected(sequence.error());
  return LocateEntry(*sequence);
}

Result<CrlEntry> ReadEntryAt(ByteView der, std::size_t offset) {
  if (offset >= der.size()) return Fail(ErrorCode::kInternal, "entry offset out of range");
  DerReader reader(der.subspan(offset), offset);
  auto sequence = reader.Expect(der::kSequence, "CRL entry");
  if (!sequence) return std::unexpected(sequence.error());
  return ParseEntry(*sequence);
}

Result<void> CrlParser::ForEachEntry(const Visitor& visit, const Progress& progress) const {
  constexpr std::size_t kProgressStep = std::size_t{4} << 20;
  EntryReader reader = Entries();
  std::size_t next_report = header_.entries_offset + kProgressStep;
  CrlEntry entry;
  for (;;) {
    auto more = reader.Next(entry);
    if (!more) return std::unexpected(more.error());
    if (!*more) break;
    if (auto result = visit(entry); !result) return result;
    if (progress && reader.offset() >= next_report) {
      progress(reader.offset());
      next_report = reader.offset() + kProgressStep;
    }
  }
  if (progress) progress(reader.offset());
  return {};
}

// --- Signature ---

namespace {

Result<const EVP_MD*> AllowedDigest(int nid, std::string_view what) {
  switch (nid) {
    case NID_sha256: return EVP_sha256();
    case NID_sha384: return EVP_sha384();
    case NID_sha512: return EVP_sha512();
    case NID_sha1:
      return Fail(ErrorCode::kRefused, std::string(what) + " uses SHA-1, which is no longer accepted");
    default:
      return Fail(ErrorCode::kRefused, std::string(what) + " uses an unsupported digest");
  }
}

struct PssParameters {
  const EVP_MD* digest = nullptr;
  const EVP_MD* mgf1_digest = nullptr;
  int salt_length = 20;
};

Result<PssParameters> ReadPssParameters(const X509_ALGOR* algorithm) {
  UniquePtr<RSA_PSS_PARAMS> params(static_cast<RSA_PSS_PARAMS*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), algorithm->parameter)));
  if (!params) return Fail(ErrorCode::kInvalidArgument, "undecodable RSASSA-PSS parameters");
  // Absent fields take RFC 4055's defaults: SHA-1, MGF1 with SHA-1, salt 20. SHA-1 is then refused.
  PssParameters out;
  auto hash = AllowedDigest(params->hashAlgorithm ? OBJ_obj2nid(params->hashAlgorithm->algorithm) : NID_sha1,
                            "the RSASSA-PSS signature");
  if (!hash) return std::unexpected(hash.error());
  out.digest = *hash;
  int mgf_nid = NID_sha1;
  if (params->maskGenAlgorithm) {
    if (OBJ_obj2nid(params->maskGenAlgorithm->algorithm) != NID_mgf1) {
      return Fail(ErrorCode::kRefused, "RSASSA-PSS with a mask generation function other than MGF1");
    }
    UniquePtr<X509_ALGOR> mask_hash(static_cast<X509_ALGOR*>(
        ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR), params->maskGenAlgorithm->parameter)));
    if (!mask_hash) return Fail(ErrorCode::kInvalidArgument, "undecodable MGF1 parameters");
    mgf_nid = OBJ_obj2nid(mask_hash->algorithm);
  }
  auto mgf = AllowedDigest(mgf_nid, "the RSASSA-PSS mask generation");
  if (!mgf) return std::unexpected(mgf.error());
  out.mgf1_digest = *mgf;
  if (params->saltLength) {
    const long salt = ASN1_INTEGER_get(params->saltLength);
    if (salt < 0 || salt > 1024) return Fail(ErrorCode::kInvalidArgument, "RSASSA-PSS salt length out of range");
    out.salt_length = static_cast<int>(salt);
  }
  if (params->trailerField && ASN1_INTEGER_get(params->trailerField) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "RSASSA-PSS trailer field other than 1");
  }
  return out;
}

}  // namespace

Result<SignatureCheck> SignatureCheck::Begin(const CrlHeader& header, EVP_PKEY* issuer_key) {
  if (header.signature_algorithm.size() != header.tbs_signature_algorithm.size() ||
      std::memcmp(header.signature_algorithm.data(), header.tbs_signature_algorithm.data(),
                  header.signature_algorithm.size()) != 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "the signed and the outer signature algorithms differ (RFC 5280 5.1.1.2)");
  }
  const unsigned char* cursor = header.signature_algorithm.data();
  UniquePtr<X509_ALGOR> algorithm(
      d2i_X509_ALGOR(nullptr, &cursor, static_cast<long>(header.signature_algorithm.size())));
  if (!algorithm) return Fail(ErrorCode::kInvalidArgument, "undecodable signature algorithm: " + DrainOpenSslErrors());
  const int signature_nid = OBJ_obj2nid(algorithm->algorithm);
  const int key_type = EVP_PKEY_get_base_id(issuer_key);

  SignatureCheck check;
  check.tbs_ = header.tbs;
  check.signature_ = header.signature;
  check.context_.reset(EVP_MD_CTX_new());
  if (!check.context_) return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());

  EVP_PKEY_CTX* key_context = nullptr;
  if (signature_nid == NID_rsassaPss) {
    if (key_type != EVP_PKEY_RSA && key_type != EVP_PKEY_RSA_PSS) {
      return Fail(ErrorCode::kVerificationFailed, "an RSASSA-PSS signature but the CA key is not RSA");
    }
    auto pss = ReadPssParameters(algorithm.get());
    if (!pss) return std::unexpected(pss.error());
    if (EVP_DigestVerifyInit(check.context_.get(), &key_context, pss->digest, nullptr, issuer_key) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(key_context, pss->mgf1_digest) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, pss->salt_length) != 1) {
      return Fail(ErrorCode::kCrypto, "preparing RSASSA-PSS verification: " + DrainOpenSslErrors());
    }
    return check;
  }
  const EVP_MD* digest = nullptr;
  int digest_nid = NID_undef;
  int algorithm_key_type = NID_undef;
  if (OBJ_find_sigid_algs(signature_nid, &digest_nid, &algorithm_key_type) != 1) {
    return Fail(ErrorCode::kRefused, "unsupported signature algorithm " + std::string(OBJ_nid2ln(signature_nid)));
  }
  if (algorithm_key_type == NID_ED25519) {
    if (key_type != EVP_PKEY_ED25519) return Fail(ErrorCode::kVerificationFailed, "an Ed25519 signature but the CA key is not Ed25519");
    check.one_shot_ = true;
  } else {
    const bool rsa = algorithm_key_type == NID_rsaEncryption && key_type == EVP_PKEY_RSA;
    const bool ecdsa = algorithm_key_type == NID_X9_62_id_ecPublicKey && key_type == EVP_PKEY_EC;
    if (!rsa && !ecdsa) {
      return Fail(ErrorCode::kVerificationFailed,
                  std::string("the signature algorithm ") + OBJ_nid2ln(signature_nid) + " does not match the CA's key type");
    }
    auto allowed = AllowedDigest(digest_nid, "the CRL's signature");
    if (!allowed) return std::unexpected(allowed.error());
    digest = *allowed;
  }
  if (EVP_DigestVerifyInit(check.context_.get(), &key_context, digest, nullptr, issuer_key) != 1) {
    return Fail(ErrorCode::kCrypto, "preparing verification: " + DrainOpenSslErrors());
  }
  return check;
}

void SignatureCheck::HashUpTo(std::size_t end) {
  if (one_shot_ || !context_) return;
  end = std::min(end, tbs_.size());
  if (end <= hashed_) return;
  EVP_DigestVerifyUpdate(context_.get(), tbs_.data() + hashed_, end - hashed_);
  hashed_ = end;
}

Result<void> SignatureCheck::Finish() {
  int verdict = 0;
  if (one_shot_) {
    verdict = EVP_DigestVerify(context_.get(), signature_.data(), signature_.size(), tbs_.data(), tbs_.size());
  } else {
    HashUpTo(tbs_.size());
    verdict = EVP_DigestVerifyFinal(context_.get(), signature_.data(), signature_.size());
  }
  if (verdict != 1) {
    const std::string detail = DrainOpenSslErrors();
    return Fail(ErrorCode::kVerificationFailed, "the CRL's signature does not verify with the CA's key (" + detail + ")");
  }
  return {};
}

}  // namespace ocsp::importer
