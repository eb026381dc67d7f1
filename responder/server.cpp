#include "responder/server.h"

#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/log.h"
#include "responder/health.h"
#include "responder/http_cache.h"
#include "responder/libevent.h"

namespace ocsp::responder {

void Socket::Close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

namespace {

using Steady = std::chrono::steady_clock;

constexpr std::string_view kOcspResponseType = "application/ocsp-response";
constexpr std::string_view kOcspRequestType = "application/ocsp-request";

// SERVICE MANAGER HOOK: sd_notify goes here. The front end calls it with "READY=1" once the workers run, with
// "RELOADING=1" when a reload starts, and with "READY=1" again when every worker has switched to the new
// snapshot or the reload failed and the old one stays. The systemd integration fills in the body.
void NotifyServiceManager([[maybe_unused]] std::string_view state) {}

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

std::uint16_t BoundPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

bool IsOcspRequestType(const char* header) {
  if (header == nullptr) return false;
  std::string_view value(header);
  value = value.substr(0, value.find(';'));
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return value.size() == kOcspRequestType.size() &&
         strncasecmp(value.data(), kOcspRequestType.data(), value.size()) == 0;
}

// The request-target without scheme and authority (a proxy may send the absolute form), with leading doubled
// slashes folded into one.
std::string_view RequestPath(const char* uri) {
  std::string_view target(uri == nullptr ? "/" : uri);
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

// One request waiting for its signature. Owned by the pool job, then by the worker's completion queue.
struct PendingResponse {
  evhttp_request* request = nullptr;
  metrics::Method method = metrics::Method::kOther;
  bool head = false;
  Steady::time_point started;
  std::shared_ptr<const Snapshot> snapshot;  // the signer in `decision` belongs to it
  std::optional<std::size_t> verifier;       // METRICS HOOK: the registry index the request is attributed to
  DecodedRequest decoded;
  Decision decision;
  std::optional<std::uint64_t> identity;  // set when the answer is cacheable: the ETag
  Result<Bytes> signed_response = Bytes{};
};

class Worker {
 public:
  Worker(ServerDependencies dependencies, const config::Config& config, ConnectionLimits& limits,
         FrontEndCounters& counters)
      : dependencies_(dependencies), config_(config), limits_(limits), counters_(counters) {
    for (auto status : {signer::ResponseStatus::kMalformedRequest, signer::ResponseStatus::kInternalError,
                        signer::ResponseStatus::kTryLater, signer::ResponseStatus::kUnauthorized}) {
      exceptions_[static_cast<std::size_t>(status)] = signer::ExceptionResponse(status);
    }
  }

  Result<void> Init(std::vector<Socket> sockets) {
    sockets_ = std::move(sockets);
    base_.reset(event_base_new());
    if (!base_) return Fail(ErrorCode::kInternal, "event_base_new failed");
    guard_ = std::make_unique<ConnectionGuard>(base_.get(), limits_, counters_.connections,
                                               std::chrono::seconds(config_.header_timeout_seconds));
    http_.reset(evhttp_new(base_.get()));
    wake_.reset(event_new(base_.get(), -1, 0, &Worker::OnWake, this));
    output_.reset(evbuffer_new());
    if (!http_ || !wake_ || !output_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
    evhttp_set_max_body_size(http_.get(), static_cast<ev_ssize_t>(config_.max_request_bytes));
    // The request line counts towards the header limit: a GET request of max_request_bytes in base64.
    evhttp_set_max_headers_size(http_.get(), static_cast<ev_ssize_t>(config_.max_request_bytes * 2 + 4096));
    // Per read and write: the keep-alive idle timeout. A trickling client resets it with every byte, so the
    // guard also bounds a whole request's arrival (header_timeout_seconds).
    evhttp_set_timeout(http_.get(), static_cast<int>(config_.http_timeout_seconds));
    // Every method reaches the handler, which answers 405 with an Allow header (libevent would say 501).
    evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                                EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http_.get(), nullptr);
    evhttp_set_gencb(http_.get(), &Worker::OnRequest, this);
    if (auto attached = guard_->Attach(http_.get()); !attached) return attached;
    for (const Socket& socket : sockets_) {
      if (evhttp_accept_socket_with_handle(http_.get(), socket.get()) == nullptr) {
        return Fail(ErrorCode::kIo, "evhttp cannot accept on the listening socket");
      }
    }
    auto txn = dependencies_.store.BeginRead();
    if (!txn) return std::unexpected(txn.error());
    txn_.emplace(std::move(*txn));
    txn_->Reset();
    SwitchTo(std::move(dependencies_.snapshot));  // from now on only snapshot_ holds it
    return {};
  }

  void Start() {
    thread_ = std::thread([this] { event_base_dispatch(base_.get()); });
  }

  // From any thread: finish what is in flight for `grace`, then leave the loop.
  void Stop(std::chrono::milliseconds grace) {
    timeval delay{0, static_cast<suseconds_t>(grace.count() * 1000)};
    event_base_loopexit(base_.get(), &delay);
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
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

 private:
  static void OnRequest(evhttp_request* request, void* self) { static_cast<Worker*>(self)->Handle(request); }
  static void OnWake(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainInbox(); }

  void SwitchTo(std::shared_ptr<const Snapshot> snapshot) {
    snapshot_ = std::move(snapshot);
    limiter_ = snapshot_->registry ? RateLimiter(*snapshot_->registry, config_.workers, Steady::now()) : RateLimiter();
    generation_.store(snapshot_->generation, std::memory_order_release);
  }

  void Handle(evhttp_request* request) {
    const auto started = Steady::now();
    guard_->RequestArrived(request);
    const evhttp_cmd_type command = evhttp_request_get_command(request);
    const metrics::Method method = command == EVHTTP_REQ_POST                              ? metrics::Method::kPost
                                   : command == EVHTTP_REQ_GET || command == EVHTTP_REQ_HEAD ? metrics::Method::kGet
                                                                                             : metrics::Method::kOther;
    const std::string_view path = RequestPath(evhttp_request_get_uri(request));
    if (IsPath(path, "/healthz")) {
      SendJson(request, HTTP_OK, "OK", kAliveJson);
      return;
    }
    if (IsPath(path, "/readyz")) {
      SendReadiness(request);
      return;
    }
    const Snapshot& snapshot = *snapshot_;
    const std::optional<std::string_view> ocsp_path = UnderPrefix(path, snapshot.config.path_prefix);
    if (!ocsp_path) {
      SendRefusal(request, HTTP_NOTFOUND, "Not Found", method, started);
      return;
    }
    if (command != EVHTTP_REQ_GET && command != EVHTTP_REQ_HEAD && command != EVHTTP_REQ_POST) {
      evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "GET, HEAD, POST");
      SendRefusal(request, 405, "Method Not Allowed", method, started);
      return;
    }

    // Access: who is asking (verifier registry), and within its rate.
    std::optional<std::size_t> verifier;  // METRICS HOOK: attribute the request to this registry index
    if (snapshot.registry) {
      const auto address = AddressOf(evhttp_connection_get_addr(evhttp_request_get_connection(request)));
      verifier = address ? snapshot.registry->Match(*address) : std::nullopt;
      if (!verifier) {
        Count(counters_.forbidden_unregistered);
        SendRefusal(request, 403, "Forbidden", method, started);
        return;
      }
      if (dependencies_.clock.Now() < snapshot.registry->at(*verifier).access_from) {
        Count(counters_.forbidden_not_yet_open);
        SendRefusal(request, 403, "Forbidden", method, started);
        return;
      }
      if (!limiter_.Allow(*verifier, started)) {
        Count(counters_.rate_limited);
        if (snapshot.config.over_rate_limit_http_429) {
          evhttp_add_header(evhttp_request_get_output_headers(request), "Retry-After", "1");
          SendRefusal(request, 429, "Too Many Requests", method, started);
        } else {
          SendException(request, signer::ResponseStatus::kTryLater, method, started);
        }
        return;
      }
    }

    Bytes get_body;
    ByteView der;
    if (command == EVHTTP_REQ_POST) {
      // One rule for POST: the body is an OCSP request only when labelled as one (RFC 6960 A.1); anything
      // else is HTTP 415, whatever the body holds.
      if (!IsOcspRequestType(evhttp_find_header(evhttp_request_get_input_headers(request), "Content-Type"))) {
        SendRefusal(request, 415, "Unsupported Media Type", method, started);
        return;
      }
      evbuffer* input = evhttp_request_get_input_buffer(request);
      const std::size_t length = evbuffer_get_length(input);
      const unsigned char* data = evbuffer_pullup(input, -1);
      der = ByteView(data, length);
    } else {
      auto decoded = DecodeGetPath(*ocsp_path);
      if (!decoded || decoded->size() > config_.max_request_bytes) {
        Log(LogLevel::kDebug, "malformed_request",
            {{"method", "GET"}, {"why", decoded ? "too large" : decoded.error().message}});
        SendException(request, signer::ResponseStatus::kMalformedRequest, method, started);
        return;
      }
      get_body = std::move(*decoded);
      der = get_body;
    }

    auto pending = std::make_shared<PendingResponse>();
    pending->request = request;
    pending->method = method;
    pending->head = command == EVHTTP_REQ_HEAD;
    pending->started = started;
    pending->verifier = verifier;
    auto decoded = DecodeRequest(der, RequestLimits{config_.max_certids_per_request});
    if (!decoded) {
      Log(LogLevel::kDebug, "malformed_request", {{"why", decoded.error().message}});
      SendException(request, signer::ResponseStatus::kMalformedRequest, method, started);
      return;
    }
    pending->decoded = std::move(*decoded);

    // A verifier registered for one environment asks only that environment's issuers.
    if (verifier && !SameEnvironment(snapshot, snapshot.registry->at(*verifier).environment, pending->decoded)) {
      Count(counters_.wrong_environment);
      SendException(request, signer::ResponseStatus::kUnauthorized, method, started);
      return;
    }

    if (auto renewed = txn_->Renew(); !renewed) {
      Log(LogLevel::kError, "store_read_failed", {{"error", renewed.error().Describe()}});
      SendException(request, signer::ResponseStatus::kInternalError, method, started);
      return;
    }
    pending->decision = snapshot.authority->Decide(txn_->get(), pending->decoded);
    txn_->Reset();  // a snapshot held longer would pin old pages while imports run

    if (const auto& exception = pending->decision.exception) {
      if (*exception != signer::ResponseStatus::kUnauthorized) {
        Log(LogLevel::kDebug, "exception_answer", {{"why", pending->decision.reason}});
      }
      SendException(request, *exception, method, started);
      return;
    }

    // A response that echoes a nonce is unique to its request: no validator, nothing a cache may reuse.
    if (!pending->decoded.nonce && pending->decision.next_update) {
      pending->identity = ResponseIdentity(pending->decoded, pending->decision);
      const char* if_none_match = evhttp_find_header(evhttp_request_get_input_headers(request), "If-None-Match");
      HeaderBuffer etag;
      if (if_none_match != nullptr && IfNoneMatchHits(if_none_match, FormatEtag(*pending->identity, etag))) {
        Count(counters_.not_modified);
        AddCacheHeaders(request, *pending);
        evhttp_send_reply(request, 304, "Not Modified", nullptr);
        Observe(method, pending->decision.outcome, started);
        return;
      }
    }

    pending->snapshot = snapshot_;
    Worker* worker = this;
    const bool accepted = dependencies_.signing_pool.TrySubmit([worker, pending] {
      const auto sign_started = Steady::now();
      pending->signed_response =
          pending->decision.signer->Sign(pending->decision.answers, pending->decoded.nonce,
                                         worker->dependencies_.clock.Now());
      worker->dependencies_.metrics.ObserveSignature(
          std::chrono::duration<double>(Steady::now() - sign_started).count());
      worker->PostCompletion(pending);
    });
    if (!accepted) SendException(request, signer::ResponseStatus::kTryLater, method, started);
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
      if (!pending->signed_response) {
        Log(LogLevel::kError, "signing_failed", {{"error", pending->signed_response.error().Describe()}});
        SendException(pending->request, signer::ResponseStatus::kInternalError, pending->method, pending->started);
        continue;
      }
      SendOcsp(pending->request, *pending->signed_response, pending.get(), pending->head);
      Observe(pending->method, pending->decision.outcome, pending->started);
    }
  }

  // RFC 9919 caching for a cacheable answer (`pending.identity` set); `max-age=0, no-cache` otherwise.
  void AddCacheHeaders(evhttp_request* request, const PendingResponse& pending) {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    if (!pending.identity || !pending.decision.next_update) {
      evhttp_add_header(headers, "Cache-Control", kNoCache.data());
      return;
    }
    HeaderBuffer buffer;
    const UnixSeconds now = dependencies_.clock.Now();
    const UnixSeconds next_update = *pending.decision.next_update;
    evhttp_add_header(headers, "Cache-Control",
                      FormatCacheControl(MaxAge(now, next_update, snapshot_->config.max_cache_age_seconds), buffer)
                          .data());
    evhttp_add_header(headers, "Last-Modified", FormatHttpDate(LatestThisUpdate(pending.decision), buffer).data());
    evhttp_add_header(headers, "Expires", FormatHttpDate(next_update, buffer).data());
    evhttp_add_header(headers, "ETag", FormatEtag(*pending.identity, buffer).data());
  }

  void SendOcsp(evhttp_request* request, ByteView body, const PendingResponse* pending, bool head) {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Type", kOcspResponseType.data());
    if (pending != nullptr) {
      AddCacheHeaders(request, *pending);
    } else {
      evhttp_add_header(headers, "Cache-Control", kNoCache.data());
    }
    if (head) {
      // evhttp sends no body and no Content-Length for HEAD: say what GET would send.
      evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
      evhttp_send_reply(request, HTTP_OK, "OK", nullptr);
      return;
    }
    evbuffer_add(output_.get(), body.data(), body.size());
    evhttp_send_reply(request, HTTP_OK, "OK", output_.get());
  }

  void SendException(evhttp_request* request, signer::ResponseStatus status, metrics::Method method,
                     Steady::time_point started) {
    // Exceptions are sent unsigned with HTTP 200 (RFC 6960 2.3); caches must not keep them.
    SendOcsp(request, exceptions_[static_cast<std::size_t>(status)], nullptr,
             evhttp_request_get_command(request) == EVHTTP_REQ_HEAD);
    Observe(method, OutcomeOf(status), started);
  }

  void SendRefusal(evhttp_request* request, int code, const char* reason, metrics::Method method,
                   Steady::time_point started) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Cache-Control", kNoCache.data());
    evhttp_send_reply(request, code, reason, nullptr);
    Observe(method, metrics::Outcome::kRefused, started);
  }

