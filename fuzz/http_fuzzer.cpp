// Fuzz target: the HTTP front end (responder/server.h) as a client reaches it, over a real connection.
//
// A responder::Server runs in this process on 127.0.0.1 (tests/support/inprocess_responder.h: two workers,
// two signing threads, a store with one CRL of a test CA). Each input is the byte stream one client sends on
// one connection (request lines, headers, bodies, several requests pipelined); the target writes it, shuts
// down its sending side and reads until the server closes.
//
// Because the test CA's key is made at start-up, inputs cannot carry a valid OCSP request for it. They name
// one instead, and the target substitutes it before sending:
//   {{post HEX}}  a whole POST request (keep-alive, correct Content-Length) for serial HEX
//   {{get HEX}}   a whole GET request with the base64 request in the path
//   {{der HEX}}   only the DER request (the input supplies the headers)
//
// Invariants; a violation abort()s:
//  1. The server accepts the connection and, once the client has finished sending, answers and closes within
//     5 seconds (no hang, no connection kept open after EOF).
//  2. What comes back is a sequence of well-formed HTTP/1.1 responses (status line, headers, Content-Length
//     framing), cut short only if the server reset the connection; never more responses than lines sent.
//  3. Every application/ocsp-response body is one DER OCSPResponse; a successful one is signed by the
//     delegated responder and answers 0x1002 and 0x1003 revoked, any other serial good.
//  4. After every input, once the connection is closed, the server lets go of it within a second: its
//     front end holds no connection (and so no descriptor) any more, and it has never refused a
//     connection over its caps (one connection at a time never reaches them; a refusal means slots leak,
//     and inputs would test the 503 path instead of the parser).
//  5. Every 16 inputs (HTTP_FUZZ_CHECK_EVERY): the server still answers a plain POST for 0x1002 with a
//     verified "revoked", and every connection is closed on the server's side as well (the process's open
//     sockets return to where they were), so a mishandled input cannot leak connections unseen.
//
// Speed: invariant 4 also keeps each input's allocations balanced. libFuzzer counts mallocs and frees of the
// whole process during an input; when mallocs win (the server freeing a connection's state just after the
// input returned) it runs the input again and then a full LeakSanitizer pass, about 0.8 s with the server's
// threads, for up to 1,000 inputs. That, not the exchanges, cost ~50 ms an input on average (docs/fuzzing.md).
// Sanitizers (ASan, UBSan, LeakSanitizer at exit) cover the server's threads as well.
#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "responder/server.h"
#include "tests/support/http_client.h"
#include "tests/support/inprocess_responder.h"
#include "tests/support/ocsp_check.h"

namespace {

using namespace ocsp;
using namespace ocsp::testing;
using namespace std::chrono_literals;

InProcessResponder* server = nullptr;
std::size_t baseline_sockets = 0;
std::uint64_t inputs = 0;
std::uint64_t check_every = 16;  // HTTP_FUZZ_CHECK_EVERY=1 checks after every input (to find which one leaks)

[[noreturn]] void Fail(std::string_view sent, const std::string& received, const std::string& what) {
  std::fprintf(stderr, "\n==http_fuzzer== %s\nsent (%zu bytes): %s\nreceived (%zu bytes): %s\n", what.c_str(),
               sent.size(), ToHex(AsBytes(sent.substr(0, 2048))).c_str(), received.size(),
               ToHex(AsBytes(std::string_view(received).substr(0, 2048))).c_str());
  std::abort();
}

std::string Base64(ByteView der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  out.resize(static_cast<std::size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(), static_cast<int>(der.size()))));
  return out;
}

// Replaces the {{...}} placeholders; anything that is not a well-formed placeholder stays as it is.
std::string Expand(std::string_view input) {
  std::string out;
  while (!input.empty()) {
    const std::size_t open = input.find("{{");
    if (open == std::string_view::npos) break;
    out.append(input.substr(0, open));
    input.remove_prefix(open);
    const std::size_t close = input.find("}}");
    const std::string_view inside = close == std::string_view::npos ? std::string_view() : input.substr(2, close - 2);
    const std::size_t space = inside.find(' ');
    const std::string_view kind = inside.substr(0, space);
    const std::string_view hex = space == std::string_view::npos ? std::string_view() : inside.substr(space + 1);
    std::uint64_t serial = 0;
    bool ok = (kind == "post" || kind == "get" || kind == "der") && !hex.empty() && hex.size() <= 15;
    for (const char c : hex) {
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) ok = false;
      serial = serial * 16 + static_cast<std::uint64_t>(digit < 0 ? 0 : digit);
    }
    if (!ok) {
      out.append("{{");
      input.remove_prefix(2);
      continue;
    }
    const Bytes der = server->Request(serial);
    if (kind == "post") {
      out += OcspPostRequest(der);
    } else if (kind == "get") {
      out += "GET /" + Base64(der) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    } else {
      out.append(reinterpret_cast<const char*>(der.data()), der.size());
    }
    input.remove_prefix(close + 2);
  }
  out.append(input);
  return out;
}

