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
  hc.max_conflated_jobs = options.max_conflated_jobs;
  hc.token_rules.leeway_s = options.jwt_leeway_s;
  hc.token_rules.audience = options.jwt_audience;
  hc.token_rules.issuer = options.jwt_issuer;
  hc.server = std::string("reactor/") + REACTOR_VERSION;
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
  server_ = std::make_unique<ws::Server>(loop_, sc, *hub_,
                                         [this](const ws::Request& r) { return Handle(r); });
  uv_check_init(loop_, &check_);
  check_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
}

Frontend::~Frontend() = default;

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
  std::string host = bound->host.find(':') != std::string::npos ? "[" + bound->host + "]" : bound->host;
  // Scripts find the real port in this line, whatever --log-level says.
  std::string line = "listening on " + host + ":" + std::to_string(bound->port) +
                     (hub_->auth_required() ? " (JWT required)" : " (no authentication)");
  if (spdlog::should_log(spdlog::level::info)) {
    spdlog::info("{}", line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  return Status::Ok();
}

ws::Response Frontend::Handle(const ws::Request& req) {
  if (const web::Asset* asset = web::Assets::Embedded().Find(req.path)) return web::Serve(*asset, req);
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
  const auto& h = hub_->stats();
  m.Counter("reactor_events_published_total", "Events fanned out (encoded once each).", h.events);
  m.Counter("reactor_frames_sent_total", "Event frames queued to subscribers.", h.frames);
  m.Counter("reactor_control_frames_total", "Protocol messages queued to subscribers.", h.control_frames);
  m.Gauge("reactor_subscribers", "Open WebSocket connections.", static_cast<double>(hub_->sessions()));
  m.Gauge("reactor_subscriptions", "Subscriptions over all connections.", static_cast<double>(hub_->subscriptions()));
  m.Counter("reactor_slow_consumer_closes_total", "Connections closed with 1013 for exceeding --max-queue-bytes.", h.slow_closes);
  m.Counter("reactor_auth_failures_total", "Bad, forged or expired tokens.", h.auth_failures);
  m.Counter("reactor_forbidden_total", "Requests refused as forbidden.", h.forbidden);
  m.Counter("reactor_bad_requests_total", "Client messages that were not understood.", h.bad_requests);
  m.Counter("reactor_resumes_total", "Resumes served from memory.", h.resumes_from_history, "source=\"history\"");
  m.Counter("reactor_resumes_total", "Resumes served from memory.", h.resumes_from_database, "source=\"database\"");
  m.Counter("reactor_gaps_total", "Resumes that could not be filled.", h.gaps);
  m.Counter("reactor_snapshots_total", "Snapshots served.", h.snapshots);
  m.Counter("reactor_reads_refused_total", "Resumes and snapshots refused for a database-read bound (answered gap or error).",
            h.reads_refused);
  m.Gauge("reactor_history_events", "Events kept in memory for resume.", static_cast<double>(hub_->history_size()));
  m.Counter("reactor_limit_refusals_total", "Subscribes refused over a limit.", h.subscription_limit, "limit=\"subscriptions\"");
  m.Counter("reactor_limit_refusals_total", "Subscribes refused over a limit.", h.filter_limit, "limit=\"filter\"");
  m.Gauge("reactor_resume_cursors", "Connections with a resume from the history being handed out.",
          static_cast<double>(hub_->resuming_sessions()));
  m.Counter("reactor_resume_entries_total", "History entries walked by resume cursors.", h.resume_entries);
  m.Counter("reactor_resume_deferred_passes_total", "Loop passes whose resume budget (--resume-entries-per-pass) ran out with work left.", h.resume_deferred);
  m.Counter("reactor_resume_behind_closes_total", "Connections closed 1013 because the history moved past their resume cursor.", h.resume_behind);
  m.Counter("reactor_conflated_events_total", "Events of conflating subscriptions replaced by a newer event of their job (the connection was behind).", h.conflated);
  m.Counter("reactor_conflation_markers_total", "{\"type\":\"conflated\"} messages queued.", h.conflation_markers);
  m.Gauge("reactor_conflating_connections", "Connections with conflated events waiting for queue room.",
          static_cast<double>(hub_->conflating_sessions()));
  m.Counter("reactor_conflation_overflow_closes_total", "Conflating connections closed 1013 over --max-conflated-jobs waiting.", h.conflation_overflow);
  m.Counter("reactor_route_candidates_total", "Connections the routing index offered for published events (the fan-out's work).", h.routed_candidates);
  const auto& s = server_->stats();
  m.Counter("reactor_bytes_sent_total", "Bytes written to sockets.", s.bytes_written);
  m.Counter("reactor_socket_writes_total", "Write calls (each coalesces a loop pass's frames).", s.writes);
  m.Counter("reactor_http_requests_total", "HTTP requests, upgrades included.", s.http_requests);
  m.Counter("reactor_connections_accepted_total", "TCP connections accepted.", s.accepted);
  m.Gauge("reactor_connections", "Open connections, HTTP and WebSocket (--max-connections).",
          static_cast<double>(s.open_http + s.open_ws));
  m.Counter("reactor_http_request_errors_total", "Requests refused as malformed or over a limit (400, 413, 431, 505).", s.request_errors);
  m.Counter("reactor_http_headers_too_large_total", "Requests over --max-header-bytes (431).", s.headers_too_large);
  m.Counter("reactor_connections_rejected_total", "Connections refused over the connection limit.", s.rejected_over_limit);
  m.Counter("reactor_handshake_timeouts_total", "Requests not complete in time (slow-loris).", s.handshake_timeouts);
  m.Counter("reactor_idle_timeouts_total", "Idle HTTP keep-alive connections closed.", s.idle_timeouts);
  m.Counter("reactor_ws_protocol_errors_total", "WebSocket connections failed for a protocol error.", s.protocol_errors);
  m.Counter("reactor_ws_auth_timeouts_total", "WebSocket connections closed (1008) for not authenticating in time.", s.auth_timeouts);
  m.Counter("reactor_ws_ping_timeouts_total", "WebSocket connections closed after unanswered pings.", s.ping_timeouts);
  m.Counter("reactor_ws_upgrade_failures_total", "Refused WebSocket handshakes.", s.upgrade_failures);
  m.Counter("reactor_read_pauses_total", "Connections no longer read because their queued output went over --max-queue-bytes.", s.read_pauses);
  m.Counter("reactor_stalled_drops_total", "HTTP connections dropped for not reading their responses within --idle-timeout-ms.", s.stalled_drops);
  m.Counter("reactor_http_refused_total", "Requests refused to protect browsers: a Host not served here (421, DNS rebinding) or a cross-site Origin on /ws (403).",
            s.refused_host, "reason=\"host\"");
  m.Counter("reactor_http_refused_total", "Requests refused to protect browsers: a Host not served here (421, DNS rebinding) or a cross-site Origin on /ws (403).",
            s.refused_origin, "reason=\"origin\"");
  std::vector<double> bounds;
  for (uint64_t b : s.latency_bounds_us) bounds.push_back(static_cast<double>(b) / 1e6);
  m.Histogram("reactor_delivery_latency_seconds",
              "From an event's notification being read to its frame written to a subscriber's socket.",
              bounds, s.latency_counts, static_cast<double>(s.latency_sum_us) / 1e6, s.latency_count);
  m.Gauge("reactor_loop_lag_seconds", "Longest loop pass since the last scrape.", static_cast<double>(lag_max_ns_) / 1e9);
  lag_max_ns_ = 0;
  return m.text();
}

void Frontend::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
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
