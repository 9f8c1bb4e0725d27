// The listener, connection limits, per-connection timers (handshake, idle, ping,
// token expiry, closing) and teardown. See server_internal.h for the other parts.
#include "ws/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "core/sat_time.h"
#include "hub/protocol.h"
#include "ws/handshake.h"
#include "core/metrics_text.h"
#include "ws/server_internal.h"

namespace reactor::ws {

using namespace detail;

Server::Server(uv_loop_t* loop, ServerConfig config, hub::Hub& hub, HttpHandler handler)
    : loop_(loop), config_(std::move(config)), hub_(hub), handler_(std::move(handler)) {
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  uv_timer_init(loop_, &console_timer_);
  console_timer_.data = this;
}

Server::~Server() { assert(conns_.empty()); }

Result<HostPort> Server::Start() {
  sockaddr_storage addr{};
  int rc;
  if (config_.listen.host.find(':') != std::string::npos) {
    rc = uv_ip6_addr(config_.listen.host.c_str(), config_.listen.port, reinterpret_cast<sockaddr_in6*>(&addr));
  } else {
    std::string host = config_.listen.host == "localhost" ? "127.0.0.1" : config_.listen.host;
    rc = uv_ip4_addr(host.c_str(), config_.listen.port, reinterpret_cast<sockaddr_in*>(&addr));
  }
  if (rc != 0) return Status::Error("invalid listen address " + config_.listen.host);
  rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), config_.listen_backlog, OnConnection);
  if (rc != 0) {
    return Status::Error("cannot listen on " + config_.listen.host + ":" +
                         std::to_string(config_.listen.port) + ": " + uv_strerror(rc));
  }
  listening_ = true;
  uv_prepare_start(&prepare_, OnPrepare);
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  HostPort actual = config_.listen;
  actual.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return actual;
}

void Server::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0 || self->closing_) return;
  auto* c = new Conn(self->config_.request_limits);
  c->server = self;
  uv_tcp_init(self->loop_, &c->tcp);
  c->tcp.data = c;
  uv_timer_init(self->loop_, &c->timer);
  c->timer.data = c;
  self->conns_.insert(c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    self->Destroy(*c, "accept failed");
    return;
  }
  ++self->stats_.accepted;
  c->peer = PeerName(&c->tcp, &c->loopback);
  if (self->conns_.size() > self->config_.max_connections) {
    ++self->stats_.rejected_over_limit;
    Response r = ServiceUnavailable("too many connections");
    r.keep_alive = false;
    self->Queue(*c, r.Serialize());
    c->close_after_flush = true;
    c->deadline_ms = uv_now(self->loop_) + self->config_.close_timeout_ms;
    self->ArmTimer(*c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  ++self->stats_.open_http;
  c->counted_http = true;
  c->deadline_ms = uv_now(self->loop_) + self->config_.handshake_timeout_ms;
  c->request_started = uv_now(self->loop_);
  self->ArmTimer(*c);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
}

void Server::ArmTimer(Conn& c) {
  if (c.destroying) return;
  uint64_t now = uv_now(loop_);
  uint64_t deadline = c.deadline_ms;
  if (c.phase == Conn::Phase::kWs && c.keepalive) {
    uint64_t ka = static_cast<uint64_t>(std::max<int64_t>(c.keepalive->next_deadline(), 0));
    deadline = deadline ? std::min(deadline, ka) : ka;
    if (c.session && c.session->who().expires_at) {
      // Saturating: a far `exp` is a far deadline (re-armed daily), never a wrapped one
      // (a wrapped one was a 0 ms timer that re-armed forever and starved the loop).
      uint64_t ms_left = MillisUntil(c.session->who().expires_at, UnixMillis(), kMaxExpiryTimerMs);
      uint64_t exp = SaturatingAddU(now, ms_left);
      deadline = deadline ? std::min(deadline, exp) : exp;
    }
  }
  if (deadline == 0) {
    uv_timer_stop(&c.timer);
    return;
  }
  uv_timer_start(&c.timer, [](uv_timer_t* t) {
    auto* conn = static_cast<Conn*>(t->data);
    conn->server->OnConnTimer(*conn);
  }, deadline > now ? deadline - now : 0, 0);
}

void Server::OnConnTimer(Conn& c) {
  if (c.destroying) return;
  uint64_t now = uv_now(loop_);
  if (c.deadline_ms && now >= c.deadline_ms) {
    if (c.phase == Conn::Phase::kHttp) {
      // A connection that never completed a request is a slow handshake even when it
      // sent nothing at all; only a kept-alive connection between requests is idle.
      if (c.read_paused) {
        ++stats_.stalled_drops;
        Destroy(c, "responses not read in time");
      } else if (c.parser.started() || !c.served) {
        ++stats_.handshake_timeouts;
        Destroy(c, "request not complete in time");
      } else {
        ++stats_.idle_timeouts;
        Destroy(c, "idle");
      }
    } else if (c.phase == Conn::Phase::kWs) {
      // Upgraded without a token on a server that requires one, and no `auth` since.
      c.deadline_ms = 0;
      if (c.session && !c.session->authenticated()) {
        ++stats_.auth_timeouts;
        StartWsClose(c, close_code::kPolicyViolation, "no authentication in time", false);
        return;
      }
    } else {
      Destroy(c, "closing handshake timed out");
      return;
    }
    if (c.destroying) return;
  }
  if (c.phase == Conn::Phase::kWs) {
    switch (c.keepalive->Tick(static_cast<int64_t>(now))) {
      case Keepalive::Action::kPing:
        Queue(c, EncodeFrame(Opcode::kPing, {}));
        break;
      case Keepalive::Action::kClose:
        ++stats_.ping_timeouts;
        StartWsClose(c, close_code::kProtocolError, "no pong to two pings", false);
        return;
      case Keepalive::Action::kNone:
        break;
    }
    if (c.session) hub_.CheckExpiry(*c.session, UnixSeconds());
  }
  ArmTimer(c);
}

void Server::Destroy(Conn& c, const char* why) {
  if (c.destroying) return;
  c.destroying = true;
  spdlog::debug("connection {} closed: {}", c.peer, why);
  if (c.session) {
    hub_.Remove(c.session.get());
    --stats_.open_ws;
  } else if (c.counted_http) {
    --stats_.open_http;
    c.counted_http = false;
  }
  auto closed = [](uv_handle_t* h) {
    auto* conn = static_cast<Conn*>(h->data);
    if (--conn->open_handles > 0) return;
    Server* self = conn->server;
    self->conns_.erase(conn);
    self->dirty_.erase(std::remove(self->dirty_.begin(), self->dirty_.end(), conn), self->dirty_.end());
    delete conn;
    self->MaybeFinishClose();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c.timer), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp), closed);
}

