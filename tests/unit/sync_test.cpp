#include <doctest/doctest.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <map>
#include <mutex>
#include <thread>

#include "importer/sync.h"
#include "responder/libevent.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::importer;
using ocsp::testing::CrlOptions;
using ocsp::testing::RevokedSpec;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using ocsp::testing::ToDer;
using ocsp::testing::WriteFile;

namespace {

// A canned answer of the test server.
struct Response {
  int status = 200;
  std::string body;
  std::string etag;
  std::string last_modified;
  std::string location;     // for a redirect
  bool chunked = false;     // no Content-Length: the client cannot know the size in advance
  bool never_answer = false;

  static Response Content(std::string content, std::string entity_tag = {}, std::string modified = {}) {
    Response response;
    response.body = std::move(content);
    response.etag = std::move(entity_tag);
    response.last_modified = std::move(modified);
    return response;
  }
  static Response Chunked(std::string content) {
    Response response = Content(std::move(content));
    response.chunked = true;
    return response;
  }
  static Response Status(int code, std::string content = {}) {
    Response response = Content(std::move(content));
    response.status = code;
    return response;
  }
  static Response Redirect(int code, std::string target) {
    Response response = Status(code);
    response.location = std::move(target);
    return response;
  }
  static Response Hang() {
    Response response;
    response.never_answer = true;
    return response;
  }
};

// An HTTP server on 127.0.0.1 (a free port) in its own thread, answering from a table of canned responses and
// honouring If-None-Match and If-Modified-Since the way a CRL distribution point does.
class TestHttpServer {
 public:
  struct Seen {
    int requests = 0;
    std::string if_none_match;
    std::string if_modified_since;
  };

  TestHttpServer() {
    // Stopping the loop from the test's thread needs libevent's locking.
    static const int threads_ready = evthread_use_pthreads();
    REQUIRE(threads_ready == 0);
    base_.reset(event_base_new());
    http_.reset(evhttp_new(base_.get()));
    REQUIRE(http_);
    evhttp_set_gencb(http_.get(), &TestHttpServer::Handle, this);
    evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_.get(), "127.0.0.1", 0);
    REQUIRE(bound != nullptr);
    sockaddr_in address{};
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    // An event rather than event_base_loopbreak(): a break asked for before the loop starts would be lost,
    // an activated event waits for it.
    auto stop = [](evutil_socket_t, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); };
    stop_.reset(event_new(base_.get(), -1, 0, stop, base_.get()));
    REQUIRE(stop_);
    thread_ = std::thread([this] { event_base_dispatch(base_.get()); });
  }
  ~TestHttpServer() {
    event_active(stop_.get(), 0, 0);
    thread_.join();
  }
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  void Set(const std::string& path, Response response) {
    std::lock_guard lock(mutex_);
    responses_[path] = std::move(response);
  }
  [[nodiscard]] std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] Seen SeenAt(const std::string& path) {
    std::lock_guard lock(mutex_);
    return seen_[path];
  }

 private:
  static void Handle(evhttp_request* request, void* self) { static_cast<TestHttpServer*>(self)->Answer(request); }

  void Answer(evhttp_request* request) {
    std::string path = evhttp_request_get_uri(request);
    path = path.substr(0, path.find('?'));
    const evkeyvalq* in = evhttp_request_get_input_headers(request);
    auto header = [&](const char* name) {
      const char* value = evhttp_find_header(in, name);
      return std::string(value == nullptr ? "" : value);
    };
    Response response;
    {
      std::lock_guard lock(mutex_);
      Seen& seen = seen_[path];
      ++seen.requests;
      seen.if_none_match = header("If-None-Match");
      seen.if_modified_since = header("If-Modified-Since");
      const auto found = responses_.find(path);
      if (found == responses_.end()) {
        evhttp_send_error(request, 404, nullptr);
        return;
      }
      response = found->second;
    }
    if (response.never_answer) return;  // the connection stays open until the client gives up

    evkeyvalq* out = evhttp_request_get_output_headers(request);
    if (!response.etag.empty()) evhttp_add_header(out, "ETag", response.etag.c_str());
    if (!response.last_modified.empty()) evhttp_add_header(out, "Last-Modified", response.last_modified.c_str());
    if (!response.location.empty()) evhttp_add_header(out, "Location", response.location.c_str());
    // RFC 9110 13.2.2: If-None-Match decides when present; If-Modified-Since only without it.
    const std::string if_none_match = header("If-None-Match");
    const bool not_modified =
        response.status == 200 &&
        (!if_none_match.empty() ? if_none_match == response.etag
                                : !response.last_modified.empty() &&
                                      header("If-Modified-Since") == response.last_modified);
    if (not_modified) {
      evhttp_send_reply(request, 304, "Not Modified", nullptr);
      return;
    }
    responder::EvbufferPtr body(evbuffer_new());
    evbuffer_add(body.get(), response.body.data(), response.body.size());
    if (response.chunked) {
      evhttp_send_reply_start(request, response.status, "OK");
      evhttp_send_reply_chunk(request, body.get());
      evhttp_send_reply_end(request);
    } else {
      evhttp_send_reply(request, response.status, "Whatever", body.get());
    }
  }

  responder::EventBasePtr base_;
  responder::EvhttpPtr http_;  // declared after base_: freed before it
  responder::EventPtr stop_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, Response> responses_;
  std::map<std::string, Seen> seen_;
};

