#include "ws/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <chrono>

#include "core/sat_time.h"
#include "hub/protocol.h"
#include "ws/frame.h"
#include "ws/handshake.h"

namespace reactor::ws {
namespace {

// The longest a token-expiry timer is armed for; a later `exp` is re-armed when it fires.
constexpr uint64_t kMaxExpiryTimerMs = 24ull * 3600 * 1000;

uint64_t SteadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string PeerName(uv_tcp_t* tcp) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[64] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

// A bearer token from the Authorization header or the access_token query parameter.
std::string TokenOf(const Request& req) {
  if (const std::string* auth = req.Header("authorization")) {
    if (auth->size() > 7 && (auth->compare(0, 7, "Bearer ") == 0 || auth->compare(0, 7, "bearer ") == 0)) {
      return auth->substr(7);
    }
  }
  if (const std::string* t = req.Query("access_token")) return *t;
  return {};
}

}  // namespace

struct Server::Conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  Server* server = nullptr;
  enum class Phase { kHttp, kWs, kClosing } phase = Phase::kHttp;
  RequestParser parser;
  hub::OutQueue own_out;  // HTTP responses and the 101 (before the session's queue)
  std::unique_ptr<hub::Session> session;
  std::unique_ptr<FrameParser> frames;
  std::unique_ptr<Keepalive> keepalive;
  uint64_t deadline_ms = 0;      // handshake, idle or closing deadline (uv_now clock)
  uint64_t request_started = 0;  // uv_now when the current request's first byte came
  bool writing = false;
  bool dirty = false;
  bool close_after_flush = false;
  bool close_sent = false;
  bool destroying = false;
  bool counted_http = false;  // in stats_.open_http (a refused connection never is)
  bool served = false;        // a response went out: from now on, silence is idleness
  bool close_queued = false;  // a close frame is queued: it is the last thing queued
  bool read_paused = false;   // not read: its queued output is over the budget
  std::string pending_in;     // input received before the pause, not parsed yet
  size_t inflight = 0;        // bytes handed to the write in flight
  int open_handles = 2;
  std::string peer;

  explicit Conn(RequestLimits limits) : parser(limits) {}
  hub::OutQueue& queue() { return !own_out.empty() || !session ? own_out : session->out(); }
  bool has_output() const { return !own_out.empty() || (session && !session->out().empty()); }
};

namespace {
struct WriteReq {
  uv_write_t req;
  Server::Conn* conn;
  std::vector<hub::OutQueue::Chunk> chunks;
  std::vector<uint64_t> stamps;
  size_t bytes = 0;
};
char g_read_buffer[65536];  // one loop thread; data is consumed inside the read callback
}  // namespace

Server::Server(uv_loop_t* loop, ServerConfig config, hub::Hub& hub, HttpHandler handler)
    : loop_(loop), config_(std::move(config)), hub_(hub), handler_(std::move(handler)) {
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
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
  c->peer = PeerName(&c->tcp);
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

void Server::OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = g_read_buffer;
  buf->len = sizeof g_read_buffer;
}

void Server::OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* conn = static_cast<Conn*>(s->data);
  if (conn->destroying) return;
  if (nread < 0) {
    conn->server->Destroy(*conn, nread == UV_EOF ? "peer closed" : uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (nread > 0) conn->server->OnData(*conn, std::string_view(buf->base, static_cast<size_t>(nread)));
}

size_t Server::Queued(const Conn& c) const {
  return c.own_out.bytes() + (c.session ? c.session->out().bytes() : 0) + c.inflight;
}

void Server::Pause(Conn& c, std::string_view rest) {
  c.pending_in.assign(rest);
  if (c.read_paused) return;
  c.read_paused = true;
  ++stats_.read_pauses;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c.tcp));
  spdlog::debug("connection {}: not read while {} bytes are queued", c.peer, Queued(c));
  if (c.phase == Conn::Phase::kHttp && !c.close_after_flush) {
    // A client that pipelines requests and reads no responses is dropped when its
    // queue has not drained within the idle time.
    c.deadline_ms = uv_now(loop_) + config_.idle_timeout_ms;
    ArmTimer(c);
  }
}

