#include "responder/server.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "common/time_slice.h"
#include "responder/cpu_steering.h"
#include "responder/front_end_metrics.h"
#include "responder/health.h"
#include "responder/http1.h"
#include "responder/http_cache.h"
#include "responder/libevent.h"
#include "responder/presigner.h"

namespace ocsp::responder {

void Socket::Close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

namespace {

using Steady = std::chrono::steady_clock;

// The overall connection cap, lowered to fit the open-file limit. Past the limit accept() fails and the front
// end can only pause accepting (new connections wait in the backlog for an idle one to time out); under the
// cap it decides, and can give an idle connection's place to a new one. The reserve covers the listeners,
// the event loops' own descriptors, the store, logs and the metrics listener's connections.
unsigned ConnectionCap(const config::Config& config) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY) return config.max_connections;
  const rlim_t reserve = 192 + 16 * static_cast<rlim_t>(config.workers);
  const auto fits = static_cast<unsigned>(std::min<rlim_t>(files.rlim_cur > reserve ? files.rlim_cur - reserve : 16,
                                                           std::numeric_limits<unsigned>::max()));
  if (fits >= config.max_connections) return config.max_connections;
  Log(LogLevel::kWarning, "max_connections_lowered",
      {{"configured", std::to_string(config.max_connections)},
       {"effective", std::to_string(fits)},
       {"open_file_limit", std::to_string(files.rlim_cur)}});
  return fits;
}

constexpr std::string_view kOcspResponseType = "application/ocsp-response";
constexpr std::string_view kOcspRequestType = "application/ocsp-request";


