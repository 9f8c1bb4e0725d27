// HTTP requests: parsing, the browser checks, routing to the handler, and the
// WebSocket upgrade (authentication, the query shortcut).
#include "ws/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "core/sat_time.h"
#include "hub/protocol.h"
#include "ws/handshake.h"
#include "ws/server_internal.h"

namespace reactor::ws {

using namespace detail;

void Server::OnData(Conn& c, std::string_view data) {
  while (!data.empty() && !c.destroying) {
    if (c.phase != Conn::Phase::kHttp) {
      OnWsData(c, data);
      return;
    }
    if (c.close_after_flush) return;  // an error response is on its way; ignore the rest
    if (Queued(c) > config_.max_queue_bytes) {
      Pause(c, data);  // the next request waits until the responses drain
      return;
    }
    if (!c.parser.started()) {
      c.request_started = uv_now(loop_);
      c.deadline_ms = c.request_started + config_.handshake_timeout_ms;
      ArmTimer(c);
    }
    ParseStatus st = c.parser.Feed(data);
    data.remove_prefix(st.consumed);
    if (st.state == ParseStatus::State::kNeedMore) return;
    if (st.state == ParseStatus::State::kError) {
      ++stats_.request_errors;
      if (st.http_status == 431) ++stats_.headers_too_large;
      Response r = ErrorResponse(st);
      r.date = HttpDate(UnixSeconds());
      Queue(c, r.Serialize());
      c.close_after_flush = true;
      return;
    }
    HandleRequest(c);
  }
}

void Server::HandleRequest(Conn& c) {
  ++stats_.http_requests;
  Request& req = c.parser.request();
  // Health checks stay open to load balancers, whatever Host they send; they say nothing
  // but "alive" and "ready".
  if (req.path != "/healthz" && req.path != "/readyz") {
    if (GuardVerdict v = CheckHost(req.Header("host"), config_.browser); !v.ok()) {
      Refuse(c, v);
      return;
    }
  }
  if (req.path == "/ws" && config_.websocket) {
    Upgrade(c, req);
    return;
  }
  Response r = handler_(req);
  r.keep_alive = r.keep_alive && req.keep_alive && !closing_;
  r.head = req.method == "HEAD";
  r.date = HttpDate(UnixSeconds());
  Queue(c, r.Serialize());
  c.served = true;
  if (!r.keep_alive) {
    c.close_after_flush = true;
  } else {
    c.deadline_ms = uv_now(loop_) + config_.idle_timeout_ms;
    ArmTimer(c);
  }
  c.parser.Reset();
}

void Server::Upgrade(Conn& c, const Request& req) {
  UpgradeCheck check = CheckUpgrade(req);
  if (!check.ok()) {
    ++stats_.upgrade_failures;
    Response r = UpgradeFailure(check);
    r.date = HttpDate(UnixSeconds());
    Queue(c, r.Serialize());
    c.close_after_flush = true;
    return;
  }
  if (GuardVerdict v = CheckOrigin(req.Header("origin"), req.Header("host"), config_.browser); !v.ok()) {
    ++stats_.upgrade_failures;
    Refuse(c, v);
    return;
  }
  hub::Principal who = hub::Principal::Open();
  bool authed = !hub_.auth_required();
  if (hub_.auth_required()) {
    std::string token = TokenOf(req);
    if (!token.empty()) {
      auto p = hub_.Authenticate(token, UnixSeconds());
      if (!p) {
        ++stats_.upgrade_failures;
        spdlog::info("ws {}: refused: {}", c.peer, p.error());
        Response r = Unauthorized(p.error());
        r.keep_alive = false;
        r.date = HttpDate(UnixSeconds());
        Queue(c, r.Serialize());
        c.close_after_flush = true;
        return;
      }
      who = std::move(*p);
      authed = true;
    }
  }
  ++stats_.upgrades;
  --stats_.open_http;
  c.counted_http = false;
  ++stats_.open_ws;
  Queue(c, SwitchingProtocols(check.accept));
  c.phase = Conn::Phase::kWs;
  // Without a token the connection has the handshake time to send an `auth` message.
  c.deadline_ms = authed ? 0 : uv_now(loop_) + config_.handshake_timeout_ms;
  c.frames = std::make_unique<FrameParser>(config_.max_message);
  c.keepalive = std::make_unique<Keepalive>(static_cast<int64_t>(uv_now(loop_)), config_.ping);
  c.session = hub_.Open(std::move(who), authed, c.loopback);
  c.session->glue = &c;

  // The query shortcut: /ws?job_id=…&user_id=…&job_type=a,b&status=…&since=ID
  hub_.OnShortcut(*c.session, req.query);
  ArmTimer(c);
  c.parser.Reset();
}

void Server::Refuse(Conn& c, const GuardVerdict& v) {
  const bool host = v.refusal == GuardVerdict::Refusal::kHost;
  ++(host ? stats_.refused_host : stats_.refused_origin);
  uint64_t suppressed = 0;
  if ((host ? host_log_ : origin_log_).Allow(uv_now(loop_), &suppressed)) {
    spdlog::info("http {}: refused {} ({}): {}{}", c.peer, v.http_status, v.detail, v.reason,
                 suppressed ? fmt::format(" ({} more not logged)", suppressed) : std::string());
  }
  Response r = TextResponse(v.http_status, v.reason);
  r.keep_alive = false;
  r.date = HttpDate(UnixSeconds());
  Queue(c, r.Serialize());
  c.close_after_flush = true;
}

}  // namespace reactor::ws
