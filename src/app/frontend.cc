#include "app/frontend.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <cstdio>

#include "web/assets.h"

namespace reactor {

Frontend::Frontend(uv_loop_t* loop, const Options& options, Deps deps)
    : loop_(loop), options_(options), deps_(std::move(deps)) {
  hub::Hub::Config hc;
  hc.history = options.history;
  hc.max_queue_bytes = options.max_queue_bytes;
  hc.secret = options.jwt_secret;
  hc.max_subscriptions = options.max_subscriptions;
  hc.parse.max_filter_values = options.max_filter_values;
  hc.parse.max_filter_bytes = options.max_filter_bytes;
  hc.resume_entries_per_pass = options.resume_entries_per_pass;
  hc.max_held_events = options.max_held_events;
  hc.max_resume_rows = options.max_resume_rows;
  hc.max_conflated_jobs = options.max_conflated_jobs;
  hc.token_rules.leeway_s = options.jwt_leeway_s;
  hc.token_rules.audience = options.jwt_audience;
  hc.token_rules.issuer = options.jwt_issuer;
  hc.server = std::string("reactor/") + REACTOR_VERSION;
  hc.mode = deps_.mode;
  hc.allow_user_actions = options.allow_user_actions;
  hc.max_history_events = options.max_history_events;
  hc.counts_refresh_ms = options.counts_refresh_s * 1000;
  hub::Hub::Hooks hooks;
  hooks.wake = [this](hub::Session& s) { server_->Wake(s); };
  hooks.close = [this](hub::Session& s, uint16_t code, const std::string& why) {
    server_->CloseSession(s, code, why);
  };
  hooks.principal_changed = [this](hub::Session& s) { server_->SessionPrincipalChanged(s); };
  hooks.reads = deps_.reads;
  hooks.horizon = deps_.horizon;
  hub_ = std::make_unique<hub::Hub>(std::move(hc), std::move(hooks));

  ws::ServerConfig sc;
  sc.listen = options.listen;
  sc.max_connections = options.max_connections;
  sc.listen_backlog = static_cast<int>(options.listen_backlog);
  sc.request_limits.max_header_bytes = options.max_header_bytes;
  sc.handshake_timeout_ms = options.handshake_timeout_ms;
  sc.idle_timeout_ms = options.idle_timeout_ms;
  sc.ping.interval_ms = static_cast<int64_t>(options.ping_interval_ms);
  sc.max_queue_bytes = options.max_queue_bytes;
  sc.browser.allowed_origins = options.allowed_origins;
  auto public_hosts = ParsePublicHosts(options.public_hosts);
  assert(public_hosts);  // validated by ParseOptions
  if (public_hosts) sc.browser.public_hosts = std::move(*public_hosts);
  // Without a secret, whoever reaches the port reads every event, so a page must not turn
  // a browser into such a client through a rebound DNS name. With a secret, the Host is
  // checked only when --public-host names the expected ones.
  sc.browser.check_host = options.jwt_secret.empty() || !sc.browser.public_hosts.empty();
  sc.browser.listen_host = options.listen.host;
  if (options.metrics_listen) {
    ws::ServerConfig mc = sc;
    mc.listen = *options.metrics_listen;
    mc.websocket = false;
    mc.max_connections = 64;  // scrapers and probes
    mc.browser.listen_host = options.metrics_listen->host;
    metrics_server_ = std::make_unique<ws::Server>(loop_, mc, *hub_,
                                                   [this](const ws::Request& r) { return HandleOperator(r); });
  }
  server_ = std::make_unique<ws::Server>(loop_, sc, *hub_,
                                         [this](const ws::Request& r) { return Handle(r); });
  uv_check_init(loop_, &check_);
  check_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
}

Frontend::~Frontend() = default;

namespace {

// Scripts find the real port in this line, whatever --log-level says.
void LogListening(const char* what, const HostPort& at, const char* suffix) {
  const std::string host = at.host.find(':') != std::string::npos ? "[" + at.host + "]" : at.host;
  const std::string line = what + host + ":" + std::to_string(at.port) + suffix;
  if (spdlog::should_log(spdlog::level::info)) {
    spdlog::info("{}", line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

}  // namespace

Status Frontend::Start() {
  auto bound = server_->Start();
  if (!bound) return bound.status();
  uv_check_start(&check_, [](uv_check_t* c) {
    static_cast<Frontend*>(c->data)->woke_ns_ = uv_hrtime();
  });
  uv_prepare_start(&prepare_, [](uv_prepare_t* p) {
    auto* self = static_cast<Frontend*>(p->data);
    if (self->woke_ns_ == 0) return;
    uint64_t busy = uv_hrtime() - self->woke_ns_;
    self->lag_max_ns_ = std::max(self->lag_max_ns_, busy);
    self->woke_ns_ = 0;
  });
  LogListening("listening on ", *bound,
               hub_->auth_required() ? " (JWT required)" : " (no authentication)");
  if (metrics_server_) {
    auto m = metrics_server_->Start();
    if (!m) return m.status();
    LogListening("metrics listening on ", *m, "");
  }
  return Status::Ok();
}

ws::Response Frontend::Handle(const ws::Request& req) {
  if (const web::Asset* asset = web::Assets::Embedded().Find(req.path)) return web::Serve(*asset, req);
  if (req.path == "/metrics" && metrics_server_) return ws::NotFound();  // on --metrics-listen only
  return HandleOperator(req);
}

ws::Response Frontend::HandleOperator(const ws::Request& req) {
  const bool known = req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics";
  if (!known) return ws::NotFound();
  if (req.method != "GET" && req.method != "HEAD") return ws::MethodNotAllowed("GET, HEAD");
  if (req.path == "/healthz") return ws::TextResponse(200, "alive");
  if (req.path == "/readyz") {
    bool ready = deps_.ready && deps_.ready();
    return ready ? ws::TextResponse(200, "listening") : ws::ServiceUnavailable("not listening on PostgreSQL");
  }
  ws::Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = Metrics();
  return r;
}

std::string Frontend::Metrics() {
  MetricsText m;
  if (deps_.metrics) deps_.metrics(m);
  hub_->WriteMetrics(m);
  server_->WriteMetrics(m);
  m.Gauge("reactor_loop_lag_seconds", "Longest loop pass since the last scrape.", static_cast<double>(lag_max_ns_) / 1e9);
  lag_max_ns_ = 0;
  return m.text();
}

void Frontend::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (metrics_server_) {
    // Operators' scrapes end first; then the subscribers.
    metrics_server_->Close([this] { CloseMain(); });
    return;
  }
  CloseMain();
}

void Frontend::CloseMain() {
  server_->Close([this] {
    auto closed = [](uv_handle_t* h) {
      auto* self = static_cast<Frontend*>(h->data);
      if (--self->open_handles_ == 0 && self->on_closed_) {
        auto cb = std::move(self->on_closed_);
        cb();
      }
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&check_), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), closed);
  });
}

}  // namespace reactor
