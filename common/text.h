// Text forms shared by the CLI, the importer's history and the logs.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"

namespace ocsp {

// "2026-11-21T08:40:51Z"
std::string IsoTime(UnixSeconds seconds);

// A JSON string literal, quotes included, with control characters escaped.
std::string JsonQuote(std::string_view text);

}  // namespace ocsp