// A TLS server on 127.0.0.1 with a certificate no one trusts: it accepts connections and attempts the
// handshake, nothing more.
class UntrustedTlsServer {
 public:
  UntrustedTlsServer(X509* certificate, EVP_PKEY* key) : context_(SSL_CTX_new(TLS_server_method()), SSL_CTX_free) {
    REQUIRE(context_);
    REQUIRE(SSL_CTX_use_certificate(context_.get(), certificate) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(context_.get(), key) == 1);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener_, 8) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int connection = ::accept(listener_, nullptr, nullptr);
        if (connection < 0) return;  // shut down
        std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(context_.get()), SSL_free);
        SSL_set_fd(ssl.get(), connection);
        SSL_accept(ssl.get());  // the client is expected to abort it
        ::close(connection);
      }
    });
  }
  ~UntrustedTlsServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listener_);
  }
  UntrustedTlsServer(const UntrustedTlsServer&) = delete;
  UntrustedTlsServer& operator=(const UntrustedTlsServer&) = delete;
  [[nodiscard]] std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/ca.crl"; }

 private:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

std::string ReadText(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  REQUIRE(data.has_value());
  return std::string(data->begin(), data->end());
}

store::Sha256 Sha256Of(std::string_view text) {
  store::Sha256 digest{};
  unsigned int length = 0;
  REQUIRE(EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1);
  return digest;
}

Fetcher MakeFetcher(std::size_t max_bytes = 1 << 20, long timeout_seconds = 5) {
  auto fetcher = Fetcher::Create(SyncOptions{max_bytes, 2, timeout_seconds});
  REQUIRE(fetcher.has_value());
  return std::move(*fetcher);
}

