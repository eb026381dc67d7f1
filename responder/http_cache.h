// HTTP caching of OCSP responses (RFC 9919 section 4, which replaces RFC 5019 6.2).
//
// A successful response without a nonce is cacheable until its nextUpdate:
//   Cache-Control: max-age=<seconds until nextUpdate, at most the configured cap>, public, no-transform,
//                  must-revalidate
//   Last-Modified: thisUpdate (the latest of the single responses')   Expires: nextUpdate
//   ETag: W/"<64-bit hash of the response's identity>"
// Everything else (exceptions, refusals, nonce-echoing responses, answers without nextUpdate) gets
// `Cache-Control: max-age=0, no-cache` and no validators: nothing a cache could reuse.
//
// The ETag names what the response says, not its bytes: the hash covers each single response's CertID
// (hash algorithm, issuer hashes, serial), status, revocation time and reason, invalidity date, thisUpdate
// and nextUpdate. Two signatures of the same facts (on-demand signing makes a new producedAt each time) are
// semantically equivalent, hence a weak validator, and If-None-Match can be answered 304 before signing.
// Thread safety: pure functions; formatting writes into the caller's fixed buffer (no allocation).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/clock.h"
#include "responder/authority.h"
#include "responder/request.h"

namespace ocsp::responder {

using HeaderBuffer = std::array<char, 96>;

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate).
std::string_view FormatHttpDate(UnixSeconds time, HeaderBuffer& buffer);

// max(0, min(next_update - now, cap)).
UnixSeconds MaxAge(UnixSeconds now, UnixSeconds next_update, UnixSeconds cap);
std::string_view FormatCacheControl(UnixSeconds max_age, HeaderBuffer& buffer);
inline constexpr std::string_view kNoCache = "max-age=0, no-cache";

std::uint64_t ResponseIdentity(const DecodedRequest& request, const Decision& decision);
std::string_view FormatEtag(std::uint64_t identity, HeaderBuffer& buffer);  // W/"0123456789abcdef"

// Whether an If-None-Match value ("*", or a list of entity tags) matches `etag` by weak comparison.
bool IfNoneMatchHits(std::string_view if_none_match, std::string_view etag);

// thisUpdate for Last-Modified: the latest of the answers'.
UnixSeconds LatestThisUpdate(const Decision& decision);

}  // namespace ocsp::responder
