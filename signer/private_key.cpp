// The ENGINE API is deprecated in OpenSSL 3, and it is still the only way to a PKCS#11 key on Debian 12 (see
// private_key.h). This must precede every OpenSSL header of this file.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "signer/private_key.h"

#include <openssl/engine.h>
#include <openssl/pem.h>
#include <openssl/ui.h>
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <optional>

namespace ocsp::signer {
namespace {

// Refuses a secret file (a PEM key, a PIN file) that others may read or write.
Result<Bytes> ReadSecretFile(const std::filesystem::path& path, std::string_view what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return Fail(ErrorCode::kNotFound,
                "cannot open the " + std::string(what) + " " + path.string() + ": " + std::strerror(errno));
  }
  if (info.st_mode & (S_IROTH | S_IWOTH)) {
    return Fail(ErrorCode::kRefused, "the " + std::string(what) + " " + path.string() +
                                         " is readable or writable by others; run chmod o-rwx on it");
  }
  return ReadFile(path);
}

Result<PrivateKey> LoadPemKey(const std::filesystem::path& path) {
  auto data = ReadSecretFile(path, "responder key");
  if (!data) return std::unexpected(data.error());
  UniquePtr<BIO> bio(BIO_new_mem_buf(data->data(), static_cast<int>(data->size())));
  UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  // The key bytes are not needed any longer; do not leave them in freed heap memory.
  OPENSSL_cleanse(data->data(), data->size());
  if (!key) {
    // The OpenSSL error text never contains key material, only the reason the decoding failed.
    return Fail(ErrorCode::kInvalidArgument,
                "the responder key " + path.string() + " is not a PEM private key: " + DrainOpenSslErrors());
  }
  return PrivateKey{nullptr, std::move(key)};
}

// Owns a structural and a functional reference to an initialised pkcs11 engine bound to one module.
class Pkcs11Engine {
 public:
  explicit Pkcs11Engine(ENGINE* engine) : engine_(engine) {}
  ~Pkcs11Engine() {
    ENGINE_finish(engine_);  // unloads the module (C_Finalize) when the last key is gone
    ENGINE_free(engine_);
  }
  Pkcs11Engine(const Pkcs11Engine&) = delete;
  Pkcs11Engine& operator=(const Pkcs11Engine&) = delete;
  [[nodiscard]] ENGINE* get() const { return engine_; }