bool Contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("sync fetch: the first fetch downloads the body with its validators and SHA-256") {
  TestHttpServer server;
  server.Set("/ca.crl", Response::Content("first CRL", "\"v1\"", "Mon, 01 Jan 2024 00:00:00 GMT"));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();

  auto fetched = fetcher.Fetch(server.Url("/ca.crl"), {}, dir.path() / "out");
  REQUIRE_MESSAGE(fetched.has_value(), fetched.error().message);
  CHECK_FALSE(fetched->not_modified);
  CHECK(fetched->bytes == 9);
  CHECK(fetched->sha256 == Sha256Of("first CRL"));
  CHECK(fetched->validators.etag == "\"v1\"");
  CHECK(fetched->validators.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT");
  CHECK(ReadText(dir.path() / "out") == "first CRL");
  CHECK(server.SeenAt("/ca.crl").if_none_match.empty());

  struct stat info{};
  REQUIRE(::stat((dir.path() / "out").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
}

TEST_CASE("sync fetch: with the stored validators the server answers 304 and nothing is written") {
  TestHttpServer server;
  server.Set("/ca.crl", Response::Content("first CRL", "\"v1\"", "Mon, 01 Jan 2024 00:00:00 GMT"));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  auto first = fetcher.Fetch(server.Url("/ca.crl"), {}, dir.path() / "first");
  REQUIRE(first.has_value());

  auto second = fetcher.Fetch(server.Url("/ca.crl"), first->validators, dir.path() / "second");
  REQUIRE_MESSAGE(second.has_value(), second.error().message);
  CHECK(second->not_modified);
  CHECK(second->bytes == 0);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "second"));
  const auto seen = server.SeenAt("/ca.crl");
  CHECK(seen.requests == 2);
  CHECK(seen.if_none_match == "\"v1\"");
  CHECK(seen.if_modified_since == "Mon, 01 Jan 2024 00:00:00 GMT");
}

TEST_CASE("sync fetch: changed content is fetched again with its new validators") {
  TestHttpServer server;
  server.Set("/ca.crl", Response::Content("first CRL", "\"v1\""));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  auto first = fetcher.Fetch(server.Url("/ca.crl"), {}, dir.path() / "first");
  REQUIRE(first.has_value());

  server.Set("/ca.crl", Response::Content("second CRL", "\"v2\""));
  auto second = fetcher.Fetch(server.Url("/ca.crl"), first->validators, dir.path() / "second");
  REQUIRE_MESSAGE(second.has_value(), second.error().message);
  CHECK_FALSE(second->not_modified);
  CHECK(second->validators.etag == "\"v2\"");
  CHECK(second->sha256 == Sha256Of("second CRL"));
  CHECK(ReadText(dir.path() / "second") == "second CRL");
}

TEST_CASE("sync fetch: without an ETag, Last-Modified is sent back as If-Modified-Since") {
  TestHttpServer server;
  server.Set("/ca.crl", Response::Content("CRL", {}, "Tue, 02 Jan 2024 00:00:00 GMT"));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  auto first = fetcher.Fetch(server.Url("/ca.crl"), {}, dir.path() / "first");
  REQUIRE(first.has_value());
  CHECK(first->validators.etag.empty());

  auto second = fetcher.Fetch(server.Url("/ca.crl"), first->validators, dir.path() / "second");
  REQUIRE(second.has_value());
  CHECK(second->not_modified);
  CHECK(server.SeenAt("/ca.crl").if_none_match.empty());
}

TEST_CASE("sync fetch: a body larger than max_bytes is aborted, whether or not the server announces its size") {
  TestHttpServer server;
  const std::string big(4096, 'x');
  server.Set("/announced.crl", Response::Content(big));
  server.Set("/chunked.crl", Response::Chunked(big));
  TempDir dir;
  Fetcher fetcher = MakeFetcher(/*max_bytes=*/1024);

  for (const std::string path : {"/announced.crl", "/chunked.crl"}) {
    CAPTURE(path);
    auto fetched = fetcher.Fetch(server.Url(path), {}, dir.path() / "out");
    REQUIRE_FALSE(fetched.has_value());
    CHECK(Contains(fetched.error().message, server.Url(path)));
    CHECK(Contains(fetched.error().message, "larger than the limit of 1024 bytes"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));
  }
  // Exactly at the limit is fine.
  server.Set("/exact.crl", Response::Chunked(std::string(1024, 'y')));
  CHECK(fetcher.Fetch(server.Url("/exact.crl"), {}, dir.path() / "out").has_value());
}

TEST_CASE("sync fetch: a server that never answers runs into the total timeout") {
  TestHttpServer server;
  server.Set("/hang.crl", Response::Hang());
  TempDir dir;
  Fetcher fetcher = MakeFetcher(1 << 20, /*timeout_seconds=*/1);
  const auto started = std::chrono::steady_clock::now();
  auto fetched = fetcher.Fetch(server.Url("/hang.crl"), {}, dir.path() / "out");
  REQUIRE_FALSE(fetched.has_value());
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(4));
  CHECK(Contains(fetched.error().message, server.Url("/hang.crl")));
  CHECK(Contains(fetched.error().message, "timed out"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));
}

TEST_CASE("sync fetch: an HTTP error names the URL and the status") {
  TestHttpServer server;
  server.Set("/gone.crl", Response::Status(410, "gone"));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  auto missing = fetcher.Fetch(server.Url("/missing.crl"), {}, dir.path() / "out");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(missing.error().message == server.Url("/missing.crl") + ": HTTP status 404");
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));

  auto gone = fetcher.Fetch(server.Url("/gone.crl"), {}, dir.path() / "out");
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().message == server.Url("/gone.crl") + ": HTTP status 410");

  server.Set("/empty", Response::Status(204));
  auto empty = fetcher.Fetch(server.Url("/empty"), {}, dir.path() / "out");
  REQUIRE_FALSE(empty.has_value());
  CHECK(Contains(empty.error().message, "unexpected HTTP status 204"));
}

