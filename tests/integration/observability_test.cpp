// End to end: the responder's /metrics checked by promtool and scraped by a real Prometheus server, the alert
// rules and dashboard checked against the names a real scrape exposes, the logs and the access log.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <thread>

#include "tests/integration/process.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::testing;

namespace {

bool Contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

std::uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A responder with an imported CRL, an access log and metrics on loopback.
class Observed {
 public:
  explicit Observed(const std::string& extra_config = "") {
    ca_.Write(dir_.path());
    stranger_.Write(dir_.path(), "stranger-");
    WriteFile(config_path(), R"(
[responder]
listen = "127.0.0.1:0"
workers = 2
[store]
path = "store"
map_size_mib = 64
[metrics]
listen = "127.0.0.1:0"
)" + extra_config + R"(
[log]
access_log = "access.log"
[[issuer]]
name = "test-signing-ca"
certificate = "ca.pem"
responder_certificate = "responder.pem"
responder_key = "responder.key"
)");
    CrlOptions crl;
    crl.number = 3;
    crl.revoked = {{Serial(0x1002), 0, 1, std::nullopt}};
    WriteFile(dir_.path() / "crl.der", ToDer(ca_.Crl(crl).get()));
    const CommandResult import = Run({OCSP_CTL_BINARY, "--config", config_path().string(), "import", "--issuer",
                                      path("ca.pem").string(), path("crl.der").string()});
    INFO(import.output);
    REQUIRE(import.exit_code == 0);
    responder_ = std::make_unique<Background>(
        std::vector<std::string>{OCSP_RESPONDER_BINARY, "--config", config_path().string()}, path("responder.log"));
    const std::string log = responder_->WaitForLog("event=metrics_listening");
    std::smatch match;
    REQUIRE(std::regex_search(log, match, std::regex("event=listening address=127\\.0\\.0\\.1:(\\d+)")));
    url_ = "http://127.0.0.1:" + match[1].str() + "/";
    REQUIRE(std::regex_search(log, match, std::regex("event=metrics_listening address=127\\.0\\.0\\.1:(\\d+)")));
    metrics_port_ = match[1].str();
  }

  CommandResult Query(std::uint64_t serial, const std::string& issuer = "ca.pem") const {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(serial));
    return Run({"openssl", "ocsp", "-issuer", path(issuer).string(), "-serial", hex, "-url", url_, "-noverify"});
  }

  std::string Scrape() const {
    const auto body = path("metrics.txt");
    const CommandResult result = Run({"curl", "-sf", "-o", body.string(), metrics_url()});
    REQUIRE(result.exit_code == 0);
    return ReadText(body);
  }

  [[nodiscard]] std::filesystem::path path(const std::string& name) const { return dir_.path() / name; }
  [[nodiscard]] std::filesystem::path config_path() const { return dir_.path() / "ocsp-responder.toml"; }
  [[nodiscard]] std::string metrics_url() const { return "http://127.0.0.1:" + metrics_port_ + "/metrics"; }
  [[nodiscard]] const std::string& metrics_port() const { return metrics_port_; }
  [[nodiscard]] std::uint16_t ocsp_port() const {
    return static_cast<std::uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)));
  }
  Background& responder() { return *responder_; }

 private:
  TempDir dir_;
  TestCa ca_ = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA");
  TestCa stranger_ = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Stranger CA");
  std::unique_ptr<Background> responder_;
  std::string url_;
  std::string metrics_port_;
};

// Metric family names a scrape declares (# TYPE lines).
std::set<std::string> Families(const std::string& exposition) {
  std::set<std::string> names;
  static const std::regex type_line("^# TYPE (\\S+) \\S+$", std::regex::multiline);
  for (auto it = std::sregex_iterator(exposition.begin(), exposition.end(), type_line); it != std::sregex_iterator();
       ++it) {
    names.insert((*it)[1].str());
  }
  return names;
}

