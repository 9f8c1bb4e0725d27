// The reactor's one listener: HTTP/1.1 and WebSocket (RFC 6455) on libuv TCP, in the
// reactor's loop. Thin glue: parsing and framing are the pure codecs of src/ws, fan-out
// is the Hub; this owns sockets, timers and writes.
//
// Writes are coalesced: connections with queued output are flushed once per loop pass,
// right before the loop sleeps (a uv_prepare_t): uv_try_write with several buffers,
// then uv_write for the rest; a connection never has two writes in flight.
//
// Limits (each counted in Stats when it trips): connection count, header bytes,
// handshake time (slow-loris), HTTP idle time, message size, ping/pong liveness, and one
// budget for all the bytes queued to a connection (a peer that does not read is not read).
//
// One class, one file per concern (server_internal.h lists them): the listener and its
// limits (server.cc), reads and writes (server_io.cc), HTTP routing and the upgrade
// (server_http.cc), WebSocket sessions (server_ws.cc). The HTTP endpoints themselves are
// the caller's handler (app/frontend.cc).
//
// Ownership: owns every connection and handle; Close() must complete before the
// destructor. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/defaults.h"
#include "ws/browser_guard.h"
#include "core/host_port.h"
#include "core/metrics_text.h"
#include "core/rate_limit.h"
#include "core/status.h"
#include "hub/hub.h"
#include "ws/http.h"
#include "ws/keepalive.h"

namespace reactor {
class MetricsText;
}

namespace reactor::ws {

struct ServerConfig {
  HostPort listen;
  size_t max_connections = defaults::kMaxConnections;
  int listen_backlog = static_cast<int>(defaults::kListenBacklog);
  uint64_t handshake_timeout_ms = defaults::kHandshakeTimeoutMs;  // first request complete within this
  uint64_t idle_timeout_ms = defaults::kIdleTimeoutMs;       // HTTP keep-alive connection without a request
  uint64_t close_timeout_ms = 5000;       // closing handshake, then the socket goes
  RequestLimits request_limits;
  size_t max_message = 65536;
  // Every byte queued to one connection (HTTP responses, the 101, pongs, close frames,
  // error replies, events, snapshots) counts against this (--max-queue-bytes). Over it,
  // the connection is not read until its queue is down to half (TCP backpressure);
  // events over it close a WebSocket with 1013 (the hub's rule).
  size_t max_queue_bytes = defaults::kMaxQueueBytes;
  // False: a plain HTTP listener (--metrics-listen); /ws goes to the handler like any path.
  bool websocket = true;
  Keepalive::Config ping;
  BrowserPolicy browser;  // Host (DNS rebinding) and Origin (cross-site WebSocket) checks
};

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t rejected_over_limit = 0;
  uint64_t http_requests = 0;
  uint64_t upgrades = 0;
  uint64_t upgrade_failures = 0;
  uint64_t handshake_timeouts = 0;
  uint64_t idle_timeouts = 0;
  uint64_t request_errors = 0;  // malformed or over a limit: 400, 413, 431, 505
  uint64_t headers_too_large = 0;  // of which 431 (--max-header-bytes)
  uint64_t protocol_errors = 0;
  uint64_t ping_timeouts = 0;
  uint64_t auth_timeouts = 0;  // upgraded without a token, no `auth` within the handshake time
  uint64_t refused_host = 0;    // 421: a Host this server does not answer for
  uint64_t refused_origin = 0;  // 403: a cross-site Origin on the upgrade
  uint64_t bytes_written = 0;
  uint64_t writes = 0;
  uint64_t async_writes = 0;
  uint64_t open_http = 0;
  uint64_t open_ws = 0;
  uint64_t read_pauses = 0;     // reading stopped: queued output over max_queue_bytes
  uint64_t stalled_drops = 0;   // HTTP connections dropped: paused and not drained in time
  // Latency from an event entering the hub to its frame fully written to a socket.
  MicrosHistogram latency{{50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000}};
  // Age of an event (its `at`, written at commit) when its frame was fully written.
  MicrosHistogram age{{1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000, 30000000}};
};

class Server {
 public:
  // Answers every HTTP request that is not a WebSocket upgrade on /ws.
  using HttpHandler = std::function<Response(const Request&)>;

  Server(uv_loop_t* loop, ServerConfig config, hub::Hub& hub, HttpHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; the address actually bound (port 0 resolved).
  Result<HostPort> Start();
  // Stops accepting, sends 1001 to every WebSocket, closes every connection (after a
  // short flush), then calls `done`.
  void Close(std::function<void()> done);

  // Hub hooks (the Session's glue is its Conn). Null glue (a session still being
  // opened) is ignored: the upgrade flushes it anyway.
  void Wake(hub::Session& s);
  // Sends a Close frame; waits for the peer's unless it is a slow consumer (1013).
  void CloseSession(hub::Session& s, uint16_t code, const std::string& reason);
  void SessionPrincipalChanged(hub::Session& s);

  const ServerStats& stats() const { return stats_; }
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;
  size_t connections() const { return conns_.size(); }

  struct Conn;

 private:
  friend struct Conn;
  static void OnConnection(uv_stream_t* server, int status);
  static void OnPrepare(uv_prepare_t* p);
  void FlushAll();
  void Flush(Conn& c);
  void MarkDirty(Conn& c);
  void HandleRequest(Conn& c);
  void Upgrade(Conn& c, const Request& req);
  // Answers a refused Host or Origin (counted, logged at most every 10 s per reason),
  // then closes.
  void Refuse(Conn& c, const GuardVerdict& verdict);
  void OnData(Conn& c, std::string_view data);
  void OnWsData(Conn& c, std::string_view data);
  void StartWsClose(Conn& c, uint16_t code, const std::string& reason, bool wait_for_peer);
  void Destroy(Conn& c, const char* why);  // closes the socket; frees in the close cb
  void ArmTimer(Conn& c);
  void OnConnTimer(Conn& c);
  void Queue(Conn& c, std::string bytes);
  size_t Queued(const Conn& c) const;
  // Stops reading `c`; keeps `rest` (unparsed input) for Resume.
  void Pause(Conn& c, std::string_view rest);
  void Resume(Conn& c);
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  void ObserveLatency(const hub::OutQueue::Stamp& st, uint64_t now_ns, int64_t wall_us);
  void MaybeFinishClose();

  uv_loop_t* loop_;
  ServerConfig config_;
  hub::Hub& hub_;
  HttpHandler handler_;
  uv_tcp_t listener_;
  uv_prepare_t prepare_;
  uv_idle_t idle_;  // active while resume cursors have work ready: the loop does not sleep
  uv_timer_t console_timer_;  // wakes the loop when the hub's Tick() asked to be called again
  bool listening_ = false;
  bool closing_ = false;
  int pending_closes_ = 0;
  std::function<void()> on_closed_;
  std::unordered_set<Conn*> conns_;
  std::vector<Conn*> dirty_;
  ServerStats stats_;
  RateLimiter host_log_{10000};
  RateLimiter origin_log_{10000};
};

}  // namespace reactor::ws