TEST_CASE("sync fetch: redirects are followed three times at most, and only to http and https") {
  TestHttpServer server;
  server.Set("/ca.crl", Response::Content("CRL", "\"v1\""));
  server.Set("/moved", Response::Redirect(302, "/ca.crl"));
  server.Set("/1", Response::Redirect(301, "/2"));
  server.Set("/2", Response::Redirect(301, "/3"));
  server.Set("/3", Response::Redirect(301, "/4"));
  server.Set("/4", Response::Redirect(301, "/ca.crl"));
  server.Set("/to-file", Response::Redirect(302, "file:///etc/hostname"));
  TempDir dir;
  Fetcher fetcher = MakeFetcher();

  auto moved = fetcher.Fetch(server.Url("/moved"), {}, dir.path() / "out");
  REQUIRE_MESSAGE(moved.has_value(), moved.error().message);
  CHECK(ReadText(dir.path() / "out") == "CRL");
  CHECK(moved->validators.etag == "\"v1\"");  // the validators of the final response

  CHECK(fetcher.Fetch(server.Url("/2"), {}, dir.path() / "out").has_value());  // 3 redirects
  auto too_many = fetcher.Fetch(server.Url("/1"), {}, dir.path() / "out");     // 4 redirects
  REQUIRE_FALSE(too_many.has_value());
  CHECK(Contains(too_many.error().message, server.Url("/1") + ": "));
  CHECK(Contains(too_many.error().message, "redirect"));

  auto to_file = fetcher.Fetch(server.Url("/to-file"), {}, dir.path() / "out");
  REQUIRE_FALSE(to_file.has_value());
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));
}

TEST_CASE("sync fetch: schemes other than http and https are refused") {
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  for (const std::string url : {"file:///etc/hostname", "ftp://127.0.0.1/ca.crl", "gopher://127.0.0.1/"}) {
    CAPTURE(url);
    auto fetched = fetcher.Fetch(url, {}, dir.path() / "out");
    REQUIRE_FALSE(fetched.has_value());
    CHECK(Contains(fetched.error().message, url + ": "));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));
  }
}

