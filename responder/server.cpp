#include "responder/server.h"

#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
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
  Steady::time_point started;
  DecodedRequest decoded;
  Decision decision;
  Result<Bytes> signed_response = Bytes{};
};

class Worker;
thread_local Worker* current_worker = nullptr;  // the worker whose loop runs on this thread

class Worker {
 public:
  Worker(ServerDependencies dependencies, const config::Config& config)
      : dependencies_(dependencies), config_(config) {
    for (auto status : {signer::ResponseStatus::kMalformedRequest, signer::ResponseStatus::kInternalError,
                        signer::ResponseStatus::kTryLater, signer::ResponseStatus::kUnauthorized}) {
      exceptions_[static_cast<std::size_t>(status)] = signer::ExceptionResponse(status);
    }
  }

  Result<void> Init(Socket socket) {
    socket_ = std::move(socket);
    base_.reset(event_base_new());
    if (!base_) return Fail(ErrorCode::kInternal, "event_base_new failed");
    http_.reset(evhttp_new(base_.get()));
    wake_.reset(event_new(base_.get(), -1, 0, &Worker::OnWake, this));
    output_.reset(evbuffer_new());
    if (!http_ || !wake_ || !output_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
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
    evhttp_bound_socket* bound = evhttp_accept_socket_with_handle(http_.get(), socket_.get());
    if (bound == nullptr) return Fail(ErrorCode::kIo, "evhttp cannot accept on the listening socket");
    socket_.Release();  // evhttp_free closes it now
    // Out of descriptors, accept() fails at once and the socket stays readable: libevent would retry in a
    // tight loop, logging each failure (850 MB of log in 30 s under bench/abuse.sh). Pause accepting instead.
    listener_ = evhttp_bound_socket_get_listener(bound);
    resume_accept_.reset(evtimer_new(base_.get(), &Worker::OnResumeAccept, this));
    if (!resume_accept_) return Fail(ErrorCode::kInternal, "libevent allocation failed");
    evconnlistener_set_error_cb(listener_, &Worker::OnAcceptError);
    auto txn = dependencies_.store.BeginRead();
    if (!txn) return std::unexpected(txn.error());
    txn_.emplace(std::move(*txn));
    txn_->Reset();
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

  void Join() {
    if (thread_.joinable()) thread_.join();
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
    evconnlistener_enable(static_cast<Worker*>(self)->listener_);
  }

  void Handle(evhttp_request* request) {
    const auto started = Steady::now();
    const evhttp_cmd_type command = evhttp_request_get_command(request);
    const metrics::Method method = command == EVHTTP_REQ_POST  ? metrics::Method::kPost
                                   : command == EVHTTP_REQ_GET ? metrics::Method::kGet
                                                               : metrics::Method::kOther;
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
    txn_->Reset();  // a snapshot held longer would pin old pages while imports run

    if (const auto& exception = pending->decision.exception) {
      if (*exception != signer::ResponseStatus::kUnauthorized) {
        Log(LogLevel::kDebug, "exception_answer", {{"why", pending->decision.reason}});
      }
      SendException(request, *exception, method, started);
      return;
    }

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

  void DrainCompletions() {
    std::vector<std::shared_ptr<PendingResponse>> ready;
    {
      std::lock_guard lock(completions_mutex_);
      ready.swap(completions_);
    }
    for (const auto& pending : ready) {
      if (!pending->signed_response) {
        Log(LogLevel::kError, "signing_failed", {{"error", pending->signed_response.error().Describe()}});
        SendException(pending->request, signer::ResponseStatus::kInternalError, pending->method, pending->started);
        continue;
      }
      // A response that echoes a nonce is unique to its request: no cache may reuse it.
      const bool cacheable = !pending->decoded.nonce && pending->decision.next_update;
      SendOcsp(pending->request, *pending->signed_response,
               cacheable ? pending->decision.next_update : std::nullopt);
      Observe(pending->method, pending->decision.outcome, pending->started);
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
    SendOcsp(request, exceptions_[static_cast<std::size_t>(status)], std::nullopt);
    Observe(method, OutcomeOf(status), started);
  }

  void SendRefusal(evhttp_request* request, int code, const char* reason, metrics::Method method,
                   Steady::time_point started) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Cache-Control", "max-age=0, no-cache");
    evhttp_send_reply(request, code, reason, nullptr);
    Observe(method, metrics::Outcome::kRefused, started);
  }

  void SendText(evhttp_request* request, int code, std::string_view text) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "text/plain");
    evbuffer_add(output_.get(), text.data(), text.size());
    evhttp_send_reply(request, code, "OK", output_.get());
  }

  void Observe(metrics::Method method, metrics::Outcome outcome, Steady::time_point started) {
    dependencies_.metrics.ObserveRequest(method, outcome,
                                         std::chrono::duration<double>(Steady::now() - started).count());
  }

  ServerDependencies dependencies_;
  const config::Config& config_;
  std::array<Bytes, 7> exceptions_;  // indexed by ResponseStatus
  Socket socket_;
  EventBasePtr base_;  // declared before http_ and wake_ so it is freed after them
  EvhttpPtr http_;
  EventPtr wake_;
  EventPtr resume_accept_;
  evconnlistener* listener_ = nullptr;  // owned by http_
  Steady::time_point last_pause_log_{};
  std::uint64_t accept_pauses_ = 0;
  EvbufferPtr output_;
  std::optional<store::ReadTxn> txn_;
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

Result<std::unique_ptr<Server>> Server::Start(const config::Config& config, ServerDependencies dependencies) {
  // libevent must know about threads before any base exists: signing threads wake the workers' loops.
  static const int threads_ready = evthread_use_pthreads();
  if (threads_ready != 0) return Fail(ErrorCode::kInternal, "libevent has no pthreads support");
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<Server> server(new Server(dependencies));
  config::ListenAddress address = config.listen;
  for (unsigned i = 0; i < config.workers; ++i) {
    auto socket = Listen(address, /*reuse_port=*/true);
    if (!socket) return std::unexpected(socket.error());
    if (i == 0) {
      server->ocsp_port_ = BoundPort(socket->get());
      address.port = server->ocsp_port_;  // with port 0, the other workers join the port the first one got
    }
    auto worker = std::make_unique<Worker>(dependencies, config);
    if (auto init = worker->Init(std::move(*socket)); !init) return std::unexpected(init.error());
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
    control->metrics_socket.Release();  // evhttp_free closes it now
  }
  server->control_ = std::move(control);

  for (auto& worker : server->workers_) worker->Start();
  return server;
}

void Server::Run() {
  event_base_dispatch(control_->base.get());
  Log(LogLevel::kInfo, "stopping", {{"pending", "signatures finish, then replies are sent"}});
  // Pending signatures finish and post their completions; the workers then have a moment to send them.
  dependencies_.signing_pool.Stop();
  for (auto& worker : workers_) worker->Stop(std::chrono::milliseconds(200));
  for (auto& worker : workers_) worker->Join();
}

void Server::RequestStop() { event_active(control_->stop.get(), EV_READ, 0); }

}  // namespace ocsp::responder