void CheckOcspBody(std::string_view sent, const std::string& received, const HttpResponse& response) {
  auto checked = CheckOcspResponse(AsBytes(response.body), server->ca().responder_certificate.get());
  if (!checked) Fail(sent, received, "an OCSP response body that does not check: " + checked.error().Describe());
  for (const auto& answer : checked->answers) {
    const bool revoked = answer.serial == Serial(0x1002) || answer.serial == Serial(0x1003);
    const int expected = revoked ? V_OCSP_CERTSTATUS_REVOKED : V_OCSP_CERTSTATUS_GOOD;
    if (answer.status != expected) Fail(sent, received, "a wrong status for serial " + ToHex(answer.serial));
  }
}

// Invariant 4: the client's side is closed; the server's goes within a second (at once, normally).
void CheckLetGo(std::string_view sent, const std::string& received) {
  const auto& tracked = server->counters().connections.tracked;
  const auto deadline = std::chrono::steady_clock::now() + 1s;
  while (tracked.load(std::memory_order_relaxed) != 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      Fail(sent, received, "the server still holds " + std::to_string(tracked.load()) +
                               " connection(s) a second after the client closed");
    }
    std::this_thread::yield();
  }
  if (const auto refused = server->counters().connections.refused_over_cap.load(); refused != 0) {
    Fail(sent, received, std::to_string(refused) + " connection(s) refused over the caps");
  }
}

void CheckStillServing(std::string_view sent) {
  auto response = PostOcsp(server->port(), server->Request(0x1002), 5000ms);
  if (!response) Fail(sent, "", "after this input a plain POST fails: " + response.error().Describe());
  auto checked = CheckOcspResponse(AsBytes(response->body), server->ca().responder_certificate.get());
  if (response->status != 200 || !checked || checked->answers.size() != 1 ||
      checked->answers[0].status != V_OCSP_CERTSTATUS_REVOKED) {
    Fail(sent, response->body, "after this input a plain POST for 0x1002 is not answered revoked");
  }
  // The server closes its side just before or just after we read its FIN: give its loops a moment.
  for (int i = 0; i < 200 && OpenSockets() > baseline_sockets; ++i) std::this_thread::sleep_for(5ms);
  if (OpenSockets() > baseline_sockets) {
    Fail(sent, "", "sockets leaked: " + std::to_string(OpenSockets()) + " open, " +
                       std::to_string(baseline_sockets) + " at the start");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Short timeouts, so that an input that leaves a connection idle costs little. The responder is destroyed
  // by an atexit handler registered after OpenSSL's own, so it stops before OpenSSL cleans up.
  server = new InProcessResponder({.workers = 2, .signer_threads = 2, .max_pending_signatures = 64,
                                      .max_request_bytes = 2048, .http_timeout_seconds = 2});
  std::atexit([] {
    delete server;
    server = nullptr;
  });
  baseline_sockets = OpenSockets();
  if (const char* every = std::getenv("HTTP_FUZZ_CHECK_EVERY")) check_every = std::max(1, std::atoi(every));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string sent = Expand(std::string_view(reinterpret_cast<const char*>(data), size));
  auto exchange = ExchangeBytes(server->port(), sent, 5000ms);
  if (!exchange) Fail(sent, "", "cannot connect: " + exchange.error().Describe());
  if (exchange->timed_out) Fail(sent, exchange->received, "the server neither answered nor closed within 5 s");

  const bool head = sent.find("HEAD") != std::string::npos;
  auto parsed = ParseHttpResponses(exchange->received, head);
  if (!parsed) Fail(sent, exchange->received, "not well-formed HTTP: " + parsed.error().message);
  if (parsed->incomplete_tail != 0 && !exchange->reset) {
    Fail(sent, exchange->received, "a response cut short without a reset");
  }
  const auto lines = static_cast<std::size_t>(std::count(sent.begin(), sent.end(), '\n'));
  if (parsed->responses.size() > lines + 1) Fail(sent, exchange->received, "more responses than lines sent");
  for (const HttpResponse& response : parsed->responses) {
    // Every reply is HTTP/1.1, whatever version the request named (RFC 9110 6.2), refusals included.
    if (response.major != 1 || response.minor != 1) {
      Fail(sent, exchange->received,
           "a status line with HTTP/" + std::to_string(response.major) + "." + std::to_string(response.minor));
    }
    if (response.status == 200 && response.Header("Content-Type") == "application/ocsp-response" &&
        !(head && response.body.empty())) {
      CheckOcspBody(sent, exchange->received, response);
    }
  }
  if (++inputs % check_every == 0) CheckStillServing(sent);
  CheckLetGo(sent, exchange->received);
  return 0;
}