TEST_CASE("sync fetch: an https server whose certificate does not verify is refused") {
  const TestCa untrusted = TestCa::Create("/CN=127.0.0.1");
  UntrustedTlsServer server(untrusted.certificate.get(), untrusted.key.get());
  TempDir dir;
  Fetcher fetcher = MakeFetcher();
  auto fetched = fetcher.Fetch(server.Url(), {}, dir.path() / "out");
  REQUIRE_FALSE(fetched.has_value());
  CHECK(Contains(fetched.error().message, server.Url() + ": "));
  CHECK(Contains(fetched.error().message, "certificate"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out"));
}

TEST_CASE("sync fetch: a connection refused is an error naming the URL") {
  TempDir dir;
  std::string url;
  {
    TestHttpServer closed;  // take a port that was free a moment ago
    url = closed.Url("/ca.crl");
  }
  Fetcher fetcher = MakeFetcher();
  auto fetched = fetcher.Fetch(url, {}, dir.path() / "out");
  REQUIRE_FALSE(fetched.has_value());
  CHECK(Contains(fetched.error().message, url + ": "));
}

TEST_CASE("sync directory: only regular *.crl, *.der and *.pem files are sources, sorted, with their hashes") {
  TempDir dir;
  WriteFile(dir.path() / "b.crl", std::string_view("B"));
  WriteFile(dir.path() / "a.PEM", std::string_view("A"));
  WriteFile(dir.path() / "c.der", std::string_view("C"));
  WriteFile(dir.path() / "notes.txt", std::string_view("no"));
  WriteFile(dir.path() / ".d.crl", std::string_view("hidden"));
  WriteFile(dir.path() / "e.crl.part", std::string_view("partial"));
  std::filesystem::create_directory(dir.path() / "sub.crl");
  std::filesystem::create_symlink(dir.path() / "b.crl", dir.path() / "link.crl");

  auto files = ListDirectorySource(dir.path(), 1024);
  REQUIRE_MESSAGE(files.has_value(), files.error().message);
  REQUIRE(files->size() == 4);
  CHECK((*files)[0].path == dir.path() / "a.PEM");
  CHECK((*files)[1].path == dir.path() / "b.crl");
  CHECK((*files)[2].path == dir.path() / "c.der");
  CHECK((*files)[3].path == dir.path() / "link.crl");
  CHECK((*files)[1].sha256 == Sha256Of("B"));
  CHECK((*files)[1].bytes == 1);

  WriteFile(dir.path() / "b.crl", std::string_view("B2"));
  auto again = ListDirectorySource(dir.path(), 1024);
  REQUIRE(again.has_value());
  CHECK((*again)[1].sha256 == Sha256Of("B2"));
  CHECK((*again)[0].sha256 == (*files)[0].sha256);

  WriteFile(dir.path() / "big.crl", std::string(2048, 'x'));
  auto too_big = ListDirectorySource(dir.path(), 1024);
  REQUIRE_FALSE(too_big.has_value());
  CHECK(Contains(too_big.error().message, "big.crl is larger than the limit of 1024 bytes"));

  auto missing = ListDirectorySource(dir.path() / "nowhere", 1024);
  REQUIRE_FALSE(missing.has_value());
  CHECK(Contains(missing.error().message, "nowhere"));
}

TEST_CASE("sync state: the file is written atomically and read back unchanged, odd characters included") {
  TempDir dir;
  const auto path = dir.path() / "sync-state.json";
  SyncState state;
  state["http://crl.example/ca.crl"] = {
      {"W/\"a\\b\"", "Mon, 01 Jan 2024 00:00:00 GMT"}, Sha256Of("x"), 1700000000};
  state["/srv/crl/\x01odd\tname.crl"] = {{}, Sha256Of("y"), 5};
  REQUIRE(WriteSyncState(path, state).has_value());
  CHECK_FALSE(std::filesystem::exists(dir.path() / "sync-state.json.tmp"));

  auto read = ReadSyncState(path);
  REQUIRE_MESSAGE(read.has_value(), read.error().message);
  REQUIRE(read->size() == 2);
  const SourceState& url = read->at("http://crl.example/ca.crl");
  CHECK(url.validators.etag == "W/\"a\\b\"");
  CHECK(url.validators.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT");
  CHECK(url.sha256 == Sha256Of("x"));
  CHECK(url.imported_at == 1700000000);
  CHECK(read->at("/srv/crl/\x01odd\tname.crl").sha256 == Sha256Of("y"));

  REQUIRE(WriteSyncState(path, {}).has_value());
  auto empty = ReadSyncState(path);
  REQUIRE(empty.has_value());
  CHECK(empty->empty());
}

TEST_CASE("sync state: a damaged or foreign file is an error naming the file") {
  TempDir dir;
  const auto path = dir.path() / "sync-state.json";
  for (const std::string text :
       {"", "{", "{\"format\": 2, \"sources\": {}}", "{\"sources\": {}}",
        "{\"format\": 1, \"sources\": {\"x\": {\"sha256\": \"00\"}}}",
        "{\"format\": 1, \"sources\": {\"x\": {\"colour\": \"red\"}}}", "{\"format\": 1} trailing"}) {
    CAPTURE(text);
    WriteFile(path, text);
    auto read = ReadSyncState(path);
    REQUIRE_FALSE(read.has_value());
    CHECK(Contains(read.error().message, path.string()));
  }
  WriteFile(path, std::string_view("{\"format\": 1, \"sources\": {\"\\u00e9\\ud83d\\ude00\": {}}}"));
  auto escaped = ReadSyncState(path);
  REQUIRE_MESSAGE(escaped.has_value(), escaped.error().message);
  CHECK(escaped->contains("\xc3\xa9\xf0\x9f\x98\x80"));
}

// ---- Sync end to end: real CA, real CRLs, real store ---------------------------------------------------------

namespace {

struct SyncFixture {
  TempDir dir;
  TestCa ca = TestCa::Create();
  SystemClock clock;
  std::filesystem::path store_directory = dir.path() / "store";
  store::Store store = *store::Store::Open(store_directory, {});
  TestHttpServer server;
  config::Config config;

  SyncFixture() {
    ca.Write(dir.path(), "ca-");
    config.issuers.push_back(
        {"test-ca", dir.path() / "ca-ca.pem", {{dir.path() / "ca-responder.pem", dir.path() / "ca-responder.key"}}});
    config.sync.timeout_seconds = 5;
  }
  void AddUrlSource(const std::string& path, const std::string& issuer = "test-ca") {
    config.sources.push_back({issuer, server.Url(path), {}});
  }
  std::string ServeCrl(const std::string& path, long number, const std::string& etag) {
    CrlOptions options;
    options.number = number;
    options.revoked = {RevokedSpec{Serial(0x1000 + static_cast<std::uint64_t>(number)), clock.Now() - 3600,
                                   1, std::nullopt}};
    const Bytes der = ToDer(ca.Crl(options).get());
    std::string body(der.begin(), der.end());
    server.Set(path, Response::Content(body, etag));
    return body;
  }
  SyncReport Run() {
    auto report = Sync(config, store, store_directory, clock, ImportOptionsFrom(config));
    REQUIRE_MESSAGE(report.has_value(), report.error().message);
    return std::move(*report);
  }
  // The number of the issuer's current full CRL, as the store holds it.
  std::optional<std::string> CurrentCrlNumber() {
    auto txn = store.BeginRead();
    REQUIRE(txn.has_value());
    auto identity = store::IssuerIdentity::FromCertificate(ca.certificate.get());
    REQUIRE(identity.has_value());
    auto issuer = store.GetIssuerState(txn->get(), identity->id);
    REQUIRE(issuer.has_value());
    if (!issuer->has_value()) return std::nullopt;
    auto partitions = store.ListPartitions(txn->get(), (*issuer)->issuer_no);
    REQUIRE(partitions.has_value());
    for (const store::PartitionRecord& partition : *partitions) {
      if (partition.scope == store::PartitionScope::kAll && partition.base) {
        return partition.base->number.ToString();
      }
    }
    return std::nullopt;
  }
  [[nodiscard]] std::string StateText() const { return ReadText(store_directory / "sync-state.json"); }
  // The ETag the state file remembers for the source at `path`.
  std::string RememberedEtag(const std::string& path) {
    auto state = ReadSyncState(store_directory / "sync-state.json");
    REQUIRE_MESSAGE(state.has_value(), state.error().message);
    const auto found = state->find(server.Url(path));
    return found == state->end() ? "(none)" : found->second.validators.etag;
  }
};

std::string Describe(const SyncReport& report) {
  std::string text;
  for (const SourceReport& source : report.sources) {
    text += source.issuer + " " + source.source + " " + std::string(ToString(source.outcome)) + " " +
            source.reason + "\n";
  }
  for (const std::string& warning : report.warnings) text += "warning: " + warning + "\n";
  return text;
}

}  // namespace

TEST_CASE("sync: the first sync imports, the second is a no-op, a new CRL number is imported") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");

  SyncReport first = fixture.Run();
  INFO(Describe(first));
  REQUIRE(first.sources.size() == 1);
  CHECK(first.sources[0].outcome == SourceOutcome::kImported);
  CHECK(first.ok());
  REQUIRE(first.issuers.size() == 1);
  REQUIRE(first.issuers[0].import.has_value());
  CHECK(fixture.CurrentCrlNumber() == "1");
  CHECK(fixture.RememberedEtag("/ca.crl") == "\"n1\"");

  SyncReport second = fixture.Run();
  INFO(Describe(second));
  REQUIRE(second.sources.size() == 1);
  CHECK(second.sources[0].outcome == SourceOutcome::kNotModified);
  CHECK(second.issuers.empty());  // no import ran
  CHECK(fixture.server.SeenAt("/ca.crl").if_none_match == "\"n1\"");

  fixture.ServeCrl("/ca.crl", 2, "\"n2\"");
  SyncReport third = fixture.Run();
  INFO(Describe(third));
  CHECK(third.sources[0].outcome == SourceOutcome::kImported);
  CHECK(fixture.CurrentCrlNumber() == "2");
  CHECK(fixture.RememberedEtag("/ca.crl") == "\"n2\"");

  // The downloads are gone; incoming/ stays, private.
  const auto incoming = fixture.store_directory / "incoming";
  CHECK(std::filesystem::is_empty(incoming));
  CHECK(std::filesystem::status(incoming).permissions() == std::filesystem::perms::owner_all);
}

TEST_CASE("sync: the same bytes under a new ETag are unchanged, and the new ETag is remembered") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  const std::string body = fixture.ServeCrl("/ca.crl", 1, "\"n1\"");
  REQUIRE(fixture.Run().ok());

  // A mirror that rewrites ETags: the bytes decide, not the validators.
  fixture.server.Set("/ca.crl", Response::Content(body, "\"mirror\""));
  SyncReport report = fixture.Run();
  INFO(Describe(report));
  CHECK(report.sources[0].outcome == SourceOutcome::kUnchanged);
  CHECK(report.issuers.empty());
  CHECK(fixture.RememberedEtag("/ca.crl") == "\"mirror\"");

  SyncReport after = fixture.Run();
  CHECK(after.sources[0].outcome == SourceOutcome::kNotModified);
}

TEST_CASE("sync: a refused CRL leaves the store and the state as they were, and is tried again next time") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 5, "\"n5\"");
  REQUIRE(fixture.Run().ok());
  const std::string state_before = fixture.StateText();

  // A CRL signed by another CA under the same name is not this issuer's.
  TestCa impostor = TestCa::Create();
  CrlOptions options;
  options.number = 6;
  const Bytes forged = ToDer(impostor.Crl(options).get());
  fixture.server.Set("/ca.crl", Response::Content(std::string(forged.begin(), forged.end()), "\"forged\""));

  SyncReport refused = fixture.Run();
  INFO(Describe(refused));
  REQUIRE(refused.sources.size() == 1);
  CHECK(refused.sources[0].outcome == SourceOutcome::kRefused);
  CHECK_FALSE(refused.sources[0].reason.empty());
  CHECK(refused.any_refused());
  CHECK_FALSE(refused.any_failed());
  REQUIRE(refused.issuers.size() == 1);
  CHECK(refused.issuers[0].error.has_value());
  CHECK(fixture.CurrentCrlNumber() == "5");
  CHECK(fixture.StateText() == state_before);

  // Not remembered, so it is fetched (and refused) again rather than skipped as not modified.
  SyncReport again = fixture.Run();
  CHECK(again.sources[0].outcome == SourceOutcome::kRefused);
  CHECK(fixture.server.SeenAt("/ca.crl").if_none_match == "\"n5\"");
  CHECK(std::filesystem::is_empty(fixture.store_directory / "incoming"));
}