 private:
  ENGINE* engine_;
};

// OpenSSL keeps one "pkcs11" engine per process (ENGINE_by_id adds it to its global list), and libp11 binds
// that engine to the first module it loads and keeps it loaded: a MODULE_PATH given later is silently ignored.
// So the process has one PKCS#11 module, and asking for another is an error rather than a key from the wrong
// token.
struct EngineRegistry {
  std::mutex mutex;
  std::weak_ptr<Pkcs11Engine> engine;
  std::optional<std::filesystem::path> bound_module;  // sticky: libp11 never unloads it
};
EngineRegistry& Registry() {
  static EngineRegistry registry;
  return registry;
}

// Called with the registry locked.
Result<std::shared_ptr<Pkcs11Engine>> EngineFor(const std::filesystem::path& module) {
  EngineRegistry& registry = Registry();
  if (registry.bound_module && *registry.bound_module != module) {
    return Fail(ErrorCode::kInvalidArgument,
                "the PKCS#11 module " + module.string() + " cannot be used beside " +
                    registry.bound_module->string() +
                    ": OpenSSL's pkcs11 engine holds one module per process; use one pkcs11_module for every key");
  }
  if (std::error_code error; !std::filesystem::is_regular_file(module, error)) {
    return Fail(ErrorCode::kNotFound, "the PKCS#11 module " + module.string() + " does not exist");
  }
  if (auto existing = registry.engine.lock()) return existing;

  // ENGINE_by_id finds Debian's libengine-pkcs11-openssl in OpenSSL's engines directory.
  ENGINE* raw = ENGINE_by_id("pkcs11");
  if (raw == nullptr) {
    return Fail(ErrorCode::kNotFound,
                "the OpenSSL pkcs11 engine is not available (install libengine-pkcs11-openssl): " +
                    DrainOpenSslErrors());
  }
  // libp11 prints to stderr unless told not to; errors reach us through the OpenSSL error queue anyway.
  ENGINE_ctrl_cmd(raw, "QUIET", 0, nullptr, nullptr, 1);
  if (ENGINE_ctrl_cmd_string(raw, "MODULE_PATH", module.c_str(), 0) != 1 || ENGINE_init(raw) != 1) {
    const std::string why = DrainOpenSslErrors();
    ENGINE_free(raw);
    return Fail(ErrorCode::kCrypto, "cannot load the PKCS#11 module " + module.string() + ": " + why);
  }
  auto engine = std::make_shared<Pkcs11Engine>(raw);
  registry.engine = engine;
  registry.bound_module = module;
  return engine;
}

Result<PrivateKey> LoadPkcs11Key(const std::string& uri, const std::filesystem::path& module,
                                 const std::filesystem::path& pin_file) {
  // A PIN in the URI would sit in the configuration file and in every message that names the key.
  if (uri.find("pin-value") != std::string::npos || uri.find("pin-source") != std::string::npos) {
    return Fail(ErrorCode::kInvalidArgument,
                "the PKCS#11 URI of a responder key must not carry a PIN; use pin_file");
  }
  if (module.empty()) return Fail(ErrorCode::kInvalidArgument, uri + " needs pkcs11_module");
  if (pin_file.empty()) return Fail(ErrorCode::kInvalidArgument, uri + " needs pin_file");
  auto pin = ReadSecretFile(pin_file, "PIN file");
  if (!pin) return std::unexpected(pin.error());
  std::string pin_text(pin->begin(), pin->end());
  OPENSSL_cleanse(pin->data(), pin->size());
  while (!pin_text.empty() && (pin_text.back() == '\n' || pin_text.back() == '\r')) pin_text.pop_back();
  if (pin_text.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the PIN file " + pin_file.string() + " is empty");
  }

  std::lock_guard lock(Registry().mutex);
  auto engine = EngineFor(module);
  if (!engine) {
    OPENSSL_cleanse(pin_text.data(), pin_text.size());
    return std::unexpected(engine.error());
  }
  // libp11 keeps the PIN to log in again if the token drops the session; it never prints it.
  const int pin_set = ENGINE_ctrl_cmd_string((*engine)->get(), "PIN", pin_text.c_str(), 0);
  OPENSSL_cleanse(pin_text.data(), pin_text.size());
  if (pin_set != 1) return Fail(ErrorCode::kCrypto, "cannot pass the PIN to the pkcs11 engine");
  // UI_null: never prompt on a terminal for a PIN, whatever happens.
  UniquePtr<EVP_PKEY> key(
      ENGINE_load_private_key((*engine)->get(), uri.c_str(), const_cast<UI_METHOD*>(UI_null()), nullptr));
  if (!key) {
    return Fail(ErrorCode::kNotFound, "cannot load the PKCS#11 key " + uri + " from " + module.string() +
                                          " (wrong PIN, token or object?): " + DrainOpenSslErrors());
  }
  return PrivateKey{std::static_pointer_cast<void>(*engine), std::move(key)};
}

}  // namespace

bool IsPkcs11Uri(std::string_view location) { return location.starts_with("pkcs11:"); }

Result<PrivateKey> LoadPrivateKey(const std::string& location, const std::filesystem::path& module,
                                  const std::filesystem::path& pin_file) {
  if (IsPkcs11Uri(location)) return LoadPkcs11Key(location, module, pin_file);
  if (!module.empty() || !pin_file.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "pkcs11_module and pin_file apply to pkcs11: keys only, not to " + location);
  }
  return LoadPemKey(location);
}

}  // namespace ocsp::signer
