#include <doctest/doctest.h>

#include "responder/http_cache.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::responder;

TEST_CASE("http cache: dates are IMF-fixdate and max-age counts to nextUpdate, capped, never negative") {
  HeaderBuffer buffer;
  CHECK(FormatHttpDate(784111777, buffer) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(MaxAge(1000, 1600, 3600) == 600);
  CHECK(MaxAge(1000, 100000, 3600) == 3600);
  CHECK(MaxAge(1000, 900, 3600) == 0);
  CHECK(FormatCacheControl(600, buffer) == "max-age=600, public, no-transform, must-revalidate");
}

TEST_CASE("http cache: If-None-Match matches by weak comparison, in lists and as *") {
  HeaderBuffer buffer;
  const std::string etag(FormatEtag(0x0123456789abcdefull, buffer));
  CHECK(etag == "W/\"0123456789abcdef\"");
  CHECK(IfNoneMatchHits(etag, etag));
  CHECK(IfNoneMatchHits("\"0123456789abcdef\"", etag));
  CHECK(IfNoneMatchHits("\"other\", W/\"0123456789abcdef\"", etag));
  CHECK(IfNoneMatchHits("*", etag));
  CHECK_FALSE(IfNoneMatchHits("\"0123456789abcdee\"", etag));
  CHECK_FALSE(IfNoneMatchHits("", etag));
}

TEST_CASE("http cache: the ETag changes with what the response says, not with anything else") {
  auto ca = ocsp::testing::TestCa::Create();
  auto decoded = DecodeRequest(
      ocsp::testing::MakeRequest(ca.certificate.get(), {ocsp::testing::Serial(0x1001)}, EVP_sha1()), {});
  REQUIRE(decoded.has_value());
  Decision decision;
  signer::SingleAnswer answer;
  answer.status = signer::CertStatus::kGood;
  answer.this_update = 1000;
  answer.next_update = 2000;
  decision.answers.push_back(answer);
  const auto identity = ResponseIdentity(*decoded, decision);
  CHECK(ResponseIdentity(*decoded, decision) == identity);
  decision.answers[0].status = signer::CertStatus::kRevoked;
  CHECK(ResponseIdentity(*decoded, decision) != identity);
  decision.answers[0].status = signer::CertStatus::kGood;
  decision.answers[0].this_update = 1001;  // a new CRL
  CHECK(ResponseIdentity(*decoded, decision) != identity);
  CHECK(LatestThisUpdate(decision) == 1001);
}
