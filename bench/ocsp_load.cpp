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
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <memory>
#include <string_view>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/openssl.h"
#include "common/time_slice.h"

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
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd wait{fd, POLLOUT, 0};
  int error = 0;
  socklen_t error_size = sizeof error;
  if (::poll(&wait, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_size) != 0 || error != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

// Parses one complete HTTP response at the front of `input`. Returns its length (0: incomplete) and sets
// `outcome` to the OCSP responseStatus, or -1 when it is not a 200 with an OCSPResponse.
std::size_t ParseResponse(std::string_view input, int& outcome) {
  const auto head_end = input.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return 0;
  const std::string_view head = input.substr(0, head_end + 2);
  std::size_t length = 0;
  for (std::size_t line = head.find("\r\n") + 2; line < head.size();) {
    const std::size_t next = head.find("\r\n", line);
    const std::string_view field = head.substr(line, next - line);
    if (StartsWithNoCase(field, "content-length:")) {
      std::string_view value = field.substr(15);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      std::from_chars(value.data(), value.data() + value.size(), length);
    }
    line = next + 2;
  }
  if (input.size() < head_end + 4 + length) return 0;
  const std::string_view body = input.substr(head_end + 4, length);
  outcome = -1;
  const bool ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
  if (ok && body.size() >= 5 && static_cast<unsigned char>(body[0]) == 0x30) {
    std::size_t at = 1;
    const auto first = static_cast<unsigned char>(body[at++]);
    if (first & 0x80) at += first & 0x7f;
    if (at + 3 <= body.size() && body[at] == 0x0a && body[at + 1] == 0x01) outcome = static_cast<unsigned char>(body[at + 2]);
  }
  return head_end + 4 + length;
}

double Percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index];
}