// The metric names a PromQL expression reads: what is left after removing strings, label matchers, ranges,
// grouping clauses, function calls, keywords and numbers.
std::set<std::string> MetricNames(std::string expr) {
  for (const char* pattern : {"\"(\\\\.|[^\"\\\\])*\"", "\\{[^}]*\\}", "\\[[^\\]]*\\]",
                              "\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)",
                              "[a-zA-Z_]\\w*\\s*\\(", "\\$\\w+", "\\b\\d+(\\.\\d+)?(e[+-]?\\d+)?\\b"}) {
    expr = std::regex_replace(expr, std::regex(pattern), " ");
  }
  static const std::set<std::string> keywords{"and", "or", "unless", "bool", "offset", "by", "without", "inf", "nan"};
  std::set<std::string> names;
  static const std::regex identifier("[a-zA-Z_:][a-zA-Z0-9_:]*");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), identifier); it != std::sregex_iterator(); ++it) {
    if (!keywords.contains(it->str())) names.insert(it->str());
  }
  return names;
}

std::string Family(const std::string& name) {
  for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
    if (name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
  }
  return name;
}

std::string JsonUnescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) ++i;
    out += text[i];
  }
  return out;
}

}  // namespace

TEST_CASE("observability: /metrics passes promtool check metrics, store and request series included") {
  Observed responder;
  CHECK(Contains(responder.Query(0x1001).output, "0x1001: good"));
  CHECK(Contains(responder.Query(0x1002).output, "0x1002: revoked"));
  CHECK(Contains(responder.Query(0x1001, "stranger-ca.pem").output, "unauthorized"));
  const std::string text = responder.Scrape();
  const auto saved = responder.path("metrics.txt");
  const CommandResult lint = Run({"sh", "-c", "promtool check metrics < '" + saved.string() + "'"});
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
  CHECK(lint.output.empty());  // no lint finding at all
  CHECK(Contains(text, "ocsp_responder_requests_total{method=\"POST\",outcome=\"good\",verifier=\"none\"} 1"));
  CHECK(Contains(text, "ocsp_responder_answers_total{source=\"signed\"} 2"));
  CHECK(Contains(text, "ocsp_signer_sign_duration_seconds_count 2"));
  CHECK(Contains(text, "ocsp_store_crl_number{issuer=\"test-signing-ca\",partition=\"complete CRL\"} 3"));
  CHECK(Contains(text, "ocsp_importer_last_result{issuer=\"test-signing-ca\",partition=\"complete CRL\","
                       "result=\"imported\"} 1"));
  CHECK(Contains(text, "ocsp_signer_max_pending_jobs 256"));
  // Both workers and this scrape's reader hold reader slots.
  std::smatch match;
  REQUIRE(std::regex_search(text, match, std::regex("\nocsp_store_readers_used (\\d+)")));
  CHECK(std::stoi(match[1].str()) >= 2);
}

// The sum of a family's series in an exposition (0 when it has none).
double Sum(const std::string& exposition, const std::string& family) {
  double sum = 0;
  const std::regex line("\n" + family + "(\\{[^}]*\\})? (\\S+)");
  for (auto it = std::sregex_iterator(exposition.begin(), exposition.end(), line); it != std::sregex_iterator(); ++it) {
    sum += std::stod((*it)[2].str());
  }
  return sum;
}

TEST_CASE("observability: open connections per worker, and the front end's refusals, are series") {
  Observed responder;
  std::string text = responder.Scrape();
  CHECK(Contains(text, "ocsp_responder_connections_open{worker=\"0\"}"));
  CHECK(Contains(text, "ocsp_responder_connections_open{worker=\"1\"}"));
  CHECK(Contains(text, "ocsp_responder_access_refusals_total{reason=\"unregistered\"} 0"));
  CHECK(Contains(text, "ocsp_responder_connections_refused_total 0"));
  CHECK(Contains(text, "ocsp_responder_reloads_total{result=\"ok\"} 0"));
  CHECK(Sum(text, "ocsp_responder_connections_open") == 0);
  // Two idle connections: counted by the workers that accepted them while they stay open.
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(responder.ocsp_port());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    held.push_back(fd);
  }
  double open = 0;
  for (int attempt = 0; attempt < 50 && open != 2; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    open = Sum(responder.Scrape(), "ocsp_responder_connections_open");
  }
  CHECK(open == 2);
  for (int fd : held) ::close(fd);
  for (int attempt = 0; attempt < 50 && open != 0; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    open = Sum(responder.Scrape(), "ocsp_responder_connections_open");
  }
  CHECK(open == 0);
  // A reload is counted.
  ::kill(responder.responder().pid(), SIGHUP);
  responder.responder().WaitForLog("event=reloaded");
  CHECK(Contains(responder.Scrape(), "ocsp_responder_reloads_total{result=\"ok\"} 1"));
}

