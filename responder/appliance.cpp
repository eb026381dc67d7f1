#include "responder/appliance.h"

#include "common/openssl.h"

namespace ocsp::responder {

std::vector<const signer::SignerSet*> LoadedIssuers::signer_pointers() const {
  std::vector<const signer::SignerSet*> pointers;
  for (const auto& signer : signers) pointers.push_back(signer.get());
  return pointers;
}

Result<LoadedIssuers> LoadIssuers(const config::Config& config, UnixSeconds now) {
  LoadedIssuers loaded;
  if (config.issuers.empty()) return Fail(ErrorCode::kInvalidArgument, "no [[issuer]] is configured");
  for (const config::IssuerConfig& issuer : config.issuers) {
    auto ca = LoadCertificate(issuer.certificate);
    if (!ca) return Fail(ca.error().code, "issuer " + issuer.name + ": " + ca.error().message);
    auto identity = store::IssuerIdentity::FromCertificate(ca->get());
    if (!identity) return Fail(identity.error().code, "issuer " + issuer.name + ": " + identity.error().message);
    std::vector<signer::SignerFiles> responders;
    for (const config::ResponderConfig& responder : issuer.responders) {
      responders.push_back(
          {responder.certificate, responder.key, responder.pkcs11_module, responder.pin_file, responder.signature});
    }
    auto signers = signer::SignerSet::Load(responders, ca->get(), now);
    if (!signers) return Fail(signers.error().code, "issuer " + issuer.name + ": " + signers.error().message);
    loaded.labels.push_back({identity->id, issuer.name});
    if (auto added = loaded.issuers.Add(std::move(*identity)); !added) return std::unexpected(added.error());
    loaded.signers.push_back(std::make_unique<signer::SignerSet>(std::move(*signers)));
  }
  return loaded;
}

}  // namespace ocsp::responder
