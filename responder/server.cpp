#include "responder/server.h"

#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "common/log.h"
#include "responder/libevent.h"
#include "responder/presigner.h"

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

// The request-target without scheme and authority (a proxy may send the absolute form).
std::string_view RequestPath(const char* uri) {
  std::string_view target(uri == nullptr ? "/" : uri);
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() && strncasecmp(target.data(), scheme.data(), scheme.size()) == 0) {
      const auto slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  return target;
}

metrics::Outcome OutcomeOf(signer::ResponseStatus status) {
  switch (status) {
    case signer::ResponseStatus::kMalformedRequest: return metrics::Outcome::kMalformed;
    case signer::ResponseStatus::kTryLater: return metrics::Outcome::kTryLater;
    case signer::ResponseStatus::kUnauthorized: return metrics::Outcome::kUnauthorized;
    default: return metrics::Outcome::kInternalError;
  }
}

}  // namespace

// One request waiting for its signature. Owned by the pool job, then by the worker's completion queue.
struct PendingResponse {
  evhttp_request* request = nullptr;
  metrics::Method method = metrics::Method::kOther;
  metrics::VerifierIndex verifier = metrics::kVerifierNone;
  Steady::time_point started;
  double sign_seconds = 0;  // measured on the signing thread, recorded by the worker
  DecodedRequest decoded;
  Decision decision;
  Result<Bytes> signed_response = Bytes{};
};

class Worker {
 public:
  Worker(ServerDependencies dependencies, const config::Config& config)
      : dependencies_(dependencies), config_(config), metrics_(dependencies.metrics.AddWorker()) {
    if (dependencies.access_log != nullptr) access_log_.emplace(*dependencies.access_log);
    for (auto status : {signer::ResponseStatus::kMalformedRequest, signer::ResponseStatus::kInternalError,
                        signer::ResponseStatus::kTryLater, signer::ResponseStatus::kUnauthorized}) {
      exceptions_[static_cast<std::size_t>(status)] = signer::ExceptionResponse(status);
    }
  }