  void SendJson(evhttp_request* request, int code, const char* reason, std::string_view json) {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evbuffer_add(output_.get(), json.data(), json.size());
    evhttp_send_reply(request, code, reason, output_.get());
  }

  void SendReadiness(evhttp_request* request) {
    const auto renewed = txn_->Renew();
    const Readiness readiness = CheckReadiness(*snapshot_, dependencies_.store, renewed ? txn_->get() : nullptr,
                                               dependencies_.clock.Now());
    if (renewed) txn_->Reset();
    SendJson(request, readiness.ready ? HTTP_OK : HTTP_SERVUNAVAIL, readiness.ready ? "OK" : "Service Unavailable",
             readiness.json);
  }

  void Observe(metrics::Method method, metrics::Outcome outcome, Steady::time_point started) {
    dependencies_.metrics.ObserveRequest(method, outcome,
                                         std::chrono::duration<double>(Steady::now() - started).count());
  }

  ServerDependencies dependencies_;
  const config::Config& config_;  // as at start
  ConnectionLimits& limits_;
  FrontEndCounters& counters_;
  std::array<Bytes, 7> exceptions_;  // indexed by ResponseStatus
  std::vector<Socket> sockets_;
  EventBasePtr base_;  // declared before guard_, http_ and wake_ so it is freed after them
  std::unique_ptr<ConnectionGuard> guard_;  // freed after http_: evhttp drops its connections first
  EvhttpPtr http_;
  EventPtr wake_;
  EvbufferPtr output_;
  std::optional<store::ReadTxn> txn_;
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
struct Server::Control {
  EventBasePtr base;
  EvhttpPtr metrics_http;
  Socket metrics_socket;
  EventPtr sigint;
  EventPtr sigterm;
  EventPtr sighup;
  EventPtr stop;
  EventPtr reload;    // RequestReload from any thread
  EventPtr switched;  // a worker switched to a new snapshot
  metrics::ResponderMetrics* metrics = nullptr;
  EvbufferPtr output;
  std::shared_ptr<const Snapshot> current;  // the newest snapshot handed to the workers
  bool reload_in_progress = false;
  Steady::time_point reload_started;
};

Server::Server(ServerDependencies dependencies, const config::Config& config)
    : dependencies_(dependencies),
      config_(config),
      counters_(std::make_unique<FrontEndCounters>()),
      limits_(std::make_unique<ConnectionLimits>(config.max_connections, config.max_connections_per_address)) {}

Server::~Server() {
  for (auto& worker : workers_) {
    worker->Stop(std::chrono::milliseconds(0));
    worker->Join();
  }
}

Result<std::unique_ptr<Server>> Server::Start(const config::Config& config, ServerDependencies dependencies) {
  // libevent must know about threads before any base exists: signing threads wake the workers' loops.
  static const int threads_ready = evthread_use_pthreads();
  if (threads_ready != 0) return Fail(ErrorCode::kInternal, "libevent has no pthreads support");
  std::signal(SIGPIPE, SIG_IGN);
  if (!dependencies.snapshot || !dependencies.snapshot->authority) {
    return Fail(ErrorCode::kInternal, "the server needs a snapshot built with the store");
  }

  std::unique_ptr<Server> server(new Server(dependencies, config));
  // Every worker listens on every address with its own SO_REUSEPORT socket; with port 0, the other workers
  // join the port the first one got.
  std::vector<std::vector<Socket>> sockets(config.workers);
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
  for (unsigned i = 0; i < config.workers; ++i) {
    auto worker = std::make_unique<Worker>(dependencies, server->config_, *server->limits_, *server->counters_);
    if (auto init = worker->Init(std::move(sockets[i])); !init) return std::unexpected(init.error());
    server->workers_.push_back(std::move(worker));
  }

  auto control = std::make_unique<Control>();
  control->base.reset(event_base_new());
  control->output.reset(evbuffer_new());
  control->metrics = &dependencies.metrics;
  control->current = dependencies.snapshot;
  if (!control->base || !control->output) return Fail(ErrorCode::kInternal, "event_base_new failed");
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
  event_add(control->sighup.get(), nullptr);

  if (config.metrics_listen) {
    auto socket = Listen(*config.metrics_listen, /*reuse_port=*/false);
    if (!socket) return std::unexpected(socket.error());
    server->metrics_port_ = BoundPort(socket->get());
    control->metrics_socket = std::move(*socket);
    control->metrics_http.reset(evhttp_new(control->base.get()));
    evhttp_set_allowed_methods(control->metrics_http.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(control->metrics_http.get(), 30);
    evhttp_set_gencb(
        control->metrics_http.get(),
        [](evhttp_request* request, void* arg) {
          auto* self = static_cast<Control*>(arg);
          const std::string_view path = RequestPath(evhttp_request_get_uri(request));
          if (path != "/metrics" && !path.starts_with("/metrics?")) {
            evhttp_send_error(request, HTTP_NOTFOUND, nullptr);
            return;
          }
          const std::string body = self->metrics->Serialize();
          evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type",
                            "text/plain; version=0.0.4; charset=utf-8");
          evbuffer_add(self->output.get(), body.data(), body.size());
          evhttp_send_reply(request, HTTP_OK, "OK", self->output.get());
        },
        control.get());
    if (evhttp_accept_socket_with_handle(control->metrics_http.get(), control->metrics_socket.get()) == nullptr) {
      return Fail(ErrorCode::kIo, "evhttp cannot accept on the metrics socket");
    }
  }
  server->control_ = std::move(control);
  server->dependencies_.snapshot.reset();  // the workers and the control loop hold it now

  for (auto& worker : server->workers_) worker->Start();
  NotifyServiceManager("READY=1");
  return server;
}

// On the control loop: read the configuration again, build the next snapshot, hand it to every worker.
// The file I/O and key loading happen here, never on a worker's loop.
void Server::Reload() {
  Control& control = *control_;
  NotifyServiceManager("RELOADING=1");
  control.reload_started = Steady::now();
  const std::filesystem::path source = control.current->config.source;
  auto fail = [&](const std::string& why) {
    Count(counters_->failed_reloads);
    Log(LogLevel::kError, "reload_failed", {{"error", why}, {"kept_generation", std::to_string(control.current->generation)}});
    if (!control.reload_in_progress) NotifyServiceManager("READY=1");
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
  NotifyServiceManager("READY=1");
}

void Server::Run() {
  event_base_dispatch(control_->base.get());
  Log(LogLevel::kInfo, "stopping", {{"pending", "signatures finish, then replies are sent"}});
  // Pending signatures finish and post their completions; the workers then have a moment to send them.
  dependencies_.signing_pool.Stop();
  for (auto& worker : workers_) worker->Stop(std::chrono::milliseconds(200));
  for (auto& worker : workers_) worker->Join();
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
       {"reloads", text(c.reloads)},
       {"failed_reloads", text(c.failed_reloads)}});
}

void Server::RequestStop() { event_active(control_->stop.get(), EV_READ, 0); }
void Server::RequestReload() { event_active(control_->reload.get(), EV_READ, 0); }

}  // namespace ocsp::responder
