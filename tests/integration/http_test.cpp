// End to end, the HTTP front end: path prefix, HEAD, caching and 304, health, keep-alive and pipelining,
// slow and excess connections, IPv4 and IPv6 listeners, the verifier registry and SIGHUP reloads under load.
// Answers are checked by independent clients (openssl ocsp, curl) and, for the wire details, by raw sockets.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/integration/process.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::testing;

namespace {

bool Contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

std::size_t CountOf(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  if (needle.empty()) return 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

struct Options {
  std::string responder = {};  // extra [responder] lines
  std::string issuer = {};     // extra [[issuer]] lines
  std::string tail = {};       // extra sections
  std::string listen = "\"127.0.0.1:0\"";
  std::vector<std::pair<std::string, std::string>> files = {};  // written next to the configuration before start
};

// A responder with one RSA-2048 test CA (the JPKI key type), a CRL revoking 0x1002, and whatever `Options` add.
class Responder {
 public:
  explicit Responder(const Options& options, bool import = true) {
    ca_.Write(dir_.path());
    WriteConfig(options);
    for (const auto& [name, text] : options.files) WriteFile(path(name), std::string_view(text));
    CrlOptions crl;
    crl.number = 10;
    crl.this_update = now_ - 600;
    crl.next_update = now_ + 86400;
    crl.revoked = {{Serial(0x1002), now_ - 7200, 1, std::nullopt}};
    WriteFile(dir_.path() / "crl.der", ToDer(ca_.Crl(crl).get()));
    if (import) {
      const CommandResult result = Run({OCSP_CTL_BINARY, "--config", config().string(), "import", "--issuer",
                                        path("ca.pem").string(), path("crl.der").string()});
      INFO(result.output);
      REQUIRE(result.exit_code == 0);
    }
    process_ = std::make_unique<Background>(
        std::vector<std::string>{OCSP_RESPONDER_BINARY, "--config", config().string()}, path("responder.log"));
    const std::string log = process_->WaitForLog("event=metrics_listening");
    std::smatch match;
    std::string rest = log;
    while (std::regex_search(rest, match, std::regex("event=listening address=(\\S+)"))) {
      addresses_.push_back(match[1].str());
      rest = match.suffix();
    }
    REQUIRE(!addresses_.empty());
    port_ = std::stoi(addresses_[0].substr(addresses_[0].rfind(':') + 1));
  }

  void WriteConfig(const Options& options) const {
    WriteFile(config(), "[responder]\nlisten = " + options.listen +
                            "\nworkers = 2\nsigner_threads = 2\n" + options.responder +
                            "\n[store]\npath = \"store\"\nmap_size_mib = 64\n[metrics]\nlisten = \"127.0.0.1:0\"\n" +
                            "[[issuer]]\nname = \"test-ca\"\ncertificate = \"ca.pem\"\n"
                            "responder_certificate = \"responder.pem\"\nresponder_key = \"responder.key\"\n" +
                            options.issuer + "\n" + options.tail);
  }

  // The DER request for `serial` (no nonce unless asked), and its base64 for GET.
  std::string RequestFile(std::uint64_t serial, bool nonce = false) const {
    const std::string name = "req-" + std::to_string(serial) + (nonce ? "-nonce" : "") + ".der";
    std::optional<Bytes> nonce_bytes;
    if (nonce) nonce_bytes = Bytes(16, 0x5a);
    WriteFile(path(name), MakeRequest(ca_.certificate.get(), {Serial(serial)}, EVP_sha1(), nonce_bytes));
    return path(name).string();
  }
  std::string Base64(std::uint64_t serial) const {
    const Bytes der = *ReadFile(RequestFile(serial));
    std::string text(4 * ((der.size() + 2) / 3) + 1, '\0');
    text.resize(static_cast<std::size_t>(
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), der.data(), static_cast<int>(der.size()))));
    return text;
  }