void Server::Resume(Conn& c) {
  c.read_paused = false;
  std::string rest = std::move(c.pending_in);
  c.pending_in.clear();
  if (!rest.empty()) OnData(c, rest);
  if (c.read_paused || c.destroying) return;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c.tcp), OnAlloc, OnRead);
}

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
  if (req.path == "/ws") {
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
  c.session = hub_.Open(std::move(who), authed);
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

void Server::OnWsData(Conn& c, std::string_view data) {
  while (!c.destroying) {
    if (Queued(c) > config_.max_queue_bytes) {
      // Replies (pongs, errors) to a peer that does not read: read no more from it.
      Pause(c, data);
      return;
    }
    FrameEvent ev = c.frames->Next(data);
    switch (ev.type) {
      case FrameEvent::Type::kNone:
        return;
      case FrameEvent::Type::kText:
        if (c.phase == Conn::Phase::kWs) hub_.OnText(*c.session, ev.payload);
        break;
      case FrameEvent::Type::kBinary:
        if (c.phase == Conn::Phase::kWs) {
          Queue(c, EncodeFrame(Opcode::kText, hub::ErrorMessage("bad_request", "messages are JSON text frames")));
        }
        break;
      case FrameEvent::Type::kPing:
        Queue(c, EncodeFrame(Opcode::kPong, ev.payload));
        break;
      case FrameEvent::Type::kPong:
        c.keepalive->OnPong();
        break;
      case FrameEvent::Type::kClose:
        if (c.close_sent) {
          Destroy(c, "closing handshake complete");
          return;
        }
        c.close_sent = true;
        c.phase = Conn::Phase::kClosing;
        if (c.session) c.session->MarkClosing();
        Queue(c, EncodeClose(CloseReplyCode(ev.code)));
        c.close_queued = true;
        c.close_after_flush = true;
        c.deadline_ms = uv_now(loop_) + config_.close_timeout_ms;
        ArmTimer(c);
        return;
      case FrameEvent::Type::kError:
        ++stats_.protocol_errors;
        spdlog::debug("ws {}: protocol error {}: {}", c.peer, ev.code, ev.payload);
        StartWsClose(c, ev.code, std::string(ev.payload), false);
        return;
    }
  }
}

void Server::StartWsClose(Conn& c, uint16_t code, const std::string& reason, bool wait_for_peer) {
  if (c.close_sent || c.destroying) return;
  c.close_sent = true;
  c.phase = Conn::Phase::kClosing;
  if (c.session) c.session->MarkClosing();
  if (code == close_code::kTryAgainLater && c.session) c.session->out().Clear();
  Queue(c, EncodeClose(code, reason));
  c.close_queued = true;  // the close frame is the last thing queued
  if (!wait_for_peer) c.close_after_flush = true;
  c.deadline_ms = uv_now(loop_) + (closing_ ? 1000 : config_.close_timeout_ms);
  ArmTimer(c);
}

void Server::Wake(hub::Session& s) {
  if (s.glue) MarkDirty(*static_cast<Conn*>(s.glue));
}

void Server::CloseSession(hub::Session& s, uint16_t code, const std::string& reason) {
  if (!s.glue) return;
  auto& c = *static_cast<Conn*>(s.glue);
  spdlog::info("ws {}: closing {}: {}", c.peer, code, reason);
  StartWsClose(c, code, reason, code != close_code::kTryAgainLater && !closing_);
}

void Server::SessionPrincipalChanged(hub::Session& s) {
  if (!s.glue) return;
  auto& c = *static_cast<Conn*>(s.glue);
  if (c.phase == Conn::Phase::kWs && s.authenticated()) c.deadline_ms = 0;  // no auth deadline
  ArmTimer(c);
}

void Server::Queue(Conn& c, std::string bytes) {
  if (c.destroying || c.close_queued) return;
  // Protocol frames and HTTP responses go ahead of nothing else the hub has queued:
  // before the upgrade there is no session; after it, into the session's queue.
  auto f = std::make_shared<const std::string>(std::move(bytes));
  if (c.session && c.phase != Conn::Phase::kHttp) {
    c.session->out().Push(std::move(f));
  } else {
    c.own_out.Push(std::move(f));
  }
  MarkDirty(c);
}

void Server::MarkDirty(Conn& c) {
  if (c.dirty || c.destroying) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

void Server::OnPrepare(uv_prepare_t* p) {
  auto* self = static_cast<Server*>(p->data);
  // Resume cursors first (their frames go out in this pass's writes). While they have
  // work ready, an idle handle keeps the loop from sleeping.
  bool more = self->hub_.Pump();
  self->FlushAll();
  // Writes that emptied a queue make room for conflated events: another pass, not a sleep.
  more = more || self->hub_.BacklogReady();
  if (more && !self->closing_) {
    uv_idle_start(&self->idle_, [](uv_idle_t*) {});
  } else {
    uv_idle_stop(&self->idle_);
  }
}

void Server::FlushAll() {
  // A flush that resumes a paused connection may queue more (its parsed input): a few
  // rounds so that nothing waits for the next wake-up.
  for (int round = 0; round < 4 && !dirty_.empty(); ++round) {
    std::vector<Conn*> batch;
    batch.swap(dirty_);
    for (Conn* c : batch) {
      c->dirty = false;
      if (!c->destroying) Flush(*c);
    }
  }
}

void Server::ObserveLatency(uint64_t us) {
  size_t i = 0;
  while (i < stats_.latency_bounds_us.size() && us > stats_.latency_bounds_us[i]) ++i;
  ++stats_.latency_counts[i];
  stats_.latency_sum_us += us;
  ++stats_.latency_count;
}

void Server::Flush(Conn& c) {
  while (!c.writing && !c.destroying) {
    if (c.read_paused && Queued(c) <= config_.max_queue_bytes / 2) {
      Resume(c);
      continue;
    }
    if (!c.has_output()) {
      if (c.close_after_flush) Destroy(c, "closed after the last write");
      return;
    }
    hub::OutQueue& q = c.queue();
    auto chunks = q.Gather(64);
    std::vector<uv_buf_t> bufs;
    size_t total = 0;
    for (const auto& ch : chunks) {
      bufs.push_back(uv_buf_init(const_cast<char*>(ch.view().data()), static_cast<unsigned>(ch.size)));
      total += ch.size;
    }
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c.tcp), bufs.data(), static_cast<unsigned>(bufs.size()));
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
      Destroy(c, uv_strerror(n));
      return;
    }
    ++stats_.writes;
    stats_.bytes_written += static_cast<uint64_t>(n);
    uint64_t now = SteadyNs();
    q.Consume(static_cast<size_t>(n), [&](uint64_t stamp) { ObserveLatency((now - stamp) / 1000); });
    if (static_cast<size_t>(n) == total) continue;

    // The socket is full: hand the rest of these buffers to one asynchronous write.
    auto* w = new WriteReq{};
    w->conn = &c;
    w->chunks = q.Gather(64);
    bufs.clear();
    for (const auto& ch : w->chunks) {
      bufs.push_back(uv_buf_init(const_cast<char*>(ch.view().data()), static_cast<unsigned>(ch.size)));
      w->bytes += ch.size;
    }
    q.Consume(w->bytes, [&](uint64_t stamp) { w->stamps.push_back(stamp); });
    if (c.session) c.session->inflight_bytes += w->bytes;
    c.inflight += w->bytes;
    c.writing = true;
    ++stats_.async_writes;
    w->req.data = w;
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c.tcp), bufs.data(),
                      static_cast<unsigned>(bufs.size()), [](uv_write_t* req, int status) {
                        auto* wr = static_cast<WriteReq*>(req->data);
                        Conn* conn = wr->conn;
                        Server* self = conn->server;
                        conn->writing = false;
                        if (conn->session) conn->session->inflight_bytes -= wr->bytes;
                        conn->inflight -= wr->bytes;
                        if (status == 0) {
                          self->stats_.bytes_written += wr->bytes;
                          uint64_t t = SteadyNs();
                          for (uint64_t stamp : wr->stamps) self->ObserveLatency((t - stamp) / 1000);
                        }
                        delete wr;
                        if (conn->destroying) return;
                        if (status < 0) {
                          self->Destroy(*conn, uv_strerror(status));
                          return;
                        }
                        self->MarkDirty(*conn);
                      });
    if (rc != 0) {
      c.writing = false;
      if (c.session) c.session->inflight_bytes -= w->bytes;
      c.inflight -= w->bytes;
      delete w;
      Destroy(c, uv_strerror(rc));
    }
    return;
  }
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
    pending_closes_ += 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), closed);
    return;
  }
  if (on_closed_) {
    auto done = std::move(on_closed_);
    done();
  }
}

}  // namespace reactor::ws
