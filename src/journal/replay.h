// `reactor --replay FILE` (CONTRACT section 6): reads a journal incrementally on a uv
// loop, selects events (--from/--to, filters), paces them by their recorded time and
// hands them on in file order. The loop stays responsive throughout, so a WebSocket
// server can share it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/event.h"
#include "core/filter.h"
#include "core/status.h"
#include "journal/journal_line.h"

namespace reactor::journal {

struct ReplayConfig {
  std::string file;
  double speed = 0;  // 1 = as recorded, 2 = twice as fast, 0 = no pauses
  std::optional<int64_t> from_id, to_id;  // inclusive bounds on the event id
  Filter filter;

  size_t read_bytes = size_t{256} << 10;     // one read request
  size_t yield_every = 1000;                 // lines handled before yielding to the loop
  size_t max_line_bytes = size_t{64} << 20;  // a longer line is malformed (and skipped)
};

// Whether the replay passes `ev` on. With --from or --to, an event without an id (a
// foreign payload, id 0) is outside every range and is not passed on. The bounds
// select by value: ids need not increase through the file. Pure.
bool Selected(const ReplayConfig& config, const Event& ev);

// When to pass on each event of a paced replay. Pure: the caller passes the loop time.
//
// Events are scheduled on a timeline, not by chaining delays: the k-th event is due at
// due(k-1) + (t_k - t_{k-1}) / speed, so time spent between events does not accumulate.
// A t smaller than the previous one (the recording host's clock stepped back) is a gap
// of 0. A single pause never exceeds kMaxPauseMs (an arithmetic guard only: real gaps
// are kept, however long). When the consumer fell more than kResyncMs behind the
// timeline (the loop was busy, stdout blocked), the timeline restarts from now, so the
// gaps after a stall are kept rather than collapsed into a burst.
class Pacer {
 public:
  static constexpr uint64_t kMaxPauseMs = uint64_t{1} << 31;
  static constexpr uint64_t kResyncMs = 1000;

  // speed <= 0 (or NaN) means no pauses.
  explicit Pacer(double speed) : speed_(speed > 0 ? speed : 0) {}

  // How many ms after now_ms the event recorded at t_ms is due (0 = now); the event then
  // counts as the previous one. The first event is always due at once.
  uint64_t Delay(int64_t t_ms, uint64_t now_ms);

 private:
  double speed_;
  bool started_ = false;
  double due_ms_ = 0;  // loop time the previous event was due at
  int64_t prev_t_ = 0;
};

struct ReplayStats {
  uint64_t lines = 0;      // non-blank lines read
  uint64_t events = 0;     // passed to on_event
  uint64_t filtered = 0;   // well-formed but not selected
  uint64_t malformed = 0;  // reported and skipped
};

// Threading: loop thread only. Ownership: owns its file and its timer; neither copied
// nor moved; once Start() succeeded it must be Close()d and outlive the Close callback.
class Replayer {
 public:
  struct Callbacks {
    // Each selected event, in file order, at its paced time.
    std::function<void(const Event& ev, int64_t t_ms)> on_event;
    // One human-readable line per problem, e.g.
    // "FILE:LINE: malformed journal line: <reason>" or "FILE: read failed: <reason>".
    std::function<void(const std::string& message)> on_error;
    // Once, after the last line: 0, or 1 when a line was malformed or the read failed.
    std::function<void(int exit_code)> on_done;
  };

  // `loop` must outlive the Replayer. Every callback must be set.
  Replayer(uv_loop_t* loop, ReplayConfig config, Callbacks callbacks);
  // REQUIRES: Start() never succeeded, or the Close() callback has run.
  ~Replayer();
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Opens the file (blocking open(2): a start-up step) and starts reading. No callback
  // runs before Start() returns. On error nothing is left to close. REQUIRES: once.
  Status Start();

  // No on_event or on_done after this (e.g. the consumer went away). May be called from
  // inside on_event.
  void Stop();

  // Stops, waits for the read in flight, closes the file and the timer, then calls `done`
  // from a close callback. May be called from inside any callback. REQUIRES: Start()
  // succeeded; once.
  void Close(std::function<void()> done);

  const ReplayStats& stats() const { return stats_; }

 private:
  enum class State { kNew, kRunning, kClosing, kClosed };

  static void OnRead(uv_fs_t* req) noexcept;
  static void OnFileClosed(uv_fs_t* req) noexcept;
  static void OnTimer(uv_timer_t* h) noexcept;
  static void OnTimerClosed(uv_handle_t* h) noexcept;

  // Hands on what is buffered, as pacing and the yield budget allow, then arms the timer
  // or a read; the single place that decides what happens next.
  void Pump();
  void StartRead();
  // The next complete line (without "\n" or "\r\n") and its number, or false.
  bool NextLine(std::string_view* line);
  void HandleLine(std::string_view line);
  void Report(uint64_t line_no, const std::string& reason);
  void Finish();
  void FinishClose();

  uv_loop_t* loop_;
  ReplayConfig config_;
  Callbacks cb_;
  State state_ = State::kNew;
  uv_file fd_ = -1;
  uv_fs_t req_{};
  uv_timer_t timer_{};
  bool reading_ = false;
  bool eof_ = false;
  bool read_failed_ = false;
  bool stopped_ = false;
  bool finished_ = false;
  std::function<void()> on_closed_;

  std::unique_ptr<char[]> chunk_;  // what the read request fills
  std::string buf_;  // bytes read and not yet handled start at buf_[pos_]
  size_t pos_ = 0;
  uint64_t line_no_ = 0;
  bool skipping_ = false;  // inside an over-long line, already reported

  struct Ready {
    Event event;
    int64_t t_ms = 0;
    uint64_t due_ms = 0;  // loop time
  };
  std::optional<Ready> ready_;
  Pacer pacer_;
  JournalLineParser parser_;
  ReplayStats stats_;
};

}  // namespace reactor::journal