  // openssl ocsp checks a response file: the signature against the responder certificate, and the status.
  CommandResult Verify(const std::filesystem::path& response, std::uint64_t serial) const {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(serial));
    return Run({"openssl", "ocsp", "-issuer", path("ca.pem").string(), "-serial", hex, "-no_nonce", "-respin",
                response.string(), "-VAfile", path("responder.pem").string()});
  }

  // HTTP status from curl; body and headers saved.
  std::string Curl(const std::vector<std::string>& extra, const std::string& name = "out") const {
    std::vector<std::string> argv{"curl", "-s", "-o", path(name + ".body").string(), "-D",
                                  path(name + ".headers").string(), "-w", "%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Run(argv).output;
  }
  std::string Headers(const std::string& name = "out") const { return ReadText(path(name + ".headers")); }
  std::string Body(const std::string& name = "out") const { return ReadText(path(name + ".body")); }

  [[nodiscard]] std::filesystem::path path(const std::string& name) const { return dir_.path() / name; }
  [[nodiscard]] std::filesystem::path config() const { return dir_.path() / "ocsp-responder.toml"; }
  [[nodiscard]] std::string url(const std::string& suffix = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + suffix;
  }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::vector<std::string>& addresses() const { return addresses_; }
  Background& process() { return *process_; }

  const UnixSeconds now_ = SystemClock().Now();

 private:
  TempDir dir_;
  TestCa ca_ = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA", KeyType::kRsa2048);
  std::unique_ptr<Background> process_;
  std::vector<std::string> addresses_;
  int port_ = 0;
};

// A plain TCP client for what curl hides: pipelining, HTTP/1.0, trickling, holding connections open.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawClient() { ::close(fd_); }
  bool Send(std::string_view data) { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()); }
  // Reads until `count` occurrences of `needle`, EOF, or the timeout; returns all read.
  std::string ReadUntil(const std::string& needle, std::size_t count, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (CountOf(received_, needle) < count && !closed_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buffer[8192];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      received_.append(buffer, static_cast<std::size_t>(n));
    }
    return received_;
  }
  // Whether the server closed the connection within `timeout`.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    ReadUntil("\x01never\x01", 1, timeout);
    return closed_;
  }
  [[nodiscard]] bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  std::string received_;
  bool closed_ = false;
};

}  // namespace

