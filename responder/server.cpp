#include "responder/server.h"

#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
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
#include "responder/presigner.h"

#include <event2/listener.h>

#include <event2/http_struct.h>  // after event2/http.h, whose enums it uses: the request's HTTP version

namespace ocsp::responder {

void Socket::Close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

namespace {

using Steady = std::chrono::steady_clock;

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
  std::optional<std::size_t> verifier;       // the registry index the request is attributed to, if any
  metrics::VerifierIndex metrics_verifier = metrics::kVerifierNone;  // its metrics slot
  double sign_seconds = 0;  // measured on the signing thread, recorded by the worker
  DecodedRequest decoded;
  Decision decision;
  std::optional<std::uint64_t> identity;  // set when the answer is cacheable: the ETag
  Result<Bytes> signed_response = Bytes{};
};

class Worker;
thread_local Worker* current_worker = nullptr;  // the worker whose loop runs on this thread

class Worker {
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
  Result<void> Init(std::vector<Socket> sockets, std::optional<std::chrono::microseconds> heartbeat) {
    sockets_ = std::move(sockets);
    base_.reset(event_base_new());
    if (!base_) return Fail(ErrorCode::kInternal, "event_base_new failed");
    guard_ = std::make_unique<ConnectionGuard>(base_.get(), limits_, counters_.connections,
                                               std::chrono::seconds(config_.header_timeout_seconds));
    http_.reset(evhttp_new(base_.get()));
    wake_.reset(event_new(base_.get(), -1, 0, &Worker::OnWake, this));
    drain_.reset(event_new(base_.get(), -1, EV_PERSIST, &Worker::OnDrainTick, this));
    output_.reset(evbuffer_new());
    if (!http_ || !wake_ || !drain_ || !output_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
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
    // Out of descriptors, accept() fails at once and the socket stays readable: libevent would retry in a
    // tight loop, logging each failure (850 MB of log in 30 s under bench/abuse.sh). Pause accepting instead.
    resume_accept_.reset(evtimer_new(base_.get(), &Worker::OnResumeAccept, this));
    if (!resume_accept_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
    for (Socket& socket : sockets_) {
      evhttp_bound_socket* bound = evhttp_accept_socket_with_handle(http_.get(), socket.get());
      if (bound == nullptr) return Fail(ErrorCode::kIo, "evhttp cannot accept on the listening socket");
      socket.Release();  // evhttp_free (or evhttp_del_accept_socket) closes it now
      bound_.push_back(bound);
      evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), &Worker::OnAcceptError);
    }
    auto txn = dependencies_.store.BeginRead();
    if (!txn) return std::unexpected(txn.error());
    txn_.emplace(std::move(*txn));
    txn_->Reset();
    SwitchTo(std::move(dependencies_.snapshot));  // from now on only snapshot_ holds it
    return {};
  }

