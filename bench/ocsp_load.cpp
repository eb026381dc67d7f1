// ocsp-load: an open-loop OCSP load generator for the stored-response and signing benchmarks.
//
// It sends POST (or GET) OCSP requests over keep-alive connections at a fixed total rate, for serials drawn
// from a Zipf distribution over a population (or a new serial each time, to force on-demand signing), and
// reports per window: requests, latency p50/p99 measured from each request's scheduled send time (so a slow
// server cannot hide its queueing: no coordinated omission), the share of tryLater answers and errors.
//
// Output: one line per window, then a `summary` line, as key=value pairs for the benchmark scripts.
// Exit status: 0 done; 1 could not connect or read the issuer; 2 bad usage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/openssl.h"

namespace {

using Steady = std::chrono::steady_clock;
using namespace ocsp;

struct Sample {
  double at_seconds;  // since the start, when it was scheduled
  double latency_ms;
  int outcome;  // 0 successful, 3 tryLater, other OCSP status, -1 transport error
};

class ZipfSampler {
 public:
  ZipfSampler(std::size_t population, double exponent) : cdf_(population) {
    double sum = 0;
    for (std::size_t rank = 0; rank < population; ++rank) {
      sum += 1.0 / std::pow(static_cast<double>(rank + 1), exponent);
      cdf_[rank] = sum;
    }
    for (double& value : cdf_) value /= sum;
  }
  std::size_t Draw(std::mt19937_64& random) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(random);
    return static_cast<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

std::string RequestDer(const X509* issuer, std::uint64_t serial, const EVP_MD* md) {
  UniquePtr<ASN1_INTEGER> number(ASN1_INTEGER_new());
  ASN1_INTEGER_set_uint64(number.get(), serial);
  OCSP_CERTID* id = OCSP_cert_id_new(md, X509_get_subject_name(issuer), X509_get0_pubkey_bitstr(issuer), number.get());
  UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
  OCSP_request_add0_id(request.get(), id);
  unsigned char* der = nullptr;
  const int length = i2d_OCSP_REQUEST(request.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

std::string UrlBase64(const std::string& der) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  auto put = [&](int index) {
    const char c = alphabet[index];
    if (c == '+') out += "%2B";
    else if (c == '/') out += "%2F";
    else out += c;
  };
  for (; i + 2 < der.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(der[i]) << 16) | (static_cast<unsigned char>(der[i + 1]) << 8) |
                       static_cast<unsigned char>(der[i + 2]);
    put(v >> 18 & 63), put(v >> 12 & 63), put(v >> 6 & 63), put(v & 63);
  }
  if (i < der.size()) {
    unsigned v = static_cast<unsigned char>(der[i]) << 16;
    if (i + 1 < der.size()) v |= static_cast<unsigned char>(der[i + 1]) << 8;
    put(v >> 18 & 63), put(v >> 12 & 63);
    if (i + 1 < der.size()) put(v >> 6 & 63); else out += "%3D";
    out += "%3D";
  }
  return out;
}

int Connect(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Reads one HTTP response; returns the OCSP responseStatus, or -1.
int ReadResponse(int fd, std::string& buffer) {
  std::size_t header_end;
  while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    char chunk[8192];
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) return -1;
    buffer.append(chunk, static_cast<std::size_t>(got));
  }
  std::size_t length = 0;
  const std::string headers = buffer.substr(0, header_end);
  for (std::string key : {"Content-Length: ", "content-length: "}) {
    const auto at = headers.find(key);
    if (at != std::string::npos) length = std::stoul(headers.substr(at + key.size()));
  }
  const bool ok = headers.compare(0, 12, "HTTP/1.1 200") == 0 || headers.compare(0, 12, "HTTP/1.0 200") == 0;
  while (buffer.size() < header_end + 4 + length) {
    char chunk[8192];
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) return -1;
    buffer.append(chunk, static_cast<std::size_t>(got));
  }
  const std::string body = buffer.substr(header_end + 4, length);
  buffer.erase(0, header_end + 4 + length);
  if (!ok || body.size() < 5 || static_cast<unsigned char>(body[0]) != 0x30) return -1;
  std::size_t at = 1;
  const auto first = static_cast<unsigned char>(body[at++]);
  if (first & 0x80) at += first & 0x7f;
  if (at + 3 > body.size() || body[at] != 0x0a || body[at + 1] != 0x01) return -1;
  return static_cast<unsigned char>(body[at + 2]);
}

double Percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ocsp-load: open-loop OCSP load with a Zipf serial mix"};
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string issuer_path;
  std::size_t population = 1'000'000;
  std::uint64_t serial_base = 1'000'000;
  double zipf = 1.0;
  bool unique = false;
  double rate = 2000;
  double duration = 60;
  double window = 10;
  unsigned connections = 8;
  bool get = false;
  bool sha256 = false;
  std::uint64_t seed = 1;
  app.add_option("--host", host);
  app.add_option("--port", port)->required();
  app.add_option("--issuer", issuer_path, "the CA certificate (PEM)")->required();
  app.add_option("--serials", population, "how many distinct serials the mix draws from");
  app.add_option("--serial-base", serial_base, "the first serial");
  app.add_option("--zipf", zipf, "Zipf exponent of the mix (0: uniform)");
  app.add_flag("--unique", unique, "a new serial for every request (every answer must be signed)");
  app.add_option("--rate", rate, "requests per second, all connections together");
  app.add_option("--duration", duration, "seconds");
  app.add_option("--window", window, "seconds per report line");
  app.add_option("--connections", connections);
  app.add_flag("--get", get, "GET instead of POST");
  app.add_flag("--sha256", sha256, "SHA-256 CertIDs");
  app.add_option("--seed", seed);
  CLI11_PARSE(app, argc, argv);

  auto issuer = LoadCertificate(issuer_path);
  if (!issuer) {
    std::fprintf(stderr, "ocsp-load: %s\n", issuer.error().Describe().c_str());
    return 1;
  }
  const EVP_MD* md = sha256 ? EVP_sha256() : EVP_sha1();
  const ZipfSampler sampler(unique ? 1 : population, zipf);
  std::atomic<std::uint64_t> next_unique{serial_base};
  auto HttpRequest = [&](const std::string& der) {
    if (get) return "GET /" + UrlBase64(der) + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    return "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/ocsp-request\r\nContent-Length: " +
           std::to_string(der.size()) + "\r\n\r\n" + der;
  };
  // Up to 100k distinct serials, every request is built before the clock starts, so that building one (two
  // hashes, an encoding) is not part of the load generator's cost at tens of thousands of requests a second.
  std::vector<std::string> prepared;
  if (!unique && population <= 100'000) {
    prepared.reserve(population);
    for (std::size_t rank = 0; rank < population; ++rank) {
      prepared.push_back(HttpRequest(RequestDer(issuer->get(), serial_base + rank, md)));
    }
  }
  const auto start = Steady::now() + std::chrono::milliseconds(200);
  const double interval = static_cast<double>(connections) / rate;  // per connection
  std::vector<std::vector<Sample>> samples(connections);
  std::atomic<bool> connect_failed{false};

  std::vector<std::thread> threads;
  for (unsigned c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 random(seed * 7919 + c);
      int fd = Connect(host, port);
      if (fd < 0) {
        connect_failed = true;
        return;
      }
      std::string buffer;
      // Connections are staggered across one interval so the total rate is even.
      for (std::uint64_t k = 0;; ++k) {
        const double scheduled = (static_cast<double>(k) + static_cast<double>(c) / connections) * interval;
        if (scheduled >= duration) break;
        const auto when = start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(scheduled));
        std::this_thread::sleep_until(when);
        std::string built;
        const std::string* request;
        if (!prepared.empty()) {
          request = &prepared[sampler.Draw(random)];
        } else {
          const std::uint64_t serial = unique ? next_unique++ : serial_base + sampler.Draw(random);
          built = HttpRequest(RequestDer(issuer->get(), serial, md));
          request = &built;
        }
        int outcome = -1;
        if (fd >= 0 &&
            ::send(fd, request->data(), request->size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request->size())) {
          outcome = ReadResponse(fd, buffer);
        }
        const double latency = std::chrono::duration<double, std::milli>(Steady::now() - when).count();
        samples[c].push_back(Sample{scheduled, latency, outcome});
        if (outcome < 0) {  // reconnect after a transport error
          if (fd >= 0) ::close(fd);
          buffer.clear();
          fd = Connect(host, port);
        }
      }
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& thread : threads) thread.join();
  if (connect_failed) {
    std::fprintf(stderr, "ocsp-load: cannot connect to %s:%d\n", host.c_str(), port);
    return 1;
  }

  std::vector<Sample> all;
  for (auto& part : samples) all.insert(all.end(), part.begin(), part.end());
  auto report = [&](const char* label, double from, double to) {
    std::vector<double> latencies;
    std::size_t try_later = 0, errors = 0, other = 0, count = 0;
    for (const Sample& sample : all) {
      if (sample.at_seconds < from || sample.at_seconds >= to) continue;
      ++count;
      latencies.push_back(sample.latency_ms);
      if (sample.outcome == 3) ++try_later;
      else if (sample.outcome < 0) ++errors;
      else if (sample.outcome != 0) ++other;
    }
    const double span = to - from;
    std::printf("%s from=%.0f to=%.0f requests=%zu rps=%.0f p50_ms=%.3f p99_ms=%.3f trylater_pct=%.3f errors=%zu "
                "other_status=%zu\n",
                label, from, to, count, static_cast<double>(count) / span, Percentile(latencies, 0.50),
                Percentile(latencies, 0.99), count ? 100.0 * static_cast<double>(try_later) / static_cast<double>(count) : 0.0,
                errors, other);
  };
  for (double from = 0; from < duration; from += window) report("window", from, std::min(duration, from + window));
  report("summary", 0, duration);
  return 0;
}