  // `heartbeat`: how often the loop stamps its heartbeat (only with a watchdog).
  Result<void> Init(Socket socket, std::optional<std::chrono::microseconds> heartbeat) {
    socket_ = std::move(socket);
    base_.reset(event_base_new());
    if (!base_) return Fail(ErrorCode::kInternal, "event_base_new failed");
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
    evhttp_set_timeout(http_.get(), static_cast<int>(config_.http_timeout_seconds));
    // Every method reaches the handler, which answers 405 with an Allow header (libevent would say 501).
    evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                                EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http_.get(), nullptr);
    evhttp_set_gencb(http_.get(), &Worker::OnRequest, this);
    bound_ = evhttp_accept_socket_with_handle(http_.get(), socket_.get());
    if (bound_ == nullptr) return Fail(ErrorCode::kIo, "evhttp cannot accept on the listening socket");
    auto txn = dependencies_.store.BeginRead();
    if (!txn) return std::unexpected(txn.error());
    txn_.emplace(std::move(*txn));
    txn_->Reset();
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
      std::lock_guard lock(completions_mutex_);
      completions_.push_back(std::move(pending));
    }
    event_active(wake_.get(), EV_READ, 0);
  }

 private:
  static void OnRequest(evhttp_request* request, void* self) { static_cast<Worker*>(self)->Handle(request); }
  static void OnWake(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainCompletions(); }
  static void OnHeartbeat(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->Beat(); }
  static void OnDrainTick(evutil_socket_t, short, void* self) { static_cast<Worker*>(self)->DrainTick(); }

  void Beat() { heartbeat_ticks_.store(Steady::now().time_since_epoch().count(), std::memory_order_relaxed); }

  void DrainTick() {
    if (bound_ != nullptr) {
      // No new connections from here; open ones still finish their requests. Closing our socket (a duplicate
      // under socket activation) leaves the next instance's queue to systemd.
      evhttp_del_accept_socket(http_.get(), std::exchange(bound_, nullptr));
      socket_ = Socket();
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

  void Handle(evhttp_request* request) {
    const auto started = Steady::now();
    const evhttp_cmd_type command = evhttp_request_get_command(request);
    const metrics::Method method = command == EVHTTP_REQ_POST  ? metrics::Method::kPost
                                   : command == EVHTTP_REQ_GET ? metrics::Method::kGet
                                                               : metrics::Method::kOther;
    // While draining, each answer closes its keep-alive connection, so clients reconnect to the next instance.
    if (draining_) evhttp_add_header(evhttp_request_get_output_headers(request), "Connection", "close");
    const std::string_view path = RequestPath(evhttp_request_get_uri(request));
    if (path == "/healthz" || path.starts_with("/healthz?")) {
      SendText(request, HTTP_OK, "ok\n");
      return;
    }

    Bytes get_body;
    ByteView der;
    if (command == EVHTTP_REQ_GET) {
      auto decoded = DecodeGetPath(path);
      if (!decoded || decoded->size() > config_.max_request_bytes) {
        Log(LogLevel::kDebug, "malformed_request",
            {{"method", "GET"}, {"why", decoded ? "too large" : decoded.error().message}});
        SendException(request, signer::ResponseStatus::kMalformedRequest, method, started);
        return;
      }
      get_body = std::move(*decoded);
      der = get_body;
    } else if (command == EVHTTP_REQ_POST) {
      // One rule for POST: the body is an OCSP request only when labelled as one.
      if (!IsOcspRequestType(evhttp_find_header(evhttp_request_get_input_headers(request), "Content-Type"))) {
        SendRefusal(request, 415, "Unsupported Media Type", method, started);
        return;
      }
      evbuffer* input = evhttp_request_get_input_buffer(request);
      const std::size_t length = evbuffer_get_length(input);
      const unsigned char* data = evbuffer_pullup(input, -1);
      der = ByteView(data, length);
    } else {
      evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "GET, POST");
      SendRefusal(request, 405, "Method Not Allowed", method, started);
      return;
    }

    auto pending = std::make_shared<PendingResponse>();
    pending->request = request;
    pending->method = method;
    pending->started = started;
    auto decoded = DecodeRequest(der, RequestLimits{config_.max_certids_per_request});
    if (!decoded) {
      Log(LogLevel::kDebug, "malformed_request", {{"why", decoded.error().message}});
      SendException(request, signer::ResponseStatus::kMalformedRequest, method, started);
      return;
    }
    pending->decoded = std::move(*decoded);

    if (auto renewed = txn_->Renew(); !renewed) {
      Log(LogLevel::kError, "store_read_failed", {{"error", renewed.error().Describe()}});
      SendException(request, signer::ResponseStatus::kInternalError, method, started);
      return;
    }
    pending->decision = dependencies_.authority.Decide(txn_->get(), pending->decoded);

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
    if (pending->decoded.nonce && config_.nonce == config::NonceMode::kHonour) {
      if (TakeNonceToken()) {
        echo_nonce = true;
      } else if (config_.nonce_over_budget == config::NonceOverBudget::kTryLater) {
        txn_->Reset();
        SendException(request, signer::ResponseStatus::kTryLater, method, started);
        return;
      }
    }
    if (!echo_nonce && ServeStored(request, *pending)) {
      txn_->Reset();
      return;
    }
    txn_->Reset();  // a snapshot held longer would pin old pages while imports run
    if (!echo_nonce) pending->decoded.nonce.reset();  // ignored: the response can then be kept and reused

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
    SendOcsp(request, (*stored)->der, (*stored)->info.next_update);
    metrics_.ObserveAnswer(metrics::AnswerSource::kStored,
                           static_cast<double>(std::max<UnixSeconds>(0, now - (*stored)->info.produced_at)));
    Observe(request, pending.method, decision.outcome, pending.started, (*stored)->der.size());
    const auto hour = static_cast<std::uint32_t>(now / 3600);
    if ((*stored)->info.status == store::StoredStatus::kGood && (*stored)->info.requested_hour < hour &&
        dependencies_.writer != nullptr) {
      dependencies_.writer->EnqueueTouch(decision.issuer_no, *cert.algorithm, cert.serial, hour);
    }
    return true;
  }

  // The per-worker share of nonce_signatures_per_second, as a token bucket with one second of burst.
  bool TakeNonceToken() {
    const double rate = static_cast<double>(config_.nonce_signatures_per_second) / config_.workers;
    const auto now = Steady::now();
    nonce_tokens_ = std::min(rate, nonce_tokens_ + rate * std::chrono::duration<double>(now - nonce_refilled_).count());
    nonce_refilled_ = now;
    if (nonce_tokens_ < 1.0) return false;
    nonce_tokens_ -= 1.0;
    return true;
  }

  void DrainCompletions() {
    std::vector<std::shared_ptr<PendingResponse>> ready;
    {
      std::lock_guard lock(completions_mutex_);
      ready.swap(completions_);
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
      // A response that echoes a nonce is unique to its request: no cache may reuse it.
      const bool cacheable = !pending->decoded.nonce && pending->decision.next_update;
      SendOcsp(pending->request, *pending->signed_response,
               cacheable ? pending->decision.next_update : std::nullopt);
      Observe(pending->request, pending->method, pending->decision.outcome, pending->started,
              pending->signed_response->size(), pending->verifier);
    }
  }

  void SendOcsp(evhttp_request* request, ByteView body, std::optional<UnixSeconds> next_update) {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Type", kOcspResponseType.data());
    if (next_update) {
      const UnixSeconds max_age = std::max<UnixSeconds>(0, *next_update - dependencies_.clock.Now());
      const std::string cache = "max-age=" + std::to_string(max_age) + ", public, no-transform, must-revalidate";
      evhttp_add_header(headers, "Cache-Control", cache.c_str());
    } else {
      evhttp_add_header(headers, "Cache-Control", "max-age=0, no-cache");
    }
    evbuffer_add(output_.get(), body.data(), body.size());
    evhttp_send_reply(request, HTTP_OK, "OK", output_.get());
  }

  void SendException(evhttp_request* request, signer::ResponseStatus status, metrics::Method method,
                     Steady::time_point started) {
    // Exceptions are sent unsigned with HTTP 200 (RFC 6960 2.3); caches must not keep them.
    const Bytes& body = exceptions_[static_cast<std::size_t>(status)];
    SendOcsp(request, body, std::nullopt);
    Observe(request, method, OutcomeOf(status), started, body.size());
  }

  void SendRefusal(evhttp_request* request, int code, const char* reason, metrics::Method method,
                   Steady::time_point started) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Cache-Control", "max-age=0, no-cache");
    evhttp_send_reply(request, code, reason, nullptr);
    Observe(request, method, metrics::Outcome::kRefused, started, 0);
  }

  void SendText(evhttp_request* request, int code, std::string_view text) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "text/plain");
    evbuffer_add(output_.get(), text.data(), text.size());
    evhttp_send_reply(request, code, "OK", output_.get());
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
      // TODO(verifier registry): the registry's name for a named slot; until then only the fixed two exist.
      access_log_->Append({dependencies_.clock.Now(),
                           verifier == metrics::kVerifierNone ? std::string_view("none") : "unregistered",
                           address != nullptr ? std::string_view(address) : std::string_view(), method, outcome,
                           seconds, bytes});
    }
  }

  ServerDependencies dependencies_;
  const config::Config& config_;
  std::array<Bytes, 7> exceptions_;  // indexed by ResponseStatus
  Socket socket_;
  EventBasePtr base_;  // declared before http_ and wake_ so it is freed after them
  EvhttpPtr http_;
  evhttp_bound_socket* bound_ = nullptr;  // owned by http_; nullptr once draining
  EventPtr wake_;
  EventPtr heartbeat_;
  EventPtr drain_;
  Steady::time_point drain_deadline_;
  bool draining_ = false;                         // loop thread only
  std::optional<Steady::time_point> quiet_since_;  // loop thread only
  std::size_t in_flight_ = 0;  // handed to the signing pool, reply not sent yet; loop thread only
  std::atomic<Steady::rep> heartbeat_ticks_{0};
  EvbufferPtr output_;
  EventPtr flush_;
  metrics::WorkerMetrics& metrics_;
  std::optional<AccessLogWriter> access_log_;
  std::optional<store::ReadTxn> txn_;
  double nonce_tokens_ = 0;
  Steady::time_point nonce_refilled_ = Steady::now();
  std::mutex completions_mutex_;
  std::vector<std::shared_ptr<PendingResponse>> completions_;
  std::thread thread_;
};