TEST_CASE("observability: a real Prometheus server scrapes the responder, and its HTTP API returns our series") {
  Observed responder;
  CHECK(Contains(responder.Query(0x1002).output, "0x1002: revoked"));
  const std::uint16_t port = FreePort();
  const auto config = responder.path("prometheus.yml");
  WriteFile(config, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                    "  - job_name: ocsp-responder\n    static_configs:\n      - targets: ['127.0.0.1:" +
                        responder.metrics_port() + "']\n");
  Background prometheus({"prometheus", "--config.file=" + config.string(),
                         "--storage.tsdb.path=" + responder.path("tsdb").string(),
                         "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                        responder.path("prometheus.log"));
  prometheus.WaitForLog("Server is ready to receive web requests", std::chrono::seconds(60));
  const std::string api = "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query?query=";
  auto query = [&](const std::string& promql) {
    return Run({"curl", "-s", "-G", "--data-urlencode", "query=" + promql,
                "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query"})
        .output;
  };
  std::string answer;
  for (int i = 0; i < 60 && !Contains(answer, "\"result\":[{"); ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    answer = query("ocsp_build_info");
  }
  INFO(ReadText(responder.path("prometheus.log")));
  INFO(answer);
  REQUIRE(Contains(answer, "\"status\":\"success\""));
  CHECK(Contains(answer, "\"job\":\"ocsp-responder\""));
  CHECK(Contains(query("up{job=\"ocsp-responder\"}"), "\"value\":[") );
  CHECK(Contains(query("up{job=\"ocsp-responder\"}"), ",\"1\"]"));
  const std::string revoked = query("sum(ocsp_responder_requests_total{outcome=\"revoked\"})");
  INFO(revoked);
  CHECK(Contains(revoked, ",\"1\"]"));
  const std::string crl = query("ocsp_store_crl_number{issuer=\"test-signing-ca\"}");
  INFO(crl);
  CHECK(Contains(crl, "\"partition\":\"complete CRL\""));
  CHECK(Contains(crl, ",\"3\"]"));
  const std::string latency =
      query("histogram_quantile(0.5, sum by (le) (ocsp_responder_request_duration_seconds_bucket))");
  CHECK(Contains(latency, "\"result\":[{"));
  CHECK(prometheus.Stop() == 0);
}

TEST_CASE("observability: the alert rules and the dashboard use only metric names the responder exposes") {
  Observed responder;
  responder.Query(0x1001);
  const std::string text = responder.Scrape();
  const std::set<std::string> exposed = Families(text);
  REQUIRE(exposed.size() > 30);
  const std::string documented = ReadText(std::filesystem::path(OCSP_SOURCE_DIR) / "docs/metrics.md");
  for (const std::string& name : exposed) {
    INFO(name);
    CHECK(name.starts_with("ocsp_"));
    CHECK(Contains(documented, "`" + name + "`"));  // every family is listed in docs/metrics.md
  }

  std::vector<std::string> expressions;
  const std::string rules = ReadText(std::filesystem::path(OCSP_SOURCE_DIR) / "packaging/prometheus/ocsp-responder.rules.yml");
  // `expr: ...` on one line, or `expr: |` followed by indented lines.
  static const std::regex rule_expr("expr: (\\|\\n((?:\\s{10,}.*\\n)+)|(.*))");
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), rule_expr); it != std::sregex_iterator(); ++it) {
    expressions.push_back((*it)[2].matched ? (*it)[2].str() : (*it)[3].str());
  }
  CHECK(expressions.size() == 14);
  const std::string dashboard =
      ReadText(std::filesystem::path(OCSP_SOURCE_DIR) / "packaging/prometheus/ocsp-responder.dashboard.json");
  static const std::regex json_expr("\"(expr|query|definition)\": \"((\\\\.|[^\"\\\\])*)\"");
  std::size_t dashboard_count = 0;
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), json_expr); it != std::sregex_iterator();
       ++it) {
    const std::string value = JsonUnescape((*it)[2].str());
    if ((*it)[1].str() != "expr" && !value.starts_with("label_values(")) continue;  // the datasource variable
    expressions.push_back(value.starts_with("label_values(") ? value.substr(13, value.find(',') - 13) : value);
    ++dashboard_count;
  }
  CHECK(dashboard_count >= 25);
  std::set<std::string> used;
  for (const std::string& expr : expressions) {
    for (const std::string& name : MetricNames(expr)) {
      INFO(expr);
      INFO(name);
      CHECK(exposed.contains(Family(name)));
      used.insert(Family(name));
    }
  }
  // The checker itself must see names, or it would pass vacuously.
  CHECK(used.contains("ocsp_responder_requests_total"));
  CHECK(used.contains("ocsp_store_crl_time_to_next_update_seconds"));
  CHECK(MetricNames("sum by (le) (rate(foo_bar{a=\"b\"}[5m])) > 0.5 and on (x) up") ==
        std::set<std::string>{"foo_bar", "up"});
}