TEST_CASE("sync: the changed files of one issuer are imported together or not at all") {
  SyncFixture fixture;
  const auto published = fixture.dir.path() / "published";
  std::filesystem::create_directory(published);
  fixture.AddUrlSource("/ca.crl");
  fixture.config.sources.push_back({"test-ca", "", published});
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");
  WriteFile(published / "broken.crl", std::string_view("not a CRL"));

  SyncReport report = fixture.Run();
  INFO(Describe(report));
  REQUIRE(report.sources.size() == 2);
  CHECK(report.sources[0].outcome == SourceOutcome::kRefused);  // a good CRL, refused with its companion
  CHECK(report.sources[1].outcome == SourceOutcome::kRefused);
  CHECK(Contains(report.sources[1].reason, "broken.crl"));
  CHECK(report.sources[0].reason == report.sources[1].reason);
  REQUIRE(report.issuers.size() == 1);
  CHECK_FALSE(report.issuers[0].import.has_value());
  CHECK(fixture.CurrentCrlNumber() == std::nullopt);
  CHECK_FALSE(std::filesystem::exists(fixture.store_directory / "sync-state.json"));

  fixture.config.sources.pop_back();
  SyncReport fixed = fixture.Run();
  INFO(Describe(fixed));
  CHECK(fixed.sources[0].outcome == SourceOutcome::kImported);
  CHECK(fixture.CurrentCrlNumber() == "1");
}

