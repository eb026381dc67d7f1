// Private keys for the signer: PEM files, and PKCS#11 objects through OpenSSL's pkcs11 engine (libp11).
// Internal to signer/.
//
// Debian 12 ships no pkcs11 provider for OpenSSL 3, only the libp11 engine (libengine-pkcs11-openssl); the
// ENGINE API is deprecated in OpenSSL 3 but still the one way there. OpenSSL holds one pkcs11 engine per
// process and libp11 binds it to one module for the life of the process, so every PKCS#11 key of a process must
// name the same module (another one is refused, never silently ignored). Keys share the engine, which stays
// initialised while any of them lives.
// Thread safety: LoadPrivateKey may be called from several threads (the engine registry is locked); a loaded
// key is as thread-safe as any EVP_PKEY (libp11 takes a session per operation).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/openssl.h"
#include "common/result.h"

namespace ocsp::signer {

struct PrivateKey {
  // Declared first so it is destroyed last: an engine key needs its engine until it is freed.
  std::shared_ptr<void> engine;
  UniquePtr<EVP_PKEY> key;
};

// `location` is a PEM file or a "pkcs11:" URI; `module` and `pin_file` are for PKCS#11 only (required there,
// refused otherwise). Errors name the file or URI, never the PIN.
Result<PrivateKey> LoadPrivateKey(const std::string& location, const std::filesystem::path& module,
                                  const std::filesystem::path& pin_file);

bool IsPkcs11Uri(std::string_view location);

}  // namespace ocsp::signer
