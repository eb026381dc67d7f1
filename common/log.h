// Structured logs: one logfmt line per event on stderr, for journald.
//
// `ts=2026-11-21T08:40:51Z level=info event=listening address=127.0.0.1:8080`
// Never pass key material or request bodies as fields. Per-request events belong at debug level.
// Thread safety: Log may be called from any thread; a line is written with one write(2).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ocsp {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogField = std::pair<std::string_view, std::string_view>;
void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace ocsp