void Server::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (closing_) return;
  closing_ = true;
  {
    ++pending_closes_;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      --self->pending_closes_;
      self->MaybeFinishClose();
    });
  }
  uv_idle_stop(&idle_);
  uv_timer_stop(&console_timer_);
  hub_.CloseAll(close_code::kGoingAway, "server shutting down");
  std::vector<Conn*> all(conns_.begin(), conns_.end());
  for (Conn* c : all) {
    if (c->phase == Conn::Phase::kHttp) {
      if (!c->has_output()) Destroy(*c, "server shutting down");
      else c->close_after_flush = true;
    } else {
      // CloseAll queued a close frame; don't wait for the peer's answer.
      c->close_after_flush = true;
      MarkDirty(*c);
    }
  }
  MaybeFinishClose();
}

void Server::MaybeFinishClose() {
  if (!closing_ || !conns_.empty() || pending_closes_ > 0) return;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&prepare_))) {
    auto closed = [](uv_handle_t* h) {
      auto* self = static_cast<Server*>(h->data);
      --self->pending_closes_;
      self->MaybeFinishClose();
    };
    pending_closes_ += 3;
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&console_timer_), closed);
    return;
  }
  if (on_closed_) {
    auto done = std::move(on_closed_);
    done();
  }
}

void Server::WriteMetrics(MetricsText& m) const {
  const auto& s = stats_;
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
  m.Histogram("reactor_delivery_latency_seconds",
              "From an event's notification being read to its frame written to a subscriber's socket.", s.latency);
  m.Histogram("reactor_event_age_seconds",
              "From an event's `at` (written in the database, at commit) to its frame written to a subscriber's socket: the delay each viewer sees, one observation per frame.",
              s.age);
  // Every connection's queue now (the server's side of each viewer's delay).
  MicrosHistogram queued{{0, 1024, 16384, 65536, 262144, 1048576, 4194304}};
  for (const Conn* c : conns_) {
    if (c->session) queued.Observe(c->session->out().bytes() + c->session->inflight_bytes);
  }
  // Bytes, not seconds: written unscaled.
  std::vector<double> qb;
  for (uint64_t b : queued.bounds_us) qb.push_back(static_cast<double>(b));
  m.Histogram("reactor_connection_queue_bytes", "Bytes queued to each WebSocket connection at the scrape.", qb,
              queued.counts, static_cast<double>(queued.sum_us), queued.count);
}

}  // namespace reactor::ws