  void Start() {
    thread_ = std::thread([this] {
      current_worker = this;  // for OnAcceptError, whose argument is libevent's, not ours
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

 private:
  static void OnRequest(evhttp_request* request, void* self) { static_cast<Worker*>(self)->Handle(request); }
  static void OnWake(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainInbox(); }
  static void OnHeartbeat(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->Beat(); }
  static void OnDrainTick(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainTick(); }

  void Beat() { heartbeat_ticks_.store(Steady::now().time_since_epoch().count(), std::memory_order_relaxed); }

  void DrainTick() {
    if (!bound_.empty()) {
      // No new connections from here; open ones still finish their requests. Closing our sockets (duplicates
      // under socket activation) leaves the next instance's queue to systemd.
      event_del(resume_accept_.get());
      for (evhttp_bound_socket* bound : bound_) evhttp_del_accept_socket(http_.get(), bound);
      bound_.clear();
      sockets_.clear();
    }
    draining_ = true;
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

  // On this worker's loop thread: accept() failed. Out of descriptors (or kernel memory), stop accepting for
  // a moment, so that connections wait in the backlog while idle ones time out; log at most every 10 s.
  static void OnAcceptError(evconnlistener* listener, void*) {
    const int error = EVUTIL_SOCKET_ERROR();
    Worker* self = current_worker;
    if (self == nullptr || (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM)) {
      Log(LogLevel::kWarning, "accept_failed", {{"error", std::strerror(error)}});
      return;
    }
    evconnlistener_disable(listener);
    const timeval pause{0, 100'000};
    evtimer_add(self->resume_accept_.get(), &pause);
    const auto now = Steady::now();
    ++self->accept_pauses_;
    if (now - self->last_pause_log_ >= std::chrono::seconds(10)) {
      Log(LogLevel::kWarning, "accept_paused",
          {{"error", std::strerror(error)}, {"pauses", std::to_string(self->accept_pauses_)}, {"for_ms", "100"}});
      self->last_pause_log_ = now;
      self->accept_pauses_ = 0;
    }
  }
  static void OnResumeAccept(evutil_socket_t, short, void* self) {
    // Every listener of this worker: which one failed does not matter, the descriptors are the worker's.
    for (evhttp_bound_socket* bound : static_cast<Worker*>(self)->bound_) {
      evconnlistener_enable(evhttp_bound_socket_get_listener(bound));
    }
  }

  void Handle(evhttp_request* request) {
    const auto started = Steady::now();
    guard_->RequestArrived(request);
    const evhttp_cmd_type command = evhttp_request_get_command(request);
    const metrics::Method method = command == EVHTTP_REQ_POST                              ? metrics::Method::kPost
                                   : command == EVHTTP_REQ_GET || command == EVHTTP_REQ_HEAD ? metrics::Method::kGet
                                                                                             : metrics::Method::kOther;
    // While draining, each answer closes its keep-alive connection, so clients reconnect to the next instance.
    if (draining_) evhttp_add_header(evhttp_request_get_output_headers(request), "Connection", "close");
    // libevent accepts any "HTTP/<int>.<int>" with a major version up to 1 (HTTP/0.1, HTTP/-1.5, HTTP/1.2) and
    // echoes it in the status line, which is then not HTTP/1.x (found by http_fuzzer). RFC 9112 2.3: a
    // higher minor version is answered as 1.1; another major version gets 505, over HTTP/1.1.
    if (request->major == 1 && request->minor > 1) request->minor = 1;
    if (request->major != 1 || request->minor < 0) {
      request->major = 1;
      request->minor = 1;
      evhttp_add_header(evhttp_request_get_output_headers(request), "Connection", "close");
      SendRefusal(request, 505, "HTTP Version Not Supported", method, started);
      return;
    }
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
    std::optional<std::size_t> verifier;  // the registry index the request is attributed to
    metrics::VerifierIndex slot = metrics::kVerifierNone;  // and its metrics label
    if (snapshot.registry) {
      const auto address = AddressOf(evhttp_connection_get_addr(evhttp_request_get_connection(request)));
      verifier = address ? snapshot.registry->Match(*address) : std::nullopt;
      slot = verifier && *verifier < snapshot.verifier_slots.size() ? snapshot.verifier_slots[*verifier]
                                                                   : metrics::kVerifierUnregistered;
      if (!verifier) {
        Count(counters_.forbidden_unregistered);
        SendRefusal(request, 403, "Forbidden", method, started, slot);
        return;
      }
      if (dependencies_.clock.Now() < snapshot.registry->at(*verifier).access_from) {
        Count(counters_.forbidden_not_yet_open);
        SendRefusal(request, 403, "Forbidden", method, started, slot);
        return;
      }
      if (!limiter_.Allow(*verifier, started)) {
        Count(counters_.rate_limited);
        if (snapshot.config.over_rate_limit_http_429) {
          evhttp_add_header(evhttp_request_get_output_headers(request), "Retry-After", "1");
          SendRefusal(request, 429, "Too Many Requests", method, started, slot);
        } else {
          SendException(request, signer::ResponseStatus::kTryLater, method, started, slot);
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
    pending->metrics_verifier = slot;
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

    if (const auto& exception = pending->decision.exception) {
      txn_->Reset();
      if (*exception != signer::ResponseStatus::kUnauthorized) {
        Log(LogLevel::kDebug, "exception_answer", {{"why", pending->decision.reason}});
      }
      SendException(request, *exception, method, started);
      return;
    }

    // The nonce decides between the stored response and a fresh signature.
    bool echo_nonce = false;
    if (pending->decoded.nonce && snapshot.config.nonce == config::NonceMode::kHonour) {
      if (TakeNonceToken()) {
        echo_nonce = true;
      } else if (snapshot.config.nonce_over_budget == config::NonceOverBudget::kTryLater) {
        txn_->Reset();
        SendException(request, signer::ResponseStatus::kTryLater, method, started);
        return;
      }
    }
    if (!echo_nonce) pending->decoded.nonce.reset();  // ignored: the response can then be kept and reused

    // A response that echoes a nonce is unique to its request: no validator, nothing a cache may reuse.
    if (!pending->decoded.nonce && pending->decision.next_update) {
      pending->identity = ResponseIdentity(pending->decoded, pending->decision);
      const char* if_none_match = evhttp_find_header(evhttp_request_get_input_headers(request), "If-None-Match");
      HeaderBuffer etag;
      if (if_none_match != nullptr && IfNoneMatchHits(if_none_match, FormatEtag(*pending->identity, etag))) {
        txn_->Reset();
        Count(counters_.not_modified);
        AddCacheHeaders(request, *pending);
        evhttp_send_reply(request, 304, "Not Modified", nullptr);
        Observe(request, method, pending->decision.outcome, started, 0, pending->metrics_verifier);
        return;
      }
    }
    if (!echo_nonce && ServeStored(request, *pending)) {
      txn_->Reset();
      return;
    }
    txn_->Reset();  // a snapshot held longer would pin old pages while imports run

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
      ++in_flight_;
    } else {
      SendException(request, signer::ResponseStatus::kTryLater, method, started);
    }
  }

  // Serves the stored response for a one-CertID request when it states exactly what the store holds now
  // (the read transaction is still open). Copies the stored bytes; allocates nothing else.
  bool ServeStored(evhttp_request* request, const PendingResponse& pending) {
    const Decision& decision = pending.decision;
    if (pending.decoded.certs.size() != 1 || decision.answers.size() != 1 || decision.issuer_no == 0) return false;
    const RequestedCert& cert = pending.decoded.certs.front();
    if (!cert.algorithm) return false;
    auto stored = dependencies_.store.GetResponse(txn_->get(), decision.issuer_no, *cert.algorithm, cert.serial);
    if (!stored || !*stored) return false;
    const UnixSeconds now = dependencies_.clock.Now();
    if (!StoredResponseServes((*stored)->info, decision.answers.front(), decision.signer_id, now)) return false;
    SendOcsp(request, (*stored)->der, &pending, pending.head);
    metrics_.ObserveAnswer(metrics::AnswerSource::kStored,
                           static_cast<double>(std::max<UnixSeconds>(0, now - (*stored)->info.produced_at)));
    Observe(request, pending.method, decision.outcome, pending.started, (*stored)->der.size(),
            pending.metrics_verifier);
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
      if (!pending->signed_response) {
        Log(LogLevel::kError, "signing_failed", {{"error", pending->signed_response.error().Describe()}});
        SendException(pending->request, signer::ResponseStatus::kInternalError, pending->method, pending->started);
        continue;
      }
      metrics_.ObserveSignature(pending->sign_seconds);
      metrics_.ObserveAnswer(metrics::AnswerSource::kSigned, 0);
      SendOcsp(pending->request, *pending->signed_response, pending.get(), pending->head);
      Observe(pending->request, pending->method, pending->decision.outcome, pending->started,
              pending->signed_response->size(), pending->metrics_verifier);
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
                     Steady::time_point started, metrics::VerifierIndex verifier = metrics::kVerifierNone) {
    // Exceptions are sent unsigned with HTTP 200 (RFC 6960 2.3); caches must not keep them.
    const Bytes& body = exceptions_[static_cast<std::size_t>(status)];
    SendOcsp(request, body, nullptr, evhttp_request_get_command(request) == EVHTTP_REQ_HEAD);
    Observe(request, method, OutcomeOf(status), started, body.size(), verifier);
  }

  void SendRefusal(evhttp_request* request, int code, const char* reason, metrics::Method method,
                   Steady::time_point started, metrics::VerifierIndex verifier = metrics::kVerifierNone) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Cache-Control", kNoCache.data());
    evhttp_send_reply(request, code, reason, nullptr);
    Observe(request, method, metrics::Outcome::kRefused, started, 0, verifier);
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

  // The access log's name for a metrics slot: the registry's name for a named one.
  std::string_view VerifierName(metrics::VerifierIndex slot) const {
    if (slot == metrics::kVerifierNone) return "none";
    if (slot == metrics::kVerifierUnregistered || !snapshot_->registry) return "unregistered";
    for (std::size_t i = 0; i < snapshot_->verifier_slots.size(); ++i) {
      if (snapshot_->verifier_slots[i] == slot) return snapshot_->registry->at(i).name;
    }
    return "unregistered";
  }

  // After the reply is handed to libevent (the request object stays valid until this callback returns).
  void Observe(evhttp_request* request, metrics::Method method, metrics::Outcome outcome, Steady::time_point started,
               std::size_t bytes, metrics::VerifierIndex verifier = metrics::kVerifierNone) {
    if (!metrics_.enabled() && !access_log_) return;  // metrics.enabled = false: not even a clock read
    const double seconds = std::chrono::duration<double>(Steady::now() - started).count();
    metrics_.ObserveRequest(method, outcome, verifier, seconds, bytes);
    if (access_log_) {
      char* address = nullptr;
      ev_uint16_t port = 0;
      if (evhttp_connection* connection = evhttp_request_get_connection(request)) {
        evhttp_connection_get_peer(connection, &address, &port);
      }
      access_log_->Append({dependencies_.clock.Now(), VerifierName(verifier),
                           address != nullptr ? std::string_view(address) : std::string_view(), method, outcome,
                           seconds, bytes});
    }
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
  std::vector<evhttp_bound_socket*> bound_;  // owned by http_; empty once draining
  EventPtr wake_;
  EventPtr heartbeat_;
  EventPtr drain_;
  Steady::time_point drain_deadline_;
  bool draining_ = false;                         // loop thread only
  std::optional<Steady::time_point> quiet_since_;  // loop thread only
  std::size_t in_flight_ = 0;  // handed to the signing pool, reply not sent yet; loop thread only
  std::atomic<Steady::rep> heartbeat_ticks_{0};
  EventPtr resume_accept_;
  Steady::time_point last_pause_log_{};
  std::uint64_t accept_pauses_ = 0;
  EvbufferPtr output_;
  EventPtr flush_;
  metrics::WorkerMetrics& metrics_;
  std::optional<AccessLogWriter> access_log_;
  std::optional<store::ReadTxn> txn_;
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
struct Server::Control {
  EventBasePtr base;
  EvhttpPtr metrics_http;
  Socket metrics_socket;
  EventPtr sigint;
  EventPtr sigterm;
  EventPtr sighup;
  EventPtr watchdog;
  EventPtr sigusr1;
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
  for (unsigned i = 0; i < config.workers; ++i) {
    auto worker = std::make_unique<Worker>(dependencies, server->config_, *server->limits_, *server->counters_);
    if (auto init = worker->Init(std::move(sockets[i]), heartbeat); !init) return std::unexpected(init.error());
    server->workers_.push_back(std::move(worker));
  }

  auto control = std::make_unique<Control>();
  control->base.reset(event_base_new());
  control->output.reset(evbuffer_new());
  control->metrics = &dependencies.metrics;
  control->current = dependencies.snapshot;
  server->published_ = dependencies.snapshot;
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
    control->metrics_socket.Release();  // evhttp_free closes it now
  }
  server->control_ = std::move(control);
  server->dependencies_.snapshot.reset();  // the workers and the control loop hold it now

  for (auto& worker : server->workers_) worker->Start();
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