// One keep-alive connection of the schedule. Request j of connection c is due at (j + c / connections) *
// interval; requests due while the previous answer is outstanding wait (their latency counts from when they
// were due), as a real client's would.
struct Connection {
  int fd = -1;
  unsigned index = 0;
  std::uint64_t next_to_send = 0;  // j of the next request to send
  bool busy = false;               // a request is outstanding
  double in_flight_due = 0;        // seconds since the start
  const std::string* pending = nullptr;
  std::size_t sent_bytes = 0;
  std::string built;  // a request built on the fly (--unique, or a population too large to prepare)
  std::array<char, 65536> input{};
  std::size_t input_size = 0;
};

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
  unsigned threads = 1;
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
  app.add_option("--threads", threads, "event loops (each with its share of the connections)");
  std::string scheduling = "normal";
  app.add_option("--scheduling", scheduling,
                 "the event loops' scheduling: normal; short-slice (a 0.1 ms slice, as the responder's workers ask "
                 "for: preempts a longer-slice thread on wake-up); realtime (SCHED_FIFO 1, needs CAP_SYS_NICE)")
      ->check(CLI::IsMember({"normal", "short-slice", "realtime"}));
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
  const double interval = static_cast<double>(connections) / rate;  // per connection
  threads = std::clamp(threads, 1u, connections);
  std::vector<std::vector<Sample>> samples(threads);
  std::vector<std::unique_ptr<Connection>> all_connections;
  for (unsigned c = 0; c < connections; ++c) {
    auto connection = std::make_unique<Connection>();
    connection->index = c;
    all_connections.push_back(std::move(connection));
  }
  std::atomic<bool> connect_failed{false};
  // Timer slack defaults to 50 µs, which would be most of a fast answer's latency.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  const auto start = Steady::now() + std::chrono::milliseconds(200);
  auto seconds_since_start = [&] { return std::chrono::duration<double>(Steady::now() - start).count(); };
  // Requests still unanswered this long after the last one was due count as errors.
  const double drain_seconds = 5;

  // One epoll loop per thread over its share of the connections: a send and a receive per request, no thread
  // switch, so one core drives tens of thousands of requests a second.
  // A client on the server's machine waits behind whatever else the scheduler runs on its core (kernel threads
  // such as kdamond for a millisecond at a time, the server's own signing threads), and timing from the
  // scheduled send counts those waits against the server. A short slice or real-time priority keeps most of
  // them out, so that the waits measured are the server's and the machine's (host stalls).
  std::atomic<bool> scheduling_refused{false};
  auto run = [&](unsigned thread_index) {
    std::string refused;
    if (scheduling == "realtime") {
      sched_param param{};
      param.sched_priority = 1;
      if (const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param); rc != 0) refused = std::strerror(rc);
    } else if (scheduling == "short-slice") {
      if (auto asked = ocsp::AskForShortSlice(std::chrono::microseconds(100)); !asked) refused = asked.error().Describe();
    }
    if (!refused.empty() && !scheduling_refused.exchange(true)) {
      std::fprintf(stderr, "ocsp-load: %s scheduling refused (%s); running at normal priority\n", scheduling.c_str(),
                   refused.c_str());
    }
    std::mt19937_64 random(seed * 7919 + thread_index);
    std::vector<Connection*> mine;
    for (auto& connection : all_connections) {
      if (connection->index % threads == thread_index) mine.push_back(connection.get());
    }
    // Each thread connects its own share, as wrk does: a server that places connections by the CPU a
    // connection comes from sees them come from the threads that use them.
    for (Connection* connection : mine) {
      connection->fd = Connect(host, port);
      if (connection->fd < 0) {
        connect_failed = true;
        for (Connection* opened : mine) {
          if (opened->fd >= 0) ::close(opened->fd);
        }
        return;
      }
    }
    std::vector<Sample>& out = samples[thread_index];
    out.reserve(static_cast<std::size_t>(rate * duration / threads * 1.1) + 16);
    const int epoll = epoll_create1(EPOLL_CLOEXEC);
    auto watch = [&](Connection* connection, int op) {
      epoll_event event{};
      event.events = EPOLLIN | (connection->pending ? EPOLLOUT : 0u);
      event.data.ptr = connection;
      epoll_ctl(epoll, op, connection->fd, &event);
    };
    for (Connection* connection : mine) watch(connection, EPOLL_CTL_ADD);
    auto due = [&](const Connection* connection, std::uint64_t j) {
      return (static_cast<double>(j) + static_cast<double>(connection->index) / connections) * interval;
    };
    auto record = [&](Connection* connection, int outcome) {
      out.push_back(Sample{connection->in_flight_due, (seconds_since_start() - connection->in_flight_due) * 1e3, outcome});
      connection->busy = false;
    };
    auto reconnect = [&](Connection* connection) {
      if (connection->fd >= 0) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, connection->fd, nullptr);
        ::close(connection->fd);
      }
      connection->input_size = 0;
      connection->pending = nullptr;
      connection->fd = Connect(host, port);
      if (connection->fd >= 0) watch(connection, EPOLL_CTL_ADD);
    };
    auto flush = [&](Connection* connection) {  // false: the connection failed
      while (connection->sent_bytes < connection->pending->size()) {
        const ssize_t sent = ::send(connection->fd, connection->pending->data() + connection->sent_bytes,
                                    connection->pending->size() - connection->sent_bytes, MSG_NOSIGNAL);
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          watch(connection, EPOLL_CTL_MOD);
          return true;
        }
        if (sent <= 0) return false;
        connection->sent_bytes += static_cast<std::size_t>(sent);
      }
      connection->pending = nullptr;
      return true;
    };
    auto send_next = [&](Connection* connection, double now) {
      while (!connection->busy && due(connection, connection->next_to_send) <= now &&
             due(connection, connection->next_to_send) < duration) {
        const std::uint64_t j = connection->next_to_send++;
        if (connection->fd < 0) reconnect(connection);
        connection->in_flight_due = due(connection, j);
        connection->busy = true;
        if (connection->fd < 0) {
          record(connection, -1);
          continue;
        }
        if (!prepared.empty()) {
          connection->pending = &prepared[sampler.Draw(random)];
        } else {
          const std::uint64_t serial = unique ? next_unique++ : serial_base + sampler.Draw(random);
          connection->built = HttpRequest(RequestDer(issuer->get(), serial, md));
          connection->pending = &connection->built;
        }
        connection->sent_bytes = 0;
        if (!flush(connection)) {
          record(connection, -1);
          reconnect(connection);
        }
      }
    };
    std::array<epoll_event, 64> events;
    for (;;) {
      double now = seconds_since_start();
      bool outstanding = false;
      double next_due = duration;
      for (Connection* connection : mine) {
        send_next(connection, now);
        if (connection->busy) outstanding = true;
        else next_due = std::min(next_due, due(connection, connection->next_to_send));
      }
      if (!outstanding && next_due >= duration) break;
      if (now > duration + drain_seconds) {
        for (Connection* connection : mine) {
          if (connection->busy) record(connection, -1);
        }
        break;
      }
      const double wait = outstanding ? std::min(next_due, duration + drain_seconds) - now : next_due - now;
      timespec timeout{};
      if (wait > 0) {
        timeout.tv_sec = static_cast<time_t>(wait);
        timeout.tv_nsec = static_cast<long>((wait - static_cast<double>(timeout.tv_sec)) * 1e9);
      }
      const int ready = epoll_pwait2(epoll, events.data(), static_cast<int>(events.size()), &timeout, nullptr);
      for (int e = 0; e < ready; ++e) {
        auto* connection = static_cast<Connection*>(events[e].data.ptr);
        if ((events[e].events & EPOLLOUT) && connection->pending) {
          if (!flush(connection)) {
            record(connection, -1);
            reconnect(connection);
            continue;
          }
          if (!connection->pending) watch(connection, EPOLL_CTL_MOD);
        }
        if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
        const ssize_t got = ::recv(connection->fd, connection->input.data() + connection->input_size,
                                   connection->input.size() - connection->input_size, 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (got <= 0) {
          if (connection->busy) record(connection, -1);
          reconnect(connection);
          continue;
        }
        connection->input_size += static_cast<std::size_t>(got);
        int outcome = -1;
        const std::size_t used =
            ParseResponse(std::string_view(connection->input.data(), connection->input_size), outcome);
        if (used == 0) {
          if (connection->input_size == connection->input.size()) {  // an answer larger than any OCSP response
            if (connection->busy) record(connection, -1);
            reconnect(connection);
          }
          continue;
        }
        std::memmove(connection->input.data(), connection->input.data() + used, connection->input_size - used);
        connection->input_size -= used;
        if (connection->busy) record(connection, outcome);
        send_next(connection, seconds_since_start());
      }
    }
    for (Connection* connection : mine) {
      if (connection->fd >= 0) ::close(connection->fd);
    }
    ::close(epoll);
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back(run, t);
  run(0);
  for (auto& worker : workers) worker.join();
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
                "other_status=%zu scheduling=%s\n",
                label, from, to, count, static_cast<double>(count) / span, Percentile(latencies, 0.50),
                Percentile(latencies, 0.99), count ? 100.0 * static_cast<double>(try_later) / static_cast<double>(count) : 0.0,
                errors, other, scheduling_refused ? "normal" : scheduling.c_str());
  };
  for (double from = 0; from < duration; from += window) report("window", from, std::min(duration, from + window));
  report("summary", 0, duration);
  return 0;
}