TEST_CASE("sync: one failing source or issuer does not stop the others") {
  SyncFixture fixture;
  TestCa other = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Other CA");
  other.Write(fixture.dir.path(), "other-");
  fixture.config.issuers.push_back({"other-ca", fixture.dir.path() / "other-ca.pem",
                                    {{fixture.dir.path() / "other-responder.pem",
                                      fixture.dir.path() / "other-responder.key"}}});
  fixture.AddUrlSource("/missing.crl", "other-ca");
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");

  SyncReport report = fixture.Run();
  INFO(Describe(report));
  REQUIRE(report.sources.size() == 2);
  CHECK(report.sources[0].issuer == "other-ca");
  CHECK(report.sources[0].outcome == SourceOutcome::kFetchFailed);
  CHECK(Contains(report.sources[0].reason, "HTTP status 404"));
  CHECK(report.sources[1].outcome == SourceOutcome::kImported);
  CHECK(report.any_failed());
  CHECK_FALSE(report.ok());
  CHECK(fixture.CurrentCrlNumber() == "1");
}

TEST_CASE("sync: a directory source is imported when a file's content changes, not when it is touched") {
  SyncFixture fixture;
  const auto published = fixture.dir.path() / "published";
  std::filesystem::create_directory(published);
  fixture.config.sources.push_back({"test-ca", "", published});
  auto publish = [&](long number) {
    CrlOptions options;
    options.number = number;
    WriteFile(published / "ca.crl", ToDer(fixture.ca.Crl(options).get()));
  };
  publish(1);

  SyncReport first = fixture.Run();
  INFO(Describe(first));
  REQUIRE(first.sources.size() == 1);
  CHECK(first.sources[0].source == (published / "ca.crl").string());
  CHECK(first.sources[0].outcome == SourceOutcome::kImported);

  std::filesystem::last_write_time(published / "ca.crl", std::filesystem::file_time_type::clock::now());
  SyncReport touched = fixture.Run();
  CHECK(touched.sources[0].outcome == SourceOutcome::kUnchanged);
  CHECK(touched.issuers.empty());

  publish(2);
  SyncReport changed = fixture.Run();
  INFO(Describe(changed));
  CHECK(changed.sources[0].outcome == SourceOutcome::kImported);
  CHECK(fixture.CurrentCrlNumber() == "2");

  std::filesystem::remove(published / "ca.crl");
  SyncReport empty = fixture.Run();
  CHECK(empty.sources[0].outcome == SourceOutcome::kFetchFailed);
  CHECK(Contains(empty.sources[0].reason, "no *.crl"));
}

