// The journal behind `--record FILE` (CONTRACT section 6): every delivered event is
// appended as one line (journal_line.h) without ever blocking the loop or delivery.
//
// Append() only copies into a buffer bounded in bytes; the buffer is written with
// uv_fs_write on a file opened O_WRONLY|O_APPEND|O_CREAT (0644), at most one file
// request in flight, the next one started from the completion callback. Writes are
// kicked by a uv_prepare_t, i.e. once per loop pass just before the loop sleeps (the
// place Redis writes replies), so a batch of events delivered in one pass becomes one
// write. A failing write (disk full, I/O error) is logged (rate-limited), counted and
// retried after a back-off with the bytes kept; only what would overflow the bound is
// dropped, and counted. See docs/journal.md.
//
// Threading: loop thread only. Ownership: the Journal owns its uv handles and its file;
// it is neither copied nor moved; after a successful Open() it must be Close()d, and it
// may be destroyed only once the Close callback has run.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/rate_limit.h"
#include "core/status.h"

namespace reactor {
class MetricsText;
}

namespace reactor::journal {

struct JournalLimits {
  size_t max_buffer_bytes = size_t{16} << 20;  // unwritten bytes kept before dropping lines
  uint64_t retry_ms = 1000;                    // back-off after a failed open or write
  uint64_t close_timeout_ms = 5000;            // Close() gives up on unwritten bytes after
  uint64_t error_log_interval_ms = 10000;      // at most one error line per interval
};

struct JournalStats {
  uint64_t lines_written = 0;   // complete lines the file accepted
  uint64_t bytes_written = 0;
  uint64_t write_errors = 0;    // failed open/write/close requests on the file
  uint64_t lines_dropped = 0;   // lines that will never reach the file (bound, give-up)
  uint64_t bytes_dropped = 0;
  uint64_t bytes_buffered = 0;  // accepted, not yet written
  uint64_t reopens = 0;         // successful Reopen()s
};

class Journal {
 public:
  // `loop` must outlive the Journal. Nothing happens until Open().
  Journal(uv_loop_t* loop, std::string path, JournalLimits limits = {});
  // REQUIRES: Open() never succeeded, or the Close() callback has run.
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Opens (creating, 0644) the file for appending. Blocks on open(2): call it at start-up.
  // On error nothing is left to close. REQUIRES: called once.
  Status Open();

  // Queues one line `{"t":t_ms,"event":event_json}`. Never blocks, never fails: a line
  // that would take the buffer past max_buffer_bytes, or that arrives after Close(), is
  // dropped and counted. REQUIRES: event_json is one JSON object.
  void Append(int64_t t_ms, std::string_view event_json);

  // Starts a write now if one can start (the loop would otherwise do so before it sleeps).
  void Flush();

  // For SIGHUP (log rotation by rename): lets the write in flight finish (and the line it
  // cut, if any), closes the file, opens the same path again, and carries on with the
  // buffer intact. If the open fails it is retried after the back-off while the buffer
  // holds. Ignored once Close() was called.
  void Reopen();

  // Writes what it can of the buffer, giving up after close_timeout_ms of not getting it
  // all out (the rest is counted as dropped), closes the file and every handle, then calls
  // `done` (from a close callback, never from inside Close). After that the loop holds
  // nothing of the Journal. A write the kernel never completes delays `done` until it
  // does. REQUIRES: Open() succeeded; called once.
  void Close(std::function<void()> done);

  JournalStats stats() const;
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;
  const std::string& path() const { return path_; }

 private:
  enum class State { kNew, kOpen, kClosing, kClosingHandles, kClosed };
  enum class Op { kNone, kWrite, kClose, kOpen };

  static void OnPrepare(uv_prepare_t* h) noexcept;
  static void OnRetryTimer(uv_timer_t* h) noexcept;
  static void OnCloseTimer(uv_timer_t* h) noexcept;
  static void OnWrite(uv_fs_t* req) noexcept;
  static void OnFileClosed(uv_fs_t* req) noexcept;
  static void OnFileOpened(uv_fs_t* req) noexcept;
  static void OnHandleClosed(uv_handle_t* h) noexcept;

  // Decides the next file request from the current state; the single place that starts one.
  void Advance();
  void StartWrite();
  void StartFileClose();
  void StartFileOpen();
  void IoFailed(const char* what, int err);
  void GiveUp();
  void CloseHandles();
  size_t Buffered() const { return writing_.size() - written_ + pending_.size(); }
  // The bytes written so far end inside a line (a short write), so the file must get
  // the rest of that line before it may be switched.
  bool MidLine() const { return written_ > 0 && writing_[written_ - 1] != '\n'; }

  uv_loop_t* loop_;
  std::string path_;
  JournalLimits limits_;
  State state_ = State::kNew;
  Op op_ = Op::kNone;
  uv_file fd_ = -1;
  bool retry_wait_ = false;     // retry_timer_ is running
  bool reopen_wanted_ = false;
  bool given_up_ = false;
  int handles_open_ = 0;
  std::function<void()> on_closed_;

  uv_fs_t req_{};               // the one file request in flight (op_)
  uv_prepare_t prepare_{};
  uv_timer_t retry_timer_{};
  uv_timer_t close_timer_{};

  // writing_[written_, writing_.size()) is what the file request works on; it is never
  // touched while a write is in flight. New lines go to pending_.
  std::string writing_;
  size_t written_ = 0;
  std::string pending_;

  JournalStats stats_;
  uint64_t failures_in_a_row_ = 0;
  RateLimiter error_log_;
  RateLimiter drop_log_;
};

}  // namespace reactor::journal
