// Liveness of one WebSocket connection (CONTRACT section 5): the server pings every
// interval and closes a connection that has left `max_unanswered` pings in a row
// without a pong. Pure: time is a parameter (milliseconds on any monotonic clock).
//
// The connection arms its timer for next_deadline(), calls Tick() when it fires and
// does what it says; OnPong() on every pong received.
#pragma once

#include <cstdint>

#include "core/defaults.h"

namespace reactor::ws {

class Keepalive {
 public:
  struct Config {
    int64_t interval_ms = static_cast<int64_t>(defaults::kPingIntervalMs);
    int max_unanswered = 2;
  };
  enum class Action { kNone, kPing, kClose };

  explicit Keepalive(int64_t now_ms) : Keepalive(now_ms, Config{}) {}
  Keepalive(int64_t now_ms, Config config);

  // kPing: send a ping now; kClose: the peer has not answered max_unanswered pings;
  // kNone: too early (a timer may fire early or late; only `now_ms` counts).
  Action Tick(int64_t now_ms);
  // A pong arrived (solicited or not): the peer is alive.
  void OnPong() { unanswered_ = 0; }

  int64_t next_deadline() const { return deadline_; }
  int unanswered() const { return unanswered_; }

 private:
  Config config_;
  int64_t deadline_;
  int unanswered_ = 0;
};

}  // namespace reactor::ws