TEST_CASE("sync: an unreadable state file is a warning, and everything is fetched again") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");
  REQUIRE(fixture.Run().ok());
  WriteFile(fixture.store_directory / "sync-state.json", std::string_view("{garbage"));

  SyncReport report = fixture.Run();
  INFO(Describe(report));
  REQUIRE(report.warnings.size() == 1);
  CHECK(Contains(report.warnings[0], "sync-state.json"));
  CHECK(fixture.server.SeenAt("/ca.crl").if_none_match.empty());  // unconditional
  CHECK(report.sources[0].outcome == SourceOutcome::kUnchanged);    // the store already holds it
  CHECK(report.ok());
  CHECK(ReadSyncState(fixture.store_directory / "sync-state.json").has_value());  // repaired
}

TEST_CASE("sync: a second sync of the same store at the same time is refused") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");
  const auto lock_path = fixture.store_directory / "sync.lock";
  const int held = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  auto report = Sync(fixture.config, fixture.store, fixture.store_directory, fixture.clock, {});
  ::close(held);
  REQUIRE_FALSE(report.has_value());
  CHECK(report.error().code == ErrorCode::kUnavailable);
  CHECK(fixture.server.SeenAt("/ca.crl").requests == 0);
}

TEST_CASE("sync: the issuer's certificate that cannot be read fails its sources before any download") {
  SyncFixture fixture;
  fixture.AddUrlSource("/ca.crl");
  fixture.ServeCrl("/ca.crl", 1, "\"n1\"");
  std::filesystem::remove(fixture.dir.path() / "ca-ca.pem");
  SyncReport report = fixture.Run();
  REQUIRE(report.sources.size() == 1);
  CHECK(report.sources[0].outcome == SourceOutcome::kImportFailed);
  CHECK(Contains(report.sources[0].reason, "ca-ca.pem"));
  CHECK(fixture.server.SeenAt("/ca.crl").requests == 0);
}
