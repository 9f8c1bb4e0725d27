// The server's internals, shared by the files it is split into (one concern each):
//   server.cc       the listener, connection limits, per-connection timers, teardown
//   server_io.cc    reads and writes: the per-connection budget, backpressure, flushing
//   server_http.cc  HTTP requests: routing, browser checks, the WebSocket upgrade
//   server_ws.cc    WebSocket sessions: frames, the closing handshake, the hub's hooks
// Not part of the server's interface; included by those files only.
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/host_port.h"
#include "hub/hub.h"
#include "hub/out_queue.h"
#include "ws/frame.h"
#include "ws/http.h"
#include "ws/keepalive.h"
#include "ws/server.h"

namespace reactor::ws {
namespace detail {

// The longest a token-expiry timer is armed for; a later `exp` is re-armed when it fires.
constexpr uint64_t kMaxExpiryTimerMs = 24ull * 3600 * 1000;

inline uint64_t SteadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline int64_t UnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "host:port" of the peer; `*loopback` (when given) tells whether its address is a
// loopback one (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104).
inline std::string PeerName(uv_tcp_t* tcp, bool* loopback = nullptr) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (loopback) *loopback = false;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (loopback) *loopback = IsLoopbackAddress(reinterpret_cast<const sockaddr*>(&ss));
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
inline std::string TokenOf(const Request& req) {
  if (const std::string* auth = req.Header("authorization")) {
    if (auth->size() > 7 && (auth->compare(0, 7, "Bearer ") == 0 || auth->compare(0, 7, "bearer ") == 0)) {
      return auth->substr(7);
    }
  }
  if (const std::string* t = req.Query("access_token")) return *t;
  return {};
}

struct WriteReq {
  uv_write_t req;
  Server::Conn* conn;
  std::vector<hub::OutQueue::Chunk> chunks;
  std::vector<hub::OutQueue::Stamp> stamps;
  size_t bytes = 0;
};

}  // namespace detail

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
  bool loopback = false;      // the peer's address is a loopback one

  explicit Conn(RequestLimits limits) : parser(limits) {}
  hub::OutQueue& queue() { return !own_out.empty() || !session ? own_out : session->out(); }
  bool has_output() const { return !own_out.empty() || (session && !session->out().empty()); }
};

}  // namespace reactor::ws
