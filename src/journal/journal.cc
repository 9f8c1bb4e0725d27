#include "journal/journal.h"

#include "core/metrics_text.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "journal/journal_line.h"

namespace reactor::journal {
namespace {

constexpr int kOpenFlags = UV_FS_O_WRONLY | UV_FS_O_APPEND | UV_FS_O_CREAT;
constexpr int kOpenMode = 0644;

uint64_t CountLines(std::string_view bytes) {
  return static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
}

}  // namespace

Journal::Journal(uv_loop_t* loop, std::string path, JournalLimits limits)
    : loop_(loop),
      path_(std::move(path)),
      limits_(limits),
      error_log_(limits.error_log_interval_ms),
      drop_log_(limits.error_log_interval_ms) {}

Journal::~Journal() {
  assert(state_ == State::kNew || state_ == State::kClosed);
}

Status Journal::Open() {
  assert(state_ == State::kNew);
  uv_fs_t req;
  int fd = uv_fs_open(loop_, &req, path_.c_str(), kOpenFlags, kOpenMode, nullptr);
  uv_fs_req_cleanup(&req);
  if (fd < 0) {
    return Status::Error("cannot open journal " + path_ + ": " + uv_strerror(fd));
  }
  fd_ = fd;
  uv_prepare_init(loop_, &prepare_);
  uv_timer_init(loop_, &retry_timer_);
  uv_timer_init(loop_, &close_timer_);
  prepare_.data = retry_timer_.data = close_timer_.data = this;
  handles_open_ = 3;
  uv_prepare_start(&prepare_, OnPrepare);
  // Flushing must not be what keeps a loop alive; the owner's handles do that.
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  state_ = State::kOpen;
  spdlog::info("journal {}: recording", path_);
  return Status::Ok();
}

void Journal::Append(int64_t t_ms, std::string_view event_json) {
  size_t size = JournalLineSize(t_ms, event_json);
  bool accepting = state_ == State::kNew || state_ == State::kOpen;
  if (!accepting || Buffered() + size > limits_.max_buffer_bytes) {
    ++stats_.lines_dropped;
    stats_.bytes_dropped += size;
    uint64_t suppressed = 0;
    if (drop_log_.Allow(uv_now(loop_), &suppressed)) {
      spdlog::error("journal {}: dropping events: {} ({} bytes unwritten, limit {}){}", path_,
                    accepting ? "buffer full" : "journal closed", Buffered(),
                    limits_.max_buffer_bytes,
                    suppressed ? fmt::format("; {} more dropped since last report", suppressed)
                               : std::string());
    }
    return;
  }
  AppendJournalLine(pending_, t_ms, event_json);
}

void Journal::Flush() { Advance(); }

void Journal::Reopen() {
  if (state_ != State::kOpen) return;
  spdlog::info("journal {}: reopening", path_);
  reopen_wanted_ = true;
  // A rotation may be exactly what a failing file needed: try at once.
  if (retry_wait_) {
    uv_timer_stop(&retry_timer_);
    retry_wait_ = false;
  }
  Advance();
}

void Journal::Close(std::function<void()> done) {
  assert(state_ == State::kOpen);
  on_closed_ = std::move(done);
  state_ = State::kClosing;
  uv_timer_start(&close_timer_, OnCloseTimer, limits_.close_timeout_ms, 0);
  Advance();
}

JournalStats Journal::stats() const {
  JournalStats s = stats_;
  s.bytes_buffered = Buffered();
  return s;
}

void Journal::Advance() {
  if (op_ != Op::kNone) return;  // its completion calls back here
  if (state_ != State::kOpen && state_ != State::kClosing) return;
  if (state_ == State::kClosing && (given_up_ || Buffered() == 0)) {
    if (given_up_) GiveUp();
    if (fd_ >= 0) {
      StartFileClose();
    } else {
      CloseHandles();
    }
    return;
  }
  if (reopen_wanted_ && fd_ >= 0 && !MidLine()) {
    StartFileClose();
    return;
  }
  if (retry_wait_) return;
  if (fd_ < 0) {
    StartFileOpen();
    return;
  }
  if (Buffered() > 0) StartWrite();
}

void Journal::StartWrite() {
  if (written_ == writing_.size()) {
    writing_.clear();
    written_ = 0;
    writing_.swap(pending_);
    // After a burst, do not keep two buffers of the burst's size forever.
    if (pending_.capacity() > (size_t{1} << 20)) pending_.shrink_to_fit();
  } else if (!pending_.empty()) {
    // Only after a short write: rare, so the copy does not matter.
    writing_.append(pending_);
    pending_.clear();
  }
  size_t len = writing_.size() - written_;
  if (reopen_wanted_ && MidLine()) {
    len = writing_.find('\n', written_) - written_ + 1;  // lines always end in '\n'
  }
  len = std::min(len, size_t{1} << 30);  // uv_buf_t lengths are 32 bits
  uv_buf_t buf = uv_buf_init(writing_.data() + written_, static_cast<unsigned>(len));
  op_ = Op::kWrite;
  req_.data = this;
  int r = uv_fs_write(loop_, &req_, fd_, &buf, 1, -1, OnWrite);
  if (r < 0) {
    op_ = Op::kNone;
    uv_fs_req_cleanup(&req_);
    IoFailed("write", r);
  }
}

void Journal::OnWrite(uv_fs_t* req) noexcept {
  auto* self = static_cast<Journal*>(req->data);
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  self->op_ = Op::kNone;
  if (n <= 0) {
    // write(2) of a non-empty buffer returning 0 would spin; treat it as an I/O error.
    self->IoFailed("write", n < 0 ? static_cast<int>(n) : UV_EIO);
  } else {
    size_t len = static_cast<size_t>(n);
    self->stats_.bytes_written += len;
    self->stats_.lines_written +=
        CountLines(std::string_view(self->writing_).substr(self->written_, len));
    self->written_ += len;
    if (self->failures_in_a_row_ > 0) {
      spdlog::info("journal {}: writing again after {} failed attempt(s)", self->path_,
                   self->failures_in_a_row_);
      self->failures_in_a_row_ = 0;
      self->error_log_ = RateLimiter(self->limits_.error_log_interval_ms);
    }
  }
  self->Advance();
}

void Journal::StartFileClose() {
  op_ = Op::kClose;
  req_.data = this;
  uv_file fd = fd_;
  fd_ = -1;  // whatever close(2) says, the descriptor is gone
  int r = uv_fs_close(loop_, &req_, fd, OnFileClosed);
  if (r < 0) {
    uv_fs_req_cleanup(&req_);
    req_.result = r;
    OnFileClosed(&req_);
  }
}

void Journal::OnFileClosed(uv_fs_t* req) noexcept {
  auto* self = static_cast<Journal*>(req->data);
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  self->op_ = Op::kNone;
  if (r < 0) {
    // close(2) can be where NFS reports a failed write-back: say so, the data may be lost.
    ++self->stats_.write_errors;
    spdlog::error("journal {}: close failed: {}", self->path_, uv_strerror(static_cast<int>(r)));
  }
  if (self->state_ == State::kClosing && (self->given_up_ || self->Buffered() == 0)) {
    self->CloseHandles();
    return;
  }
  self->Advance();  // a reopen: opens the path again
}

void Journal::StartFileOpen() {
  op_ = Op::kOpen;
  req_.data = this;
  int r = uv_fs_open(loop_, &req_, path_.c_str(), kOpenFlags, kOpenMode, OnFileOpened);
  if (r < 0) {
    op_ = Op::kNone;
    uv_fs_req_cleanup(&req_);
    IoFailed("open", r);
  }
}

void Journal::OnFileOpened(uv_fs_t* req) noexcept {
  auto* self = static_cast<Journal*>(req->data);
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  self->op_ = Op::kNone;
  if (r < 0) {
    self->IoFailed("open", static_cast<int>(r));
  } else {
    self->fd_ = static_cast<uv_file>(r);
    if (self->reopen_wanted_) {
      self->reopen_wanted_ = false;
      ++self->stats_.reopens;
      spdlog::info("journal {}: reopened", self->path_);
    }
    if (self->failures_in_a_row_ > 0) {
      spdlog::info("journal {}: open again after {} failed attempt(s)", self->path_,
                   self->failures_in_a_row_);
      self->failures_in_a_row_ = 0;
      self->error_log_ = RateLimiter(self->limits_.error_log_interval_ms);
    }
  }
  self->Advance();
}

void Journal::IoFailed(const char* what, int err) {
  ++stats_.write_errors;
  ++failures_in_a_row_;
  bool switching = reopen_wanted_ && std::string_view(what) == "write";
  if (switching && MidLine()) {
    // The old file cannot take the rest of the line it holds the start of; the new file
    // must not begin with a fragment. That one line is lost, and counted.
    size_t end = writing_.find('\n', written_) + 1;
    ++stats_.lines_dropped;
    stats_.bytes_dropped += end - written_;
    writing_.erase(0, end);
    written_ = 0;
  }
  uint64_t suppressed = 0;
  if (error_log_.Allow(uv_now(loop_), &suppressed)) {
    spdlog::error("journal {}: {} failed: {} ({}); {} bytes kept, retrying every {} ms{}", path_,
                  what, uv_strerror(err), uv_err_name(err), Buffered(), limits_.retry_ms,
                  suppressed ? fmt::format("; {} similar errors since last report", suppressed)
                             : std::string());
  }
  if (switching) return;  // Advance() goes on with the reopen at once
  retry_wait_ = true;
  uv_timer_start(&retry_timer_, OnRetryTimer, limits_.retry_ms, 0);
}

void Journal::GiveUp() {
  size_t left = Buffered();
  if (left == 0) return;
  std::string_view rest = std::string_view(writing_).substr(written_);
  // A line cut by a short write counts once, by its '\n' still in `rest`.
  uint64_t lines = CountLines(rest) + CountLines(pending_);
  stats_.lines_dropped += lines;
  stats_.bytes_dropped += left;
  spdlog::error("journal {}: closing with {} line(s) ({} bytes) unwritten after {} ms", path_,
                lines, left, limits_.close_timeout_ms);
  writing_.clear();
  written_ = 0;
  pending_.clear();
}

void Journal::OnPrepare(uv_prepare_t* h) noexcept {
  static_cast<Journal*>(h->data)->Advance();
}

void Journal::OnRetryTimer(uv_timer_t* h) noexcept {
  auto* self = static_cast<Journal*>(h->data);
  self->retry_wait_ = false;
  self->Advance();
}

void Journal::OnCloseTimer(uv_timer_t* h) noexcept {
  auto* self = static_cast<Journal*>(h->data);
  self->given_up_ = true;
  if (self->retry_wait_) {
    uv_timer_stop(&self->retry_timer_);
    self->retry_wait_ = false;
  }
  self->Advance();
}

void Journal::CloseHandles() {
  state_ = State::kClosingHandles;
  if (stats_.lines_dropped > 0 || stats_.write_errors > 0) {
    spdlog::warn("journal {}: closed; {} line(s) written, {} dropped, {} I/O error(s)", path_,
                 stats_.lines_written, stats_.lines_dropped, stats_.write_errors);
  } else {
    spdlog::info("journal {}: closed; {} line(s) written", path_, stats_.lines_written);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&close_timer_), OnHandleClosed);
}

void Journal::OnHandleClosed(uv_handle_t* h) noexcept {
  auto* self = static_cast<Journal*>(h->data);
  if (--self->handles_open_ > 0) return;
  self->state_ = State::kClosed;
  // The callback may destroy the Journal: nothing of it is touched afterwards.
  auto done = std::move(self->on_closed_);
  if (done) done();
}

void Journal::WriteMetrics(MetricsText& m) const {
  const auto j = stats();
  m.Counter("reactor_journal_lines_written_total", "Journal lines written.", j.lines_written);
  m.Counter("reactor_journal_write_errors_total", "Failed journal writes (e.g. disk full).", j.write_errors);
  m.Counter("reactor_journal_lines_dropped_total", "Journal lines lost (buffer bound exceeded).", j.lines_dropped);
  m.Gauge("reactor_journal_buffered_bytes", "Journal bytes waiting to be written.", static_cast<double>(j.bytes_buffered));
}

}  // namespace reactor::journal
