// The subscriber-facing half of the daemon, shared by `serve` and `--replay --listen`:
// the hub, the HTTP/WebSocket server, and the HTTP endpoints (/healthz, /readyz,
// /metrics, the dashboard). Wiring only.
//
// Ownership: owns the hub, the server and two loop-lag handles; Close() must complete
// before destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>

#include "app/options.h"
#include "core/event.h"
#include "core/metrics_text.h"
#include "hub/hub.h"
#include "ws/server.h"

namespace reactor {

class Frontend {
 public:
  struct Deps {
    std::function<bool()> ready;                          // /readyz
    std::function<void(MetricsText&)> metrics;            // the caller's own metrics
    pg::ClientReads* reads = nullptr;                     // null in replay
    std::function<std::optional<uint64_t>()> horizon;     // the sequencer's
    const char* mode = "live";                            // `welcome`'s mode: "live" or "replay"
  };

  Frontend(uv_loop_t* loop, const Options& options, Deps deps);
  ~Frontend();
  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;

  // Binds, then logs "listening on HOST:PORT" with the real port.
  Status Start();
  void Publish(Event&& ev) { hub_->Publish(std::move(ev)); }
  // 1001 to every client, then every handle closed, then `done`.
  void Close(std::function<void()> done);

  hub::Hub& hub() { return *hub_; }

 private:
  ws::Response Handle(const ws::Request& req);
  ws::Response HandleOperator(const ws::Request& req);  // /metrics, /healthz, /readyz
  void CloseMain();
  std::string Metrics();

  uv_loop_t* loop_;
  const Options& options_;
  Deps deps_;
  std::unique_ptr<hub::Hub> hub_;
  std::unique_ptr<ws::Server> server_;
  std::unique_ptr<ws::Server> metrics_server_;  // --metrics-listen
  // Loop lag: time from the poll's wake-up (check) to the next sleep (prepare).
  uv_check_t check_;
  uv_prepare_t prepare_;
  uint64_t woke_ns_ = 0;
  uint64_t lag_max_ns_ = 0;   // since the last scrape
  int open_handles_ = 2;
  std::function<void()> on_closed_;
};

}  // namespace reactor