Result<Socket> Listen(const config::ListenAddress& address, bool reuse_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Fail(ErrorCode::kInvalidArgument, address.ToString() + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  Socket socket(::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) return Fail(ErrorCode::kIo, std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // "[::]:80" and "0.0.0.0:80" may both be listed: each socket takes only its own family.
  if (found->ai_family == AF_INET6) ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(socket.get(), found->ai_addr, found->ai_addrlen) != 0) {
    return Fail(ErrorCode::kIo, "cannot listen on " + address.ToString() + ": " + std::strerror(errno));
  }
  if (::listen(socket.get(), 1024) != 0) {
    return Fail(ErrorCode::kIo, "listen on " + address.ToString() + ": " + std::strerror(errno));
  }
  return socket;
}

// With connection_steering = "cpu" (the default): attaches the steering program to each address's SO_REUSEPORT
// group and returns the CPU each worker is to be pinned to; empty when connections are left to the kernel's hash
// (the configuration asks for it, or steering cannot apply here: logged with the reason).
std::vector<int> SteerConnections(const config::Config& config, const ServiceContext& service,
                                  const std::vector<std::vector<Socket>>& sockets) {
  if (config.connection_steering != config::ConnectionSteering::kCpu) return {};
  const std::vector<int> cpus = AllowedCpus();
  std::string why_not;
  if (service.sockets.ocsp.get() >= 0) {
    why_not = "the listening socket is passed by systemd: one socket, not one per worker";
  } else if (config.workers < 2) {
    why_not = "one worker";
  } else if (cpus.size() != config.workers) {
    why_not = "workers (" + std::to_string(config.workers) + ") differ from the CPUs this process may use (" +
              std::to_string(cpus.size()) + ")";
  } else if (auto pinnable = CanPinThreads(); !pinnable) {
    why_not = pinnable.error().Describe();
  } else {
    for (const Socket& listener : sockets.front()) {
      if (auto steered = SteerByCpu(listener.get(), cpus); !steered) {
        why_not = steered.error().Describe();
        break;
      }
    }
  }
  if (!why_not.empty()) {
    // Not a fault: the hash and the balancer still spread the connections, at some cost in CPU per request.
    Log(LogLevel::kInfo, "connection_steering_off", {{"reason", why_not}});
    return {};
  }
  std::string list;
  for (int cpu : cpus) list += (list.empty() ? "" : ",") + std::to_string(cpu);
  Log(LogLevel::kInfo, "connection_steering", {{"mode", "cpu"}, {"cpus", list}});
  return cpus;
}

// Each worker owns its socket; under socket activation they share the passed one through duplicates.
Result<Socket> Duplicate(const Socket& socket) {
  Socket copy(::fcntl(socket.get(), F_DUPFD_CLOEXEC, 0));
  if (copy.get() < 0) return Fail(ErrorCode::kIo, std::string("dup of the passed socket: ") + std::strerror(errno));
  return copy;
}

std::uint16_t BoundPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

bool IsOcspRequestType(std::optional<std::string_view> header) {
  if (!header) return false;
  std::string_view value = header->substr(0, header->find(';'));
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value.size() == kOcspRequestType.size() &&
         strncasecmp(value.data(), kOcspRequestType.data(), value.size()) == 0;
}

// The request-target without scheme and authority (a proxy may send the absolute form), with leading doubled
// slashes folded into one.
std::string_view RequestPath(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() && strncasecmp(target.data(), scheme.data(), scheme.size()) == 0) {
      const auto slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  while (target.starts_with("//")) target.remove_prefix(1);
  return target;
}

bool IsPath(std::string_view path, std::string_view name) {
  return path == name || (path.starts_with(name) && path[name.size()] == '?');
}

// What follows the OCSP path prefix ("" or "/..."), or nullopt when `path` is not under it.
std::optional<std::string_view> UnderPrefix(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return path;
  if (!path.starts_with(prefix)) return std::nullopt;
  const std::string_view rest = path.substr(prefix.size());
  if (!rest.empty() && rest.front() != '/' && rest.front() != '?') return std::nullopt;
  return rest;
}

metrics::Outcome OutcomeOf(signer::ResponseStatus status) {
  switch (status) {
    case signer::ResponseStatus::kMalformedRequest: return metrics::Outcome::kMalformed;
    case signer::ResponseStatus::kTryLater: return metrics::Outcome::kTryLater;
    case signer::ResponseStatus::kUnauthorized: return metrics::Outcome::kUnauthorized;
    default: return metrics::Outcome::kInternalError;
  }
}

void Count(std::atomic<std::uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

// Where a reply goes: the request being handled now, or the deferred one of a PendingResponse.
struct ReplyTarget {
  HttpExchange* exchange = nullptr;  // answering now
  HttpTicket ticket;                 // answering later
  const sockaddr_storage* peer = nullptr;
  bool head = false;
};

// One request waiting for its signature. Owned by the pool job, then by the worker's completion queue.
struct PendingResponse {
  HttpTicket ticket;
  sockaddr_storage peer{};
  metrics::Method method = metrics::Method::kOther;
  bool head = false;
  Steady::time_point started;
  std::shared_ptr<const Snapshot> snapshot;  // the signer in `decision` belongs to it
  std::optional<std::size_t> verifier;       // the registry index the request is attributed to, if any
  metrics::VerifierIndex metrics_verifier = metrics::kVerifierNone;  // its metrics slot
  double sign_seconds = 0;  // measured on the signing thread, recorded by the worker
  DecodedRequest decoded;
  Decision decision;
  std::optional<std::uint64_t> identity;  // set when the answer is cacheable: the ETag
  Result<Bytes> signed_response = Bytes{};
};

// Formats an HTTP date once per distinct time: an issuer's thisUpdate and nextUpdate repeat for a whole CRL.
class DateMemo {
 public:
  std::string_view Format(UnixSeconds time) {
    if (time != time_ || length_ == 0) {
      HeaderBuffer buffer;
      const std::string_view text = FormatHttpDate(time, buffer);
      std::memcpy(text_.data(), text.data(), text.size());
      length_ = text.size();
      time_ = time;
    }
    return {text_.data(), length_};
  }

 private:
  UnixSeconds time_ = 0;
  HeaderBuffer text_{};
  std::size_t length_ = 0;
};

class Worker;

// What a worker asks the scheduler for as its time slice (AskForShortSlice); EEVDF's smallest, 0.1 ms.
constexpr std::chrono::microseconds kWorkerSlice{100};

class Worker final : public HttpHandler {
 public:
  Worker(ServerDependencies dependencies, const config::Config& config, ConnectionLimits& limits,
         FrontEndCounters& counters)
      : dependencies_(dependencies),
        config_(config),
        limits_(limits),
        counters_(counters),
        metrics_(dependencies.metrics.AddWorker()) {
    if (dependencies.access_log != nullptr) access_log_.emplace(*dependencies.access_log);
    for (auto status : {signer::ResponseStatus::kMalformedRequest, signer::ResponseStatus::kInternalError,
                        signer::ResponseStatus::kTryLater, signer::ResponseStatus::kUnauthorized}) {
      exceptions_[static_cast<std::size_t>(status)] = signer::ExceptionResponse(status);
    }
  }

  // `heartbeat`: how often the loop stamps its heartbeat (only with a watchdog).
  // `balancer`: shared with the other workers (null with one worker); `cpu`: the one Start pins it to, if any.
  Result<void> Init(std::vector<Socket> sockets, std::optional<std::chrono::microseconds> heartbeat,
                    ConnectionBalancer* balancer, std::optional<int> cpu) {
    base_.reset(event_base_new());
    if (!base_) return Fail(ErrorCode::kInternal, "event_base_new failed");
    // The request line counts towards the head: a GET request of max_request_bytes in base64, escaped.
    HttpLimits http_limits{.max_head_bytes = config_.max_request_bytes * 2 + 4096,
                           .max_body_bytes = config_.max_request_bytes,
                           .header_timeout = std::chrono::seconds(config_.header_timeout_seconds),
                           .idle_timeout = std::chrono::seconds(config_.http_timeout_seconds)};
    front_end_ = std::make_unique<HttpFrontEnd>(base_.get(), *this, http_limits, limits_, counters_.connections);
    if (balancer != nullptr) front_end_->BalanceWith(*balancer, cpu);
    wake_.reset(event_new(base_.get(), -1, 0, &Worker::OnWake, this));
    drain_.reset(event_new(base_.get(), -1, EV_PERSIST, &Worker::OnDrainTick, this));
    if (!wake_ || !drain_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
    Beat();
    if (heartbeat) {
      heartbeat_.reset(event_new(base_.get(), -1, EV_PERSIST, &Worker::OnHeartbeat, this));
      if (!heartbeat_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
      const timeval period{static_cast<time_t>(heartbeat->count() / 1000000),
                           static_cast<suseconds_t>(heartbeat->count() % 1000000)};
      event_add(heartbeat_.get(), &period);
    }
    if (access_log_) {
      // Lines reach the file within a second even when traffic is too light to fill the buffer.
      flush_.reset(event_new(base_.get(), -1, EV_PERSIST, &Worker::OnFlush, this));
      const timeval second{1, 0};
      if (!flush_ || event_add(flush_.get(), &second) != 0) return Fail(ErrorCode::kInternal, "flush timer");
    }
    for (Socket& socket : sockets) {
      if (auto listening = front_end_->Listen(std::move(socket)); !listening) return listening;
    }
    auto txn = dependencies_.store.BeginRead();
    if (!txn) return std::unexpected(txn.error());
    txn_.emplace(std::move(*txn));
    txn_->Reset();
    SwitchTo(std::move(dependencies_.snapshot));  // from now on only snapshot_ holds it
    return {};
  }

  // `cpu`: the CPU this worker is pinned to, when connections are steered by CPU.
  void Start(std::size_t index, std::optional<int> cpu) {
    if (index < kMaxWorkers) front_end_->ReportOpenConnectionsTo(&counters_.open_by_worker[index]);
    thread_ = std::thread([this, index, cpu] {
      NameThisThread("ocsp-worker-" + std::to_string(index));
      if (cpu) {
        if (auto pinned = PinThisThreadTo(*cpu); !pinned) {
          Log(LogLevel::kWarning, "worker_not_pinned", {{"worker", std::to_string(index)},
                                                        {"error", pinned.error().Describe()}});
        }
      }
      // A worker's turns are a few microseconds: with a slice shorter than a signing thread's, a worker that
      // wakes preempts a signer at once instead of waiting out the signer's protected slice. The abuse bench's
      // never-seen-serials sweep (both cores signing), paced client's p99: 1.06-1.08 ms against 1.16-1.63.
      if (auto sliced = AskForShortSlice(kWorkerSlice); !sliced) {
        Log(LogLevel::kInfo, "worker_slice_default", {{"worker", std::to_string(index)},
                                                      {"error", sliced.error().Describe()}});
      }
      event_base_dispatch(base_.get());
    });
  }

  // From any thread: finish what is in flight for `grace`, then leave the loop.
  void Stop(std::chrono::milliseconds grace) {
    timeval delay{0, static_cast<suseconds_t>(grace.count() * 1000)};
    event_base_loopexit(base_.get(), &delay);
  }

  // From any thread: stop accepting, and leave the loop once nothing is in flight or at `deadline`.
  void BeginDrain(Steady::time_point deadline) {
    drain_deadline_ = deadline;  // read on the loop thread after event_add, which locks the base
    const timeval tick{0, 20000};
    event_add(drain_.get(), &tick);
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
    if (access_log_) access_log_->Flush();
  }

  // Requests still waiting for a signature when the loop ended (after Join).
  [[nodiscard]] std::size_t abandoned() const { return in_flight_; }

  // When the loop last proved it runs (any thread).
  [[nodiscard]] Steady::time_point last_heartbeat() const {
    return Steady::time_point(Steady::duration(heartbeat_ticks_.load(std::memory_order_relaxed)));
  }

  // From a signing thread.
  void PostCompletion(std::shared_ptr<PendingResponse> pending) {
    {
      std::lock_guard lock(inbox_mutex_);
      completions_.push_back(std::move(pending));
    }
    event_active(wake_.get(), EV_READ, 0);
  }

  // From the control thread: the worker switches on its own loop and then calls `switched`.
  void PostSnapshot(std::shared_ptr<const Snapshot> snapshot, std::function<void()> switched) {
    {
      std::lock_guard lock(inbox_mutex_);
      next_snapshot_ = std::move(snapshot);
      on_switched_ = std::move(switched);
    }
    event_active(wake_.get(), EV_READ, 0);
  }

  [[nodiscard]] std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  void OnRequest(HttpExchange& exchange) override { Handle(exchange); }

 private:
  static void OnWake(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainInbox(); }
  static void OnHeartbeat(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->Beat(); }
  static void OnDrainTick(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainTick(); }

  void Beat() { heartbeat_ticks_.store(Steady::now().time_since_epoch().count(), std::memory_order_relaxed); }

  void DrainTick() {
    if (!draining_) {
      // No new connections from here; open ones still finish their requests, and each reply closes its
      // connection so clients reconnect to the next instance. Closing our sockets (duplicates under socket
      // activation) leaves the next instance's queue to systemd.
      front_end_->StopAccepting();
      front_end_->Drain();
      draining_ = true;
    }
    const auto now = Steady::now();
    // Leave once nothing has been in flight for 100 ms (replies already queued reach their sockets meanwhile),
    // or at the deadline whatever is left.
    if (in_flight_ != 0) quiet_since_.reset();
    else if (!quiet_since_) quiet_since_ = now;
    if ((quiet_since_ && now - *quiet_since_ >= std::chrono::milliseconds(100)) || now >= drain_deadline_) {
      event_del(drain_.get());
      event_base_loopexit(base_.get(), nullptr);
    }
  }
  static void OnFlush(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->access_log_->Flush(); }

  void SwitchTo(std::shared_ptr<const Snapshot> snapshot) {
    snapshot_ = std::move(snapshot);
    limiter_ = snapshot_->registry ? RateLimiter(*snapshot_->registry, config_.workers, Steady::now()) : RateLimiter();
    generation_.store(snapshot_->generation, std::memory_order_release);
  }

  void Handle(HttpExchange& exchange) {
    const auto started = Steady::now();
    const HttpRequest& request = exchange.request();
    ReplyTarget target{.exchange = &exchange, .ticket = {}, .peer = &exchange.peer(), .head = request.method == HttpMethod::kHead};
    const metrics::Method method = request.method == HttpMethod::kPost ? metrics::Method::kPost
                                   : request.method == HttpMethod::kGet || request.method == HttpMethod::kHead
                                       ? metrics::Method::kGet
                                       : metrics::Method::kOther;
    const std::string_view path = RequestPath(request.target);
    if (IsPath(path, "/healthz")) {
      SendJson(target, 200, "OK", kAliveJson);
      return;
    }
    if (IsPath(path, "/readyz")) {
      SendReadiness(target);
      return;
    }
    const Snapshot& snapshot = *snapshot_;
    const std::optional<std::string_view> ocsp_path = UnderPrefix(path, snapshot.config.path_prefix);
    if (!ocsp_path) {
      SendRefusal(target, 404, "Not Found", method, started);
      return;
    }
    if (request.method == HttpMethod::kOther) {
      SendRefusal(target, 405, "Method Not Allowed", method, started, metrics::kVerifierNone,
                  HttpHeader{"Allow", "GET, HEAD, POST"});
      return;
    }

    // Access: who is asking (verifier registry), and within its rate.
    std::optional<std::size_t> verifier;  // the registry index the request is attributed to
    metrics::VerifierIndex slot = metrics::kVerifierNone;  // and its metrics label
    if (snapshot.registry) {
      const auto address = AddressOf(reinterpret_cast<const sockaddr*>(target.peer));
      verifier = address ? snapshot.registry->Match(*address) : std::nullopt;
      slot = verifier && *verifier < snapshot.verifier_slots.size() ? snapshot.verifier_slots[*verifier]
                                                                   : metrics::kVerifierUnregistered;
      if (!verifier) {
        Count(counters_.forbidden_unregistered);
        SendRefusal(target, 403, "Forbidden", method, started, slot);
        return;
      }
      if (dependencies_.clock.Now() < snapshot.registry->at(*verifier).access_from) {
        Count(counters_.forbidden_not_yet_open);
        SendRefusal(target, 403, "Forbidden", method, started, slot);
        return;
      }
      if (!limiter_.Allow(*verifier, started)) {
        Count(counters_.rate_limited);
        if (snapshot.config.over_rate_limit_http_429) {
          SendRefusal(target, 429, "Too Many Requests", method, started, slot, HttpHeader{"Retry-After", "1"});
        } else {
          SendException(target, signer::ResponseStatus::kTryLater, method, started, slot);
        }
        return;
      }
    }

    ByteView der;
    if (request.method == HttpMethod::kPost) {
      // One rule for POST: the body is an OCSP request only when labelled as one (RFC 6960 A.1); anything
      // else is HTTP 415, whatever the body holds.
      if (!IsOcspRequestType(request.content_type)) {
        SendRefusal(target, 415, "Unsupported Media Type", method, started);
        return;
      }
      der = request.body;
    } else {
      auto decoded = DecodeGetPath(*ocsp_path, get_body_);
      if (!decoded || get_body_.size() > config_.max_request_bytes) {
        Log(LogLevel::kDebug, "malformed_request",
            {{"method", "GET"}, {"why", decoded ? "too large" : decoded.error().message}});
        SendException(target, signer::ResponseStatus::kMalformedRequest, method, started);
        return;
      }
      der = get_body_;
    }

    const RequestLimits request_limits{config_.max_certids_per_request};
    DecodedRequest& request_certs = decoded_;
    if (!DecodeRequestQuick(der, request_limits, request_certs)) {
      auto decoded = DecodeRequest(der, request_limits);
      if (!decoded) {
        Log(LogLevel::kDebug, "malformed_request", {{"why", decoded.error().message}});
        SendException(target, signer::ResponseStatus::kMalformedRequest, method, started);
        return;
      }
      request_certs = std::move(*decoded);
    }

    // A verifier registered for one environment asks only that environment's issuers.
    if (verifier && !SameEnvironment(snapshot, snapshot.registry->at(*verifier).environment, request_certs)) {
      Count(counters_.wrong_environment);
      SendException(target, signer::ResponseStatus::kUnauthorized, method, started);
      return;
    }

    if (auto renewed = txn_->Renew(); !renewed) {
      Log(LogLevel::kError, "store_read_failed", {{"error", renewed.error().Describe()}});
      SendException(target, signer::ResponseStatus::kInternalError, method, started);
      return;
    }
    Decision& decision = decision_;
    snapshot.authority->Decide(txn_->get(), request_certs, decision);

    if (const auto& exception = decision.exception) {
      txn_->Reset();
      if (*exception != signer::ResponseStatus::kUnauthorized) {
        Log(LogLevel::kDebug, "exception_answer", {{"why", decision.reason}});
      }
      SendException(target, *exception, method, started);
      return;
    }

    // The nonce decides between the stored response and a fresh signature.
    bool echo_nonce = false;
    if (request_certs.nonce && snapshot.config.nonce == config::NonceMode::kHonour) {
      if (TakeNonceToken()) {
        echo_nonce = true;
      } else if (snapshot.config.nonce_over_budget == config::NonceOverBudget::kTryLater) {
        txn_->Reset();
        SendException(target, signer::ResponseStatus::kTryLater, method, started);
        return;
      }
    }
    if (!echo_nonce) request_certs.nonce.reset();  // ignored: the response can then be kept and reused

    // A response that echoes a nonce is unique to its request: no validator, nothing a cache may reuse.
    std::optional<std::uint64_t> identity;
    if (!request_certs.nonce && decision.next_update) {
      identity = ResponseIdentity(request_certs, decision);
      HeaderBuffer etag;
      if (request.if_none_match && IfNoneMatchHits(*request.if_none_match, FormatEtag(*identity, etag))) {
        txn_->Reset();
        Count(counters_.not_modified);
        HttpReply reply;
        reply.status = 304;
        reply.reason = "Not Modified";
        CacheHeaders headers;
        AddCacheHeaders(reply, identity, decision, headers);
        Deliver(target, reply);
        Observe(target, method, decision.outcome, started, 0, slot);
        return;
      }
    }
    if (!echo_nonce && ServeStored(target, request_certs, decision, identity, method, started, slot)) {
      txn_->Reset();
      return;
    }
    txn_->Reset();  // a snapshot held longer would pin old pages while imports run

    // The signer copies each CertID as OpenSSL decoded it: a request decoded by hand is decoded again.
    if (!request_certs.request) {
      auto decoded = DecodeRequest(der, request_limits);
      if (!decoded || decoded->certs.size() != decision.answers.size()) {
        Log(LogLevel::kError, "request_redecode_failed", {{"why", decoded ? "CertID count" : decoded.error().message}});
        SendException(target, signer::ResponseStatus::kInternalError, method, started);
        return;
      }
      for (std::size_t i = 0; i < decision.answers.size(); ++i) decision.answers[i].cert_id = decoded->certs[i].cert_id;
      decoded->nonce = std::move(request_certs.nonce);  // as decided above: kept only when echoed
      request_certs = std::move(*decoded);
    }

    auto pending = std::make_shared<PendingResponse>();
    pending->peer = exchange.peer();
    pending->method = method;
    pending->head = target.head;
    pending->started = started;
    pending->verifier = verifier;
    pending->metrics_verifier = slot;
    pending->decoded = std::move(request_certs);
    pending->decision = std::move(decision);
    pending->identity = identity;
    pending->snapshot = snapshot_;
    Worker* worker = this;
    const bool accepted = dependencies_.signing_pool.TrySubmit([worker, pending] {
      const auto sign_started = Steady::now();
      const UnixSeconds now = worker->dependencies_.clock.Now();
      pending->signed_response =
          pending->decision.signer->Sign(pending->decision.answers, pending->decoded.nonce, now);
      pending->sign_seconds = std::chrono::duration<double>(Steady::now() - sign_started).count();
      if (pending->signed_response && !pending->decoded.nonce && worker->dependencies_.writer != nullptr &&
          pending->decoded.certs.size() == 1) {
        if (auto keep = KeepableResponse(pending->decision, pending->decoded.certs.front(),
                                         *pending->signed_response, now)) {
          worker->dependencies_.writer->Enqueue(std::move(*keep));
        }
      }
      worker->PostCompletion(pending);
    });
    if (accepted) {
      // Set after the job may already run: only this loop thread reads the ticket (in DrainInbox, later).
      pending->ticket = exchange.Defer();
      ++in_flight_;
    } else {
      SendException(target, signer::ResponseStatus::kTryLater, method, started);
    }
  }

  // Serves the stored response for a one-CertID request when it states exactly what the store holds now
  // (the read transaction is still open). Copies the stored bytes; allocates nothing.
  bool ServeStored(ReplyTarget& target, const DecodedRequest& request, const Decision& decision,
                   const std::optional<std::uint64_t>& identity, metrics::Method method, Steady::time_point started,
                   metrics::VerifierIndex slot) {
    if (request.certs.size() != 1 || decision.answers.size() != 1 || decision.issuer_no == 0) return false;
    const RequestedCert& cert = request.certs.front();
    if (!cert.algorithm) return false;
    auto stored = dependencies_.store.GetResponse(txn_->get(), decision.issuer_no, *cert.algorithm, cert.serial);
    if (!stored || !*stored) return false;
    const UnixSeconds now = dependencies_.clock.Now();
    if (!StoredResponseServes((*stored)->info, decision.answers.front(), decision.signer_id, now)) return false;
    SendOcsp(target, (*stored)->der, identity, &decision);
    metrics_.ObserveAnswer(metrics::AnswerSource::kStored,
                           static_cast<double>(std::max<UnixSeconds>(0, now - (*stored)->info.produced_at)));
    Observe(target, method, decision.outcome, started, (*stored)->der.size(), slot);
    const auto hour = static_cast<std::uint32_t>(now / 3600);
    if ((*stored)->info.status == store::StoredStatus::kGood && (*stored)->info.requested_hour < hour &&
        dependencies_.writer != nullptr) {
      dependencies_.writer->EnqueueTouch(decision.issuer_no, *cert.algorithm, cert.serial, hour);
    }
    return true;
  }

  // The per-worker share of nonce_signatures_per_second, as a token bucket with one second of burst.
  bool TakeNonceToken() {
    const double rate = static_cast<double>(snapshot_->config.nonce_signatures_per_second) / config_.workers;
    const auto now = Steady::now();
    nonce_tokens_ = std::min(rate, nonce_tokens_ + rate * std::chrono::duration<double>(now - nonce_refilled_).count());
    nonce_refilled_ = now;
    if (nonce_tokens_ < 1.0) return false;
    nonce_tokens_ -= 1.0;
    return true;
  }

  static bool SameEnvironment(const Snapshot& snapshot, Environment environment, const DecodedRequest& request) {
    for (const RequestedCert& cert : request.certs) {
      if (!cert.algorithm) continue;  // the authority answers unauthorized for it
      const auto index = snapshot.issuers.Resolve(*cert.algorithm, cert.name_hash, cert.key_hash);
      if (index && snapshot.environments[*index] != environment) return false;
    }
    return true;
  }

  void DrainInbox() {
    std::vector<std::shared_ptr<PendingResponse>> ready;
    std::shared_ptr<const Snapshot> next;
    std::function<void()> switched;
    {
      std::lock_guard lock(inbox_mutex_);
      ready.swap(completions_);
      next.swap(next_snapshot_);
      switched.swap(on_switched_);
    }
    if (next) {
      SwitchTo(std::move(next));
      if (switched) switched();
    }
    for (const auto& pending : ready) {
      --in_flight_;
      ReplyTarget target{.ticket = pending->ticket, .peer = &pending->peer, .head = pending->head};
      if (!pending->signed_response) {
        Log(LogLevel::kError, "signing_failed", {{"error", pending->signed_response.error().Describe()}});
        SendException(target, signer::ResponseStatus::kInternalError, pending->method, pending->started);
        continue;
      }
      metrics_.ObserveSignature(pending->sign_seconds);
      metrics_.ObserveAnswer(metrics::AnswerSource::kSigned, 0);
      SendOcsp(target, *pending->signed_response, pending->identity, &pending->decision);
      Observe(target, pending->method, pending->decision.outcome, pending->started, pending->signed_response->size(),
              pending->metrics_verifier);
    }
  }

  void Deliver(ReplyTarget& target, HttpReply& reply) {
    reply.head = target.head;
    if (target.exchange != nullptr) target.exchange->Reply(reply);
    else front_end_->Complete(target.ticket, reply);
  }

  // The texts the cache headers point to, kept until the reply is formatted.
  struct CacheHeaders {
    HeaderBuffer cache_control;
    HeaderBuffer etag;
  };

  // RFC 9919 caching for a cacheable answer (`identity` set); `max-age=0, no-cache` otherwise.
  void AddCacheHeaders(HttpReply& reply, const std::optional<std::uint64_t>& identity, const Decision& decision,
                       CacheHeaders& text) {
    if (!identity || !decision.next_update) {
      reply.Add("Cache-Control", kNoCache);
      return;
    }
    const UnixSeconds now = dependencies_.clock.Now();
    const UnixSeconds next_update = *decision.next_update;
    reply.Add("Cache-Control",
              FormatCacheControl(MaxAge(now, next_update, snapshot_->config.max_cache_age_seconds), text.cache_control));
    reply.Add("Last-Modified", last_modified_.Format(LatestThisUpdate(decision)));
    reply.Add("Expires", expires_.Format(next_update));
    reply.Add("ETag", FormatEtag(*identity, text.etag));
  }

  void SendOcsp(ReplyTarget& target, ByteView body, const std::optional<std::uint64_t>& identity,
                const Decision* decision) {
    HttpReply reply;
    reply.Add("Content-Type", kOcspResponseType);
    CacheHeaders text;
    if (decision != nullptr) AddCacheHeaders(reply, identity, *decision, text);
    else reply.Add("Cache-Control", kNoCache);
    reply.body = body;
    Deliver(target, reply);
  }

  void SendException(ReplyTarget& target, signer::ResponseStatus status, metrics::Method method,
                     Steady::time_point started, metrics::VerifierIndex verifier = metrics::kVerifierNone) {
    // Exceptions are sent unsigned with HTTP 200 (RFC 6960 2.3); caches must not keep them.
    const Bytes& body = exceptions_[static_cast<std::size_t>(status)];
    SendOcsp(target, body, std::nullopt, nullptr);
    Observe(target, method, OutcomeOf(status), started, body.size(), verifier);
  }

  void SendRefusal(ReplyTarget& target, int code, std::string_view reason, metrics::Method method,
                   Steady::time_point started, metrics::VerifierIndex verifier = metrics::kVerifierNone,
                   std::optional<HttpHeader> extra = std::nullopt) {
    HttpReply reply;
    reply.status = code;
    reply.reason = reason;
    reply.Add("Cache-Control", kNoCache);
    if (extra) reply.Add(extra->name, extra->value);
    Deliver(target, reply);
    Observe(target, method, metrics::Outcome::kRefused, started, 0, verifier);
  }

  void SendJson(ReplyTarget& target, int code, std::string_view reason, std::string_view json) {
    HttpReply reply;
    reply.status = code;
    reply.reason = reason;
    reply.Add("Content-Type", "application/json");
    reply.Add("Cache-Control", "no-store");
    reply.body = ByteView(reinterpret_cast<const std::uint8_t*>(json.data()), json.size());
    Deliver(target, reply);
  }

  void SendReadiness(ReplyTarget& target) {
    const auto renewed = txn_->Renew();
    const Readiness readiness = CheckReadiness(*snapshot_, dependencies_.store, renewed ? txn_->get() : nullptr,
                                               dependencies_.clock.Now());
    if (renewed) txn_->Reset();
    SendJson(target, readiness.ready ? 200 : 503, readiness.ready ? "OK" : "Service Unavailable", readiness.json);
  }

  // The access log's name for a metrics slot: the registry's name for a named one.
  std::string_view VerifierName(metrics::VerifierIndex slot) const {
    if (slot == metrics::kVerifierNone) return "none";
    if (slot == metrics::kVerifierUnregistered || !snapshot_->registry) return "unregistered";
    for (std::size_t i = 0; i < snapshot_->verifier_slots.size(); ++i) {
      if (snapshot_->verifier_slots[i] == slot) return snapshot_->registry->at(i).name;
    }
    return "unregistered";
  }

  // After the reply is formatted.
  void Observe(const ReplyTarget& target, metrics::Method method, metrics::Outcome outcome, Steady::time_point started,
               std::size_t bytes, metrics::VerifierIndex verifier = metrics::kVerifierNone) {
    if (!metrics_.enabled() && !access_log_) return;  // metrics.enabled = false: not even a clock read
    const double seconds = std::chrono::duration<double>(Steady::now() - started).count();
    metrics_.ObserveRequest(method, outcome, verifier, seconds, bytes);
    if (access_log_) {
      std::array<char, INET6_ADDRSTRLEN> address{};
      if (target.peer != nullptr) {
        const auto* peer = reinterpret_cast<const sockaddr*>(target.peer);
        const void* raw = peer->sa_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(peer)->sin_addr);
        if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6) address[0] = '\0';
        else ::inet_ntop(peer->sa_family, raw, address.data(), address.size());
      }
      access_log_->Append({dependencies_.clock.Now(), VerifierName(verifier), std::string_view(address.data()),
                           method, outcome, seconds, bytes});
    }
  }

  ServerDependencies dependencies_;
  const config::Config& config_;  // as at start
  ConnectionLimits& limits_;
  FrontEndCounters& counters_;
  std::array<Bytes, 7> exceptions_;  // indexed by ResponseStatus
  EventBasePtr base_;  // declared first among the libevent handles so it is freed after them
  std::unique_ptr<HttpFrontEnd> front_end_;
  EventPtr wake_;
  EventPtr heartbeat_;
  EventPtr drain_;
  Steady::time_point drain_deadline_;
  bool draining_ = false;                         // loop thread only
  std::optional<Steady::time_point> quiet_since_;  // loop thread only
  std::size_t in_flight_ = 0;  // handed to the signing pool, reply not sent yet; loop thread only
  std::atomic<Steady::rep> heartbeat_ticks_{0};
  EventPtr flush_;
  metrics::WorkerMetrics& metrics_;
  std::optional<AccessLogWriter> access_log_;
  std::optional<store::ReadTxn> txn_;
  Bytes get_body_;  // a GET request's decoded DER; its capacity is kept from request to request
  DecodedRequest decoded_;  // the request being handled; its vector's capacity is kept likewise
  Decision decision_;  // the same: reused, so that deciding allocates nothing once it has grown
  DateMemo last_modified_;
  DateMemo expires_;
  double nonce_tokens_ = 0;
  Steady::time_point nonce_refilled_ = Steady::now();
  std::shared_ptr<const Snapshot> snapshot_;  // this loop's own; replaced only on this loop
  RateLimiter limiter_;
  std::atomic<std::uint64_t> generation_{0};
  std::mutex inbox_mutex_;  // completions and snapshots posted from other threads
  std::vector<std::shared_ptr<PendingResponse>> completions_;
  std::shared_ptr<const Snapshot> next_snapshot_;
  std::function<void()> on_switched_;
  std::thread thread_;
};

// The main thread's loop: signals, reloads and the metrics listener.
// /metrics, on the control loop, through the same hardened front end as OCSP (caps, timeouts, accept pause).
class MetricsHandler final : public HttpHandler {
 public:
  explicit MetricsHandler(metrics::ResponderMetrics& metrics) : metrics_(metrics) {}
  void OnRequest(HttpExchange& exchange) override {
    const HttpRequest& request = exchange.request();
    HttpReply reply;
    reply.head = request.method == HttpMethod::kHead;
    const std::string_view path = RequestPath(request.target);
    if (request.method != HttpMethod::kGet && request.method != HttpMethod::kHead) {
      reply.status = 405;
      reply.reason = "Method Not Allowed";
      reply.Add("Allow", "GET, HEAD");
      exchange.Reply(reply);
      return;
    }
    if (path != "/metrics" && !path.starts_with("/metrics?")) {
      reply.status = 404;
      reply.reason = "Not Found";
      exchange.Reply(reply);
      return;
    }
    body_ = metrics_.Serialize();
    reply.Add("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    reply.body = ByteView(reinterpret_cast<const std::uint8_t*>(body_.data()), body_.size());
    exchange.Reply(reply);
  }

 private:
  metrics::ResponderMetrics& metrics_;
  std::string body_;
};

struct Server::Control {
  EventBasePtr base;  // first: freed after every handle on it
  std::unique_ptr<MetricsHandler> metrics_handler;
  // A scraper or two: small caps of its own, apart from the OCSP listeners' (a flood there leaves /metrics).
  ConnectionLimits metrics_limits{64, 16};
  ConnectionCounters metrics_counters;
  std::unique_ptr<HttpFrontEnd> metrics_front_end;
  EventPtr sigint;
  EventPtr sigterm;
  EventPtr sighup;
  EventPtr watchdog;
  EventPtr sigusr1;
  EventPtr stop;
  EventPtr reload;    // RequestReload from any thread
  EventPtr switched;  // a worker switched to a new snapshot
  std::shared_ptr<const Snapshot> current;  // the newest snapshot handed to the workers
  bool reload_in_progress = false;
  Steady::time_point reload_started;
};

Server::Server(ServerDependencies dependencies, const config::Config& config)
    : dependencies_(dependencies),
      config_(config),
      counters_(std::make_shared<FrontEndCounters>()),
      limits_(std::make_unique<ConnectionLimits>(ConnectionCap(config), config.max_connections_per_address)) {
  dependencies_.metrics.AddCollectable(std::make_shared<FrontEndCollector>(counters_, config.workers));
}

Server::~Server() {
  for (auto& worker : workers_) {
    worker->Stop(std::chrono::milliseconds(0));
    worker->Join();
  }
}

Result<std::unique_ptr<Server>> Server::Start(const config::Config& config, ServerDependencies dependencies,
                                              ServiceContext service) {
  // libevent must know about threads before any base exists: signing threads wake the workers' loops.
  static const int threads_ready = evthread_use_pthreads();
  if (threads_ready != 0) return Fail(ErrorCode::kInternal, "libevent has no pthreads support");
  std::signal(SIGPIPE, SIG_IGN);
  if (!dependencies.snapshot || !dependencies.snapshot->authority) {
    return Fail(ErrorCode::kInternal, "the server needs a snapshot built with the store");
  }

  std::unique_ptr<Server> server(new Server(dependencies, config));
  server->notifier_ = service.notifier;
  server->drain_timeout_ = std::chrono::seconds(config.drain_timeout_seconds);
  // The workers stamp their heartbeat four times per watchdog interval; the control loop checks twice.
  std::optional<std::chrono::microseconds> heartbeat;
  if (service.notifier != nullptr && service.notifier->watchdog_interval()) {
    heartbeat = std::max(*service.notifier->watchdog_interval() / 4, std::chrono::microseconds(1000));
  }
  // Every worker listens on every address with its own SO_REUSEPORT socket; with port 0, the other workers
  // join the port the first one got. Under socket activation each worker accepts on its own duplicate of the
  // one passed socket instead.
  std::vector<std::vector<Socket>> sockets(config.workers);
  if (service.sockets.ocsp.get() >= 0) {
    for (unsigned i = 0; i < config.workers; ++i) {
      auto socket = Duplicate(service.sockets.ocsp);
      if (!socket) return std::unexpected(socket.error());
      if (i == 0) {
        config::ListenAddress address = config.listen;
        address.port = BoundPort(socket->get());
        server->ocsp_addresses_.push_back(address);
      }
      sockets[i].push_back(std::move(*socket));
    }
  } else {
    for (config::ListenAddress address : config.listen_addresses) {
      for (unsigned i = 0; i < config.workers; ++i) {
        auto socket = Listen(address, /*reuse_port=*/true);
        if (!socket) return std::unexpected(socket.error());
        if (i == 0) {
          address.port = BoundPort(socket->get());
          server->ocsp_addresses_.push_back(address);
        }
        sockets[i].push_back(std::move(*socket));
      }
    }
  }
  const std::vector<int> worker_cpus = SteerConnections(config, service, sockets);
  if (config.workers > 1) server->balancer_ = std::make_unique<ConnectionBalancer>();
  for (unsigned i = 0; i < config.workers; ++i) {
    auto worker = std::make_unique<Worker>(dependencies, server->config_, *server->limits_, *server->counters_);
    const std::optional<int> cpu = i < worker_cpus.size() ? std::optional<int>(worker_cpus[i]) : std::nullopt;
    if (auto init = worker->Init(std::move(sockets[i]), heartbeat, server->balancer_.get(), cpu); !init) {
      return std::unexpected(init.error());
    }
    server->workers_.push_back(std::move(worker));
  }

  auto control = std::make_unique<Control>();
  control->base.reset(event_base_new());
  control->current = dependencies.snapshot;
  server->published_ = dependencies.snapshot;
  if (!control->base) return Fail(ErrorCode::kInternal, "event_base_new failed");
  auto on_signal = [](evutil_socket_t, short, void* base) {
    event_base_loopbreak(static_cast<event_base*>(base));
  };
  Server* server_ptr = server.get();
  control->sigint.reset(evsignal_new(control->base.get(), SIGINT, on_signal, control->base.get()));
  control->sigterm.reset(evsignal_new(control->base.get(), SIGTERM, on_signal, control->base.get()));
  control->stop.reset(event_new(control->base.get(), -1, 0, on_signal, control->base.get()));
  auto on_reload = [](evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->Reload(); };
  control->sighup.reset(evsignal_new(control->base.get(), SIGHUP, on_reload, server_ptr));
  control->reload.reset(event_new(control->base.get(), -1, 0, on_reload, server_ptr));
  control->switched.reset(event_new(
      control->base.get(), -1, 0, [](evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->ReloadSwitched(); },
      server_ptr));
  event_add(control->sigint.get(), nullptr);
  event_add(control->sigterm.get(), nullptr);
  event_add(control->sighup.get(), nullptr);  // without a handler SIGHUP would end the process
  if (heartbeat) {
    auto on_tick = [](evutil_socket_t, short, void* self) { static_cast<Server*>(self)->OnWatchdogTick(); };
    control->watchdog.reset(event_new(control->base.get(), -1, EV_PERSIST, on_tick, server.get()));
    const auto period = *heartbeat * 2;
    const timeval tick{static_cast<time_t>(period.count() / 1000000),
                       static_cast<suseconds_t>(period.count() % 1000000)};
    event_add(control->watchdog.get(), &tick);
  }
  // logrotate renames the access log, then sends SIGUSR1: the workers' next writes go to the new file. Handled
  // even without an access log, so a stray SIGUSR1 never kills the responder.
  auto on_reopen = [](evutil_socket_t, short, void* log) {
    auto* access_log = static_cast<AccessLog*>(log);
    if (access_log == nullptr) {
      Log(LogLevel::kInfo, "sigusr1_ignored", {{"why", "no access log is configured"}});
    } else if (auto reopened = access_log->Reopen(); !reopened) {
      Log(LogLevel::kError, "access_log_reopen_failed", {{"error", reopened.error().Describe()}});
    } else {
      Log(LogLevel::kInfo, "access_log_reopened", {{"path", access_log->path().string()}});
    }
  };
  control->sigusr1.reset(evsignal_new(control->base.get(), SIGUSR1, on_reopen, dependencies.access_log));
  event_add(control->sigusr1.get(), nullptr);

  if (config.metrics_listen || service.sockets.metrics.get() >= 0) {
    auto socket = service.sockets.metrics.get() >= 0 ? Result<Socket>(std::move(service.sockets.metrics))
                                                     : Listen(*config.metrics_listen, /*reuse_port=*/false);
    if (!socket) return std::unexpected(socket.error());
    server->metrics_port_ = BoundPort(socket->get());
    control->metrics_handler = std::make_unique<MetricsHandler>(dependencies.metrics);
    control->metrics_front_end = std::make_unique<HttpFrontEnd>(
        control->base.get(), *control->metrics_handler,
        HttpLimits{.max_head_bytes = 8192, .max_body_bytes = 0, .header_timeout = std::chrono::seconds(10),
                   .idle_timeout = std::chrono::seconds(30)},
        control->metrics_limits, control->metrics_counters);
    if (auto listening = control->metrics_front_end->Listen(std::move(*socket)); !listening) {
      return std::unexpected(listening.error());
    }
  }
  server->control_ = std::move(control);
  server->dependencies_.snapshot.reset();  // the workers and the control loop hold it now

  for (std::size_t i = 0; i < server->workers_.size(); ++i) {
    server->workers_[i]->Start(i, i < worker_cpus.size() ? std::optional<int>(worker_cpus[i]) : std::nullopt);
  }
  return server;  // main says READY=1 once it has logged where it listens
}

// On the control loop: read the configuration again, build the next snapshot, hand it to every worker.
// The file I/O and key loading happen here, never on a worker's loop.
void Server::Reload() {
  Control& control = *control_;
  Log(LogLevel::kInfo, "reloading");
  if (notifier_ != nullptr) notifier_->Reloading();
  control.reload_started = Steady::now();
  const std::filesystem::path source = control.current->config.source;
  auto fail = [&](const std::string& why) {
    Count(counters_->failed_reloads);
    Log(LogLevel::kError, "reload_failed", {{"error", why}, {"kept_generation", std::to_string(control.current->generation)}});
    if (!control.reload_in_progress && notifier_ != nullptr) {
      notifier_->Ready();
      notifier_->Status("answering; last reload failed: " + why);
    }
  };
  auto config = config::LoadConfig(source);
  if (!config) return fail(config.error().Describe());
  auto snapshot = BuildSnapshot(*config, &dependencies_.store, dependencies_.clock, control.current->generation + 1);
  if (!snapshot) return fail(snapshot.error().Describe());
  if (const auto restart = RestartOnlyChanges(config_, *config); !restart.empty()) {
    std::string keys;
    for (const auto& key : restart) keys += (keys.empty() ? "" : ",") + key;
    Log(LogLevel::kWarning, "reload_needs_restart", {{"keys", keys}, {"applied", "the reloadable keys only"}});
  }
  control.current = *snapshot;
  {
    std::lock_guard lock(published_mutex_);
    published_ = control.current;
  }
  control.reload_in_progress = true;
  event* switched = control.switched.get();
  for (auto& worker : workers_) {
    worker->PostSnapshot(control.current, [switched] { event_active(switched, EV_READ, 0); });
  }
}

// On the control loop, after a worker switched: when all have, the reload is done.
void Server::ReloadSwitched() {
  Control& control = *control_;
  if (!control.reload_in_progress) return;
  for (const auto& worker : workers_) {
    if (worker->generation() < control.current->generation) return;
  }
  control.reload_in_progress = false;
  Count(counters_->reloads);
  const auto elapsed = std::chrono::duration<double, std::milli>(Steady::now() - control.reload_started).count();
  Log(LogLevel::kInfo, "reloaded",
      {{"generation", std::to_string(control.current->generation)},
       {"workers", std::to_string(workers_.size())},
       {"verifiers", std::to_string(control.current->registry ? control.current->registry->size() : 0)},
       {"milliseconds", std::to_string(static_cast<long>(elapsed))}});
  if (notifier_ != nullptr) notifier_->Ready();
}

std::shared_ptr<const Snapshot> Server::CurrentSnapshot() const {
  std::lock_guard lock(published_mutex_);
  return published_;
}

void Server::Run() {
  event_base_dispatch(control_->base.get());
  if (notifier_ != nullptr) notifier_->Stopping();
  Log(LogLevel::kInfo, "stopping", {{"drain_timeout_seconds", std::to_string(drain_timeout_.count())}});
  const auto deadline = Steady::now() + drain_timeout_;
  for (auto& worker : workers_) worker->BeginDrain(deadline);
  for (auto& worker : workers_) worker->Join();
  std::size_t abandoned = 0;
  for (const auto& worker : workers_) abandoned += worker->abandoned();
  // Signatures still queued run now; their replies have no loop left to go out on.
  dependencies_.signing_pool.Stop();
  Log(abandoned == 0 ? LogLevel::kInfo : LogLevel::kWarning, "drained", {{"abandoned", std::to_string(abandoned)}});
  const FrontEndCounters& c = *counters_;
  auto text = [](const std::atomic<std::uint64_t>& n) { return std::to_string(n.load(std::memory_order_relaxed)); };
  Log(LogLevel::kInfo, "front_end_counts",
      {{"forbidden_unregistered", text(c.forbidden_unregistered)},
       {"forbidden_not_yet_open", text(c.forbidden_not_yet_open)},
       {"rate_limited", text(c.rate_limited)},
       {"wrong_environment", text(c.wrong_environment)},
       {"not_modified", text(c.not_modified)},
       {"connections_refused_over_cap", text(c.connections.refused_over_cap)},
       {"header_timeouts", text(c.connections.header_timeouts)},
       {"idle_connections_evicted", text(c.connections.evicted_idle)},
       {"accept_pauses", text(c.connections.accept_pauses)},
       {"rebalanced", text(c.connections.rebalanced)},
       {"reloads", text(c.reloads)},
       {"failed_reloads", text(c.failed_reloads)}});
}

void Server::OnWatchdogTick() {
  // Every worker loop must have stamped its heartbeat within half an interval; a stuck loop withholds the ping.
  const auto limit = *notifier_->watchdog_interval() / 2;
  const auto now = Steady::now();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (now - workers_[i]->last_heartbeat() > limit) {
      Log(LogLevel::kWarning, "watchdog_withheld", {{"worker", std::to_string(i)}});
      return;
    }
  }
  notifier_->WatchdogPing();
}

void Server::RequestStop() { event_active(control_->stop.get(), EV_READ, 0); }
void Server::RequestReload() { event_active(control_->reload.get(), EV_READ, 0); }

}  // namespace ocsp::responder
