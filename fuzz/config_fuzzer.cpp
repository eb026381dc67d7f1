// Fuzz target: the TOML configuration parser (config/config.h).
//
// Invariant: ParseConfig never crashes and never lets an exception escape, whatever the text; it either
// returns a Config or an error value. What it accepts stays within the documented ranges.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = ocsp::config::ParseConfig(text, "/nonexistent/fuzz");
  if (config) {
    const bool sane = config->workers >= 1 && config->workers <= 256 && config->signer_threads >= 1 &&
                      config->max_certids_per_request >= 1 && config->max_request_bytes >= 256;
    if (!sane) {
      std::fprintf(stderr, "\n==config_fuzzer== an accepted configuration is out of range:\n%.*s\n",
                   static_cast<int>(size), reinterpret_cast<const char*>(data));
      std::abort();
    }
  }
  return 0;
}