TEST_CASE("observability: logs are logfmt lines with levels, none per request at info, no key material") {
  Observed responder;
  const std::string before = ReadText(responder.path("responder.log"));
  for (int i = 0; i < 5; ++i) responder.Query(0x1001);
  responder.Query(0x1001, "stranger-ca.pem");
  CHECK(responder.responder().Stop() == 0);
  const std::string log = ReadText(responder.path("responder.log"));
  // Between startup and shutdown: no line for the six requests.
  const std::size_t stopping = log.rfind('\n', log.find("event=stopping")) + 1;
  REQUIRE(stopping >= before.size());
  const std::string during = log.substr(before.size(), stopping - before.size());
  INFO(during);
  CHECK(during.empty());
  static const std::regex line("ts=\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ level=(debug|info|warning|error) "
                               "event=[a-z_]+( [a-z_]+=(\"([^\"\\\\]|\\\\.)*\"|\\S+))*");
  std::istringstream lines(log);
  std::string one;
  int count = 0;
  while (std::getline(lines, one)) {
    INFO(one);
    CHECK(std::regex_match(one, line));
    ++count;
  }
  CHECK(count >= 4);  // listening, metrics_listening, stopping, stopped
  const std::string key = ReadText(responder.path("responder.key"));
  CHECK_FALSE(Contains(log, "PRIVATE KEY"));
  // No run of the key's base64 body appears either.
  CHECK_FALSE(Contains(log, key.substr(key.find('\n') + 1, 40)));
}

TEST_CASE("observability: the access log has one line per request and is reopened on SIGUSR1") {
  Observed responder;
  responder.Query(0x1001);
  responder.Query(0x1002);
  std::string first;
  for (int i = 0; i < 50 && std::count(first.begin(), first.end(), '\n') < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the workers flush every second
    first = ReadText(responder.path("access.log"));
  }
  INFO(first);
  CHECK(std::count(first.begin(), first.end(), '\n') == 2);
  CHECK(Contains(first, "verifier=none client=127.0.0.1 method=POST outcome=good"));
  CHECK(Contains(first, "outcome=revoked"));

  std::filesystem::rename(responder.path("access.log"), responder.path("access.log.1"));
  REQUIRE(::kill(responder.responder().pid(), SIGUSR1) == 0);
  responder.responder().WaitForLog("event=access_log_reopened");
  responder.Query(0x1001, "stranger-ca.pem");
  std::string second;
  for (int i = 0; i < 50 && second.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    second = ReadText(responder.path("access.log"));
  }
  CHECK(Contains(second, "outcome=unauthorized"));
  CHECK(std::count(second.begin(), second.end(), '\n') == 1);
  CHECK(ReadText(responder.path("access.log.1")) == first);
  CHECK(responder.responder().Running());
}

TEST_CASE("observability: with metrics.enabled = false requests are not counted, but the store's gauges remain") {
  Observed responder("enabled = false\n");
  responder.Query(0x1001);
  const std::string text = responder.Scrape();
  CHECK(Contains(text, "ocsp_responder_requests_total{method=\"POST\",outcome=\"good\",verifier=\"none\"} 0"));
  CHECK(Contains(text, "ocsp_store_crl_number{issuer=\"test-signing-ca\",partition=\"complete CRL\"} 3"));
}