TEST_CASE("http: requests are served under the path prefix, GET and HEAD and POST, anything else is 404") {
  Responder responder({.responder = "path_prefix = \"/ocsp\""});
  const std::string base64 = responder.Base64(0x1002);
  CHECK(responder.Curl({responder.url("/ocsp/" + base64)}) == "200");
  CHECK(Contains(responder.Verify(responder.path("out.body"), 0x1002).output, "0x1002: revoked"));
  // Doubled slashes, as from a base URL with a trailing slash.
  CHECK(responder.Curl({responder.url("/ocsp//" + base64)}) == "200");
  CHECK(Contains(responder.Verify(responder.path("out.body"), 0x1002).output, "Response verify OK"));
  CHECK(responder.Curl({"--data-binary", "@" + responder.RequestFile(0x1001), "-H",
                        "Content-Type: application/ocsp-request", responder.url("/ocsp")}) == "200");
  CHECK(Contains(responder.Verify(responder.path("out.body"), 0x1001).output, "0x1001: good"));
  // HEAD: GET's headers, no body (the next pipelined answer follows the headers at once).
  RawClient head(responder.port());
  REQUIRE(head.Send("HEAD /ocsp/" + base64 + " HTTP/1.1\r\nHost: ocsp\r\n\r\nGET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  const std::string replies = head.ReadUntil("alive", 1, std::chrono::seconds(10));
  INFO(replies);
  CHECK(Contains(replies, "Content-Type: application/ocsp-response"));
  CHECK(Contains(replies, "Content-Length: "));
  const auto end_of_head = replies.find("\r\n\r\n");
  REQUIRE(end_of_head != std::string::npos);
  CHECK(replies.substr(end_of_head + 4, 15) == "HTTP/1.1 200 OK");
  // Outside the prefix.
  CHECK(responder.Curl({responder.url("/" + base64)}) == "404");
  CHECK(responder.Curl({responder.url("/ocspx/" + base64)}) == "404");
  CHECK(responder.Curl({"-X", "PUT", responder.url("/ocsp/")}) == "405");
  CHECK(Contains(responder.Headers(), "Allow: GET, HEAD, POST"));
}

TEST_CASE("http: RFC 9919 cache headers on success, If-None-Match answered 304, nothing cacheable otherwise") {
  // Nonces honoured: a nonce-bearing request then gets its own response (with the default, "ignore", it gets
  // the shared one, validators and all).
  Responder responder({.responder = "max_cache_age_seconds = 3600\nnonce = \"honour\""});
  const std::string url = responder.url("/" + responder.Base64(0x1001));
  REQUIRE(responder.Curl({url}) == "200");
  const std::string headers = responder.Headers();
  INFO(headers);
  // nextUpdate is a day away: max-age is capped at an hour.
  CHECK(Contains(headers, "Cache-Control: max-age=3600, public, no-transform, must-revalidate"));
  CHECK(Contains(headers, "Last-Modified: "));
  CHECK(Contains(headers, "Expires: "));
  std::smatch match;
  const std::string text = headers;
  REQUIRE(std::regex_search(text, match, std::regex("ETag: (W/\"[0-9a-f]{16}\")")));
  const std::string etag = match[1].str();

  CHECK(responder.Curl({"-H", "If-None-Match: " + etag, url}, "cached") == "304");
  CHECK(responder.Body("cached").empty());
  CHECK(Contains(responder.Headers("cached"), "ETag: " + etag));
  CHECK(responder.Curl({"-H", "If-None-Match: W/\"0000000000000000\"", url}, "changed") == "200");
  CHECK(Contains(responder.Verify(responder.path("changed.body"), 0x1001).output, "0x1001: good"));
  // A revoked serial is another response: another ETag.
  REQUIRE(responder.Curl({responder.url("/" + responder.Base64(0x1002))}, "revoked") == "200");
  CHECK_FALSE(Contains(responder.Headers("revoked"), etag));

  SUBCASE("a nonce-echoing response carries no validator and may not be reused") {
    CHECK(responder.Curl({"--data-binary", "@" + responder.RequestFile(0x1001, true), "-H",
                          "Content-Type: application/ocsp-request", "-H", "If-None-Match: " + etag, responder.url()},
                         "nonce") == "200");
    const std::string nonce_headers = responder.Headers("nonce");
    CHECK(Contains(nonce_headers, "Cache-Control: max-age=0, no-cache"));
    CHECK_FALSE(Contains(nonce_headers, "ETag"));
    CHECK_FALSE(Contains(nonce_headers, "Expires"));
  }
  SUBCASE("errors and unauthorized answers are not cacheable") {
    CHECK(responder.Curl({responder.url("/not-base64*")}, "bad") == "200");
    CHECK(Contains(responder.Headers("bad"), "Cache-Control: max-age=0, no-cache"));
    CHECK_FALSE(Contains(responder.Headers("bad"), "ETag"));
  }
}

TEST_CASE("http: /healthz is alive, /readyz says ready only once every issuer has a fresh CRL") {
  Responder responder({}, /*import=*/false);
  CHECK(responder.Curl({responder.url("/healthz")}) == "200");
  CHECK(Contains(responder.Body(), "{\"status\":\"alive\"}"));
  CHECK(Contains(responder.Headers(), "Content-Type: application/json"));
  CHECK(responder.Curl({responder.url("/readyz")}) == "503");
  CHECK(Contains(responder.Body(), "\"status\":\"not_ready\""));
  CHECK(Contains(responder.Body(), "\"problem\":\"no CRL imported\""));
  REQUIRE(Run({OCSP_CTL_BINARY, "--config", responder.config().string(), "import", "--issuer",
               responder.path("ca.pem").string(), responder.path("crl.der").string()})
              .exit_code == 0);
  CHECK(responder.Curl({responder.url("/readyz")}) == "200");
  INFO(responder.Body());
  CHECK(Contains(responder.Body(), "\"status\":\"ready\""));
  CHECK(Contains(responder.Body(), "\"name\":\"test-ca\""));
  CHECK(Contains(responder.Body(), "\"fresh\":true"));
}

TEST_CASE("http: HTTP/1.1 keep-alive with pipelined requests, and HTTP/1.0 keep-alive") {
  Responder responder({});
  const std::string path = "/" + responder.Base64(0x1001);
  RawClient client(responder.port());
  // Three requests in one write: three answers, in order, on the one connection.
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: ocsp\r\n\r\n";
  REQUIRE(client.Send(request + request + "GET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  const std::string replies = client.ReadUntil("\"status\":\"alive\"", 1, std::chrono::seconds(10));
  CHECK(CountOf(replies, "HTTP/1.1 200 OK") == 3);
  CHECK(CountOf(replies, "Content-Type: application/ocsp-response") == 2);
  CHECK_FALSE(client.closed());

  RawClient old(responder.port());
  const std::string request10 = "GET " + path + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  REQUIRE(old.Send(request10));
  // Answered in HTTP/1.1, the highest version we speak (RFC 9110 6.2), keeping the connection as asked.
  CHECK(Contains(old.ReadUntil("HTTP/1.1 200", 1, std::chrono::seconds(10)), "Connection: keep-alive"));
  REQUIRE(old.Send(request10));  // the same connection answers again
  CHECK(CountOf(old.ReadUntil("HTTP/1.1 200", 2, std::chrono::seconds(10)), "HTTP/1.1 200") == 2);
}

TEST_CASE("http: a request trickling in past the header timeout is answered 408 and closed (slowloris)") {
  Responder responder({.responder = "header_timeout_seconds = 2\nhttp_timeout_seconds = 30"});
  RawClient slow(responder.port());
  REQUIRE(slow.Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\n"));
  const auto started = std::chrono::steady_clock::now();
  // One header byte every 300 ms keeps the connection active; only the header timeout ends it.
  bool closed = false;
  for (int i = 0; i < 30 && !closed; ++i) {
    slow.Send("X");
    closed = slow.ClosedWithin(std::chrono::milliseconds(300));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(closed);
  CHECK(seconds < 5.0);
  CHECK(Contains(slow.ReadUntil("", 0, std::chrono::milliseconds(0)), "408 Request Timeout"));
  // A connection that is merely idle between requests stays while under http_timeout.
  RawClient idle(responder.port());
  REQUIRE(idle.Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  CHECK(Contains(idle.ReadUntil("alive", 1, std::chrono::seconds(5)), "200 OK"));
  CHECK_FALSE(idle.ClosedWithin(std::chrono::milliseconds(3000)));
  REQUIRE(idle.Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  CHECK(CountOf(idle.ReadUntil("alive", 2, std::chrono::seconds(5)), "200 OK") == 2);
}

TEST_CASE("http: past the per-address connection cap, a new connection is refused with 503") {
  Responder responder({.responder = "max_connections_per_address = 4"});
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<RawClient>(responder.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawClient fifth(responder.port());
  CHECK(Contains(fifth.ReadUntil("\r\n\r\n", 1, std::chrono::seconds(5)), "503 Service Unavailable"));
  CHECK(fifth.ClosedWithin(std::chrono::seconds(2)));
  // The held ones still work; once one closes, its slot is free again.
  REQUIRE(held[0]->Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  CHECK(Contains(held[0]->ReadUntil("alive", 1, std::chrono::seconds(5)), "200 OK"));
  held.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server notices the close
  RawClient again(responder.port());
  REQUIRE(again.Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\n\r\n"));
  CHECK(Contains(again.ReadUntil("alive", 1, std::chrono::seconds(5)), "200 OK"));
}

TEST_CASE("http: a connection closed before any request gives back its slot and its descriptor at once") {
  // Silent, refused over the cap, or answered 400 by the parser: none reaches the handler. evhttp's guard
  // used to find them only at its once-a-second sweep, keeping their descriptors and slots that long.
  Responder responder({.responder = "max_connections_per_address = 4"});
  const auto sockets = [&] {
    std::size_t count = 0;
    const auto fds = std::filesystem::path("/proc") / std::to_string(responder.process().pid()) / "fd";
    for (const auto& entry : std::filesystem::directory_iterator(fds)) {
      std::error_code error;
      if (std::filesystem::read_symlink(entry.path(), error).string().starts_with("socket:")) ++count;
    }
    return count;
  };
  const std::size_t baseline = sockets();
  for (int round = 0; round < 3; ++round) {
    {
      std::vector<std::unique_ptr<RawClient>> held;
      for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<RawClient>(responder.port()));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // admitted
      RawClient fifth(responder.port());
      CHECK(Contains(fifth.ReadUntil("\r\n\r\n", 1, std::chrono::seconds(5)), "503 Service Unavailable"));
      REQUIRE(held[0]->Send("\x16\x03\x01 not http\r\n\r\n"));
      CHECK(Contains(held[0]->ReadUntil("\r\n\r\n", 1, std::chrono::seconds(5)), "400 Bad Request"));
    }  // all closed here
    const auto closed = std::chrono::steady_clock::now();
    while (sockets() > baseline && std::chrono::steady_clock::now() - closed < std::chrono::seconds(3)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto took = std::chrono::steady_clock::now() - closed;
    INFO("round " << round << ": " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(took < std::chrono::milliseconds(250));  // the sweep's second would pass in 1 round of 4, not 3 of 3
    // Four slots free again.
    std::vector<std::unique_ptr<RawClient>> next;
    for (int i = 0; i < 4; ++i) next.push_back(std::make_unique<RawClient>(responder.port()));
    for (auto& client : next) {
      REQUIRE(client->Send("GET /healthz HTTP/1.1\r\nHost: ocsp\r\nConnection: close\r\n\r\n"));
      CHECK(Contains(client->ReadUntil("alive", 1, std::chrono::seconds(5)), "200 OK"));
    }
    next.clear();
    const auto again = std::chrono::steady_clock::now();
    while (sockets() > baseline && std::chrono::steady_clock::now() - again < std::chrono::seconds(3)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

TEST_CASE("http: IPv4 and IPv6 listeners answer alike") {
  Responder responder({.listen = "[\"127.0.0.1:0\", \"[::1]:0\"]"});
  REQUIRE(responder.addresses().size() == 2);
  for (const std::string& address : responder.addresses()) {
    INFO(address);
    const CommandResult result =
        Run({"openssl", "ocsp", "-issuer", responder.path("ca.pem").string(), "-serial", "0x1002", "-url",
             "http://" + address + "/", "-VAfile", responder.path("responder.pem").string()});
    INFO(result.output);
    CHECK(Contains(result.output, "Response verify OK"));
    CHECK(Contains(result.output, "0x1002: revoked"));
  }
}

TEST_CASE("http: with an issued-serials list, a serial the CA never issued is unknown, and SIGHUP rereads the list") {
  Responder responder({.issuer = "issued_serials = \"issued.txt\"", .files = {{"issued.txt", "1001-1002\n"}}});
  auto status_of = [&](std::uint64_t serial) {
    REQUIRE(responder.Curl({responder.url("/" + responder.Base64(serial))}) == "200");
    const CommandResult verify = responder.Verify(responder.path("out.body"), serial);
    INFO(verify.output);
    CHECK(Contains(verify.output, "Response verify OK"));
    const auto at = verify.output.find(": ");
    return at == std::string::npos ? std::string() : verify.output.substr(at + 2, verify.output.find('\n', at) - at - 2);
  };
  CHECK(status_of(0x1001) == "good");
  CHECK(status_of(0x1002) == "revoked");
  CHECK(status_of(0x1006) == "unknown");
  WriteFile(responder.path("issued.txt"), std::string_view("1000-10ff\n"));
  responder.process().Signal(SIGHUP);
  responder.process().WaitForLog("event=reloaded generation=2");
  CHECK(status_of(0x1006) == "good");
  CHECK(status_of(0x2001) == "unknown");
}

namespace {

std::string Verifier(const std::string& name, const std::string& network, const std::string& environment,
                     const std::string& access_from = "2020-01-01", const std::string& rate = "1000",
                     const std::string& burst = "") {
  return "[[verifier]]\nname = \"" + name + "\"\nnetworks = [\"" + network + "\"]\nenvironment = \"" +
         environment + "\"\naccess_from = " + access_from + "\nrate_per_second = " + rate + "\n" +
         (burst.empty() ? "" : "burst = " + burst + "\n");
}

}  // namespace

TEST_CASE("access: the registry refuses unregistered addresses, opens on the agreement's day, keeps environments") {
  Responder responder({.tail = "[access]\nregistry = \"verifiers.toml\"\n",
                       .files = {{"verifiers.toml", Verifier("elsewhere", "192.0.2.0/24", "production")}}});
  const std::string url = responder.url("/" + responder.Base64(0x1001));
  int generation = 1;
  auto reload = [&](const std::string& registry) {
    WriteFile(responder.path("verifiers.toml"), std::string_view(registry));
    responder.process().Signal(SIGHUP);
    responder.process().WaitForLog("event=reloaded generation=" + std::to_string(++generation));
  };

  // 127.0.0.1 is in no verifier's networks.
  CHECK(responder.Curl({url}) == "403");
  CHECK(Contains(responder.Headers(), "Cache-Control: max-age=0, no-cache"));
  // Health checks are not verifiers' traffic.
  CHECK(responder.Curl({responder.url("/healthz")}) == "200");

  // Registered, but the agreement takes effect tomorrow.
  reload(Verifier("local", "127.0.0.0/8", "production", "2999-01-01"));
  CHECK(responder.Curl({url}) == "403");

  // Registered and open: answered, checked by openssl.
  reload(Verifier("local", "127.0.0.0/8", "production"));
  CHECK(responder.Curl({url}) == "200");
  CHECK(Contains(responder.Verify(responder.path("out.body"), 0x1001).output, "0x1001: good"));

  // A verifier registered for the test environment may not ask a production issuer.
  reload(Verifier("local", "127.0.0.0/8", "test"));
  CHECK(responder.Curl({url}) == "200");
  const CommandResult parsed =
      Run({"openssl", "ocsp", "-respin", responder.path("out.body").string(), "-resp_text", "-noverify"});
  CHECK(Contains(parsed.output, "unauthorized (6)"));

  // A registry that does not parse: the running one stays, and the log says why.
  WriteFile(responder.path("verifiers.toml"), std::string_view("[[verifier]]\nname = 1\n"));
  responder.process().Signal(SIGHUP);
  CHECK(Contains(responder.process().WaitForLog("event=reload_failed"), "access.registry"));
  CHECK(responder.Curl({url}) == "200");
  CHECK(Contains(Run({"openssl", "ocsp", "-respin", responder.path("out.body").string(), "-resp_text",
                      "-noverify"}).output,
                 "unauthorized (6)"));

  // Every refusal was counted (logged at stop until the metrics module exports them).
  CHECK(responder.process().Stop() == 0);
  const std::string log = ReadText(responder.path("responder.log"));
  INFO(log);
  CHECK(Contains(log, "forbidden_unregistered=1 "));
  CHECK(Contains(log, "forbidden_not_yet_open=1 "));
  CHECK(Contains(log, "wrong_environment=2 "));
  CHECK(Contains(log, "reloads=3 "));
  CHECK(Contains(log, "failed_reloads=1"));
}

TEST_CASE("access: over its rate, a verifier gets tryLater, or HTTP 429 when configured") {
  for (const bool http_429 : {false, true}) {
    INFO("429: " << http_429);
    Responder responder(
        {.tail = std::string("[access]\nregistry = \"verifiers.toml\"\n") +
                 (http_429 ? "over_rate_limit = \"429\"\n" : ""),
         .files = {{"verifiers.toml", Verifier("local", "127.0.0.0/8", "production", "2020-01-01", "1", "2")}}});
    // 12 requests on one keep-alive connection (one worker: its bucket holds 1 token, refills at 0.5/s).
    std::string config_text;
    for (int i = 0; i < 12; ++i) {
      config_text += "url = \"" + responder.url("/" + responder.Base64(0x1001)) + "\"\noutput = \"" +
                     responder.path("rate-" + std::to_string(i) + ".der").string() + "\"\n";
    }
    WriteFile(responder.path("rate.curl"), std::string_view(config_text));
    const std::string codes =
        Run({"curl", "-s", "-w", "%{http_code}\\n", "-K", responder.path("rate.curl").string()}).output;
    INFO(codes);
    if (http_429) {
      CHECK(CountOf(codes, "200") + CountOf(codes, "429") == 12);
      CHECK(CountOf(codes, "429") >= 9);
      CHECK(CountOf(codes, "200") >= 1);
    } else {
      // tryLater travels as an OCSP answer with HTTP 200; the rest are signed answers.
      CHECK(CountOf(codes, "200") == 12);
      int try_later = 0;
      int good = 0;
      for (int i = 0; i < 12; ++i) {
        const auto file = responder.path("rate-" + std::to_string(i) + ".der");
        const CommandResult parsed = Run({"openssl", "ocsp", "-respin", file.string(), "-resp_text", "-noverify"});
        try_later += Contains(parsed.output, "trylater (3)") ? 1 : 0;
        good += Contains(responder.Verify(file, 0x1001).output, "0x1001: good") ? 1 : 0;
      }
      CHECK(try_later >= 9);
      CHECK(good >= 1);
      CHECK(try_later + good == 12);
    }
  }
}

TEST_CASE("reload: no request fails across several SIGHUPs under keep-alive load") {
  Responder responder({.tail = "[access]\nregistry = \"verifiers.toml\"\n",
                       .files = {{"verifiers.toml", Verifier("local", "127.0.0.0/8", "production")}}});
  // Two clients, each one keep-alive connection looping over GETs, while the configuration reloads.
  const std::string url = responder.url("/" + responder.Base64(0x1002));
  std::string config_text;
  constexpr int kRequests = 20000;  // per client: long enough for every reload to land mid-load (stored answers are fast)
  for (int i = 0; i < kRequests; ++i) config_text += "url = \"" + url + "\"\noutput = \"/dev/null\"\n";
  WriteFile(responder.path("load.curl"), std::string_view(config_text));
  std::array<std::string, 2> codes;
  std::atomic<int> running{2};
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    clients.emplace_back([&, i] {
      codes[i] = Run({"curl", "-s", "-w", "%{http_code} %{num_connects}\\n", "-K", responder.path("load.curl").string()},
                     std::chrono::seconds(120))
                     .output;
      --running;
    });
  }
  int reloads = 0;
  for (int generation = 2; generation <= 6; ++generation) {
    INFO("clients still running at reload " << generation << ": " << running.load());
    CHECK(running > 0);  // the reload lands while requests are in flight
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    responder.process().Signal(SIGHUP);
    responder.process().WaitForLog("event=reloaded generation=" + std::to_string(generation));
    ++reloads;
  }
  for (auto& client : clients) client.join();
  CHECK(reloads == 5);
  for (const std::string& output : codes) {
    INFO(output.substr(0, 400));
    CHECK(CountOf(output, "200 ") == kRequests);
    CHECK(CountOf(output, " 1\n") == 1);  // one connection for them all: nothing was dropped
  }
  // A sample answer after the reloads, checked by openssl.
  REQUIRE(responder.Curl({url}) == "200");
  CHECK(Contains(responder.Verify(responder.path("out.body"), 0x1002).output, "0x1002: revoked"));
}