// The main thread's loop: signals and the metrics listener.
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
  metrics::ResponderMetrics* metrics = nullptr;
  EvbufferPtr output;
};

Server::Server(ServerDependencies dependencies) : dependencies_(dependencies) {}

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

  std::unique_ptr<Server> server(new Server(dependencies));
  server->notifier_ = service.notifier;
  server->drain_timeout_ = std::chrono::seconds(config.drain_timeout_seconds);
  // The workers stamp their heartbeat four times per watchdog interval; the control loop checks twice.
  std::optional<std::chrono::microseconds> heartbeat;
  if (service.notifier != nullptr && service.notifier->watchdog_interval()) {
    heartbeat = std::max(*service.notifier->watchdog_interval() / 4, std::chrono::microseconds(1000));
  }
  config::ListenAddress address = config.listen;
  for (unsigned i = 0; i < config.workers; ++i) {
    auto socket = service.sockets.ocsp.get() >= 0 ? Duplicate(service.sockets.ocsp) : Listen(address, true);
    if (!socket) return std::unexpected(socket.error());
    if (i == 0) {
      server->ocsp_port_ = BoundPort(socket->get());
      address.port = server->ocsp_port_;  // with port 0, the other workers join the port the first one got
    }
    auto worker = std::make_unique<Worker>(dependencies, config);
    if (auto init = worker->Init(std::move(*socket), heartbeat); !init) return std::unexpected(init.error());
    server->workers_.push_back(std::move(worker));
  }

  auto control = std::make_unique<Control>();
  control->base.reset(event_base_new());
  control->output.reset(evbuffer_new());
  control->metrics = &dependencies.metrics;
  if (!control->base || !control->output) return Fail(ErrorCode::kInternal, "event_base_new failed");
  auto on_signal = [](evutil_socket_t, short, void* base) {
    event_base_loopbreak(static_cast<event_base*>(base));
  };
  control->sigint.reset(evsignal_new(control->base.get(), SIGINT, on_signal, control->base.get()));
  control->sigterm.reset(evsignal_new(control->base.get(), SIGTERM, on_signal, control->base.get()));
  control->stop.reset(event_new(control->base.get(), -1, 0, on_signal, control->base.get()));
  event_add(control->sigint.get(), nullptr);
  event_add(control->sigterm.get(), nullptr);
  // Without a handler SIGHUP would end the process; with one, `systemctl reload` reloads.
  auto on_hup = [](evutil_socket_t, short, void* self) { static_cast<Server*>(self)->OnReloadSignal(); };
  control->sighup.reset(evsignal_new(control->base.get(), SIGHUP, on_hup, server.get()));
  event_add(control->sighup.get(), nullptr);
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
  }
  server->control_ = std::move(control);

  for (auto& worker : server->workers_) worker->Start();
  return server;
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
}

Result<void> Server::ReloadHook() {
  // The reload work (HTTP front end) fills this in: read the configuration again and swap verifiers and
  // certificates into the workers. Until then a reload changes nothing, and says so.
  Log(LogLevel::kInfo, "reload_noop", {{"why", "configuration reload is not implemented yet"}});
  return {};
}

void Server::OnReloadSignal() {
  Log(LogLevel::kInfo, "reloading");
  if (notifier_ != nullptr) notifier_->Reloading();
  auto reloaded = ReloadHook();
  if (reloaded) {
    Log(LogLevel::kInfo, "reloaded");
  } else {
    Log(LogLevel::kError, "reload_failed", {{"error", reloaded.error().Describe()}, {"kept", "running state"}});
  }
  if (notifier_ != nullptr) {
    notifier_->Ready();
    if (!reloaded) notifier_->Status("answering; last reload failed: " + reloaded.error().Describe());
  }
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

}  // namespace ocsp::responder
