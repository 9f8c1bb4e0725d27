#include "journal/replay.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cassert>
#include <algorithm>
#include <cmath>

namespace reactor::journal {
namespace {

// A pause this long is announced, so that a quiet replay is not mistaken for a hang.
constexpr uint64_t kAnnouncePauseMs = 10000;

}  // namespace

bool Selected(const ReplayConfig& config, const Event& ev) {
  if ((config.from_id || config.to_id) && ev.id <= 0) return false;
  if (config.from_id && ev.id < *config.from_id) return false;
  if (config.to_id && ev.id > *config.to_id) return false;
  return config.filter.Matches(ev);
}

uint64_t Pacer::Delay(int64_t t_ms, uint64_t now_ms) {
  if (speed_ == 0) return 0;
  const double now = static_cast<double>(now_ms);
  if (!started_) {
    started_ = true;
    due_ms_ = now;
    prev_t_ = t_ms;
    return 0;
  }
  double gap = t_ms > prev_t_ ? static_cast<double>(t_ms - prev_t_) : 0.0;
  prev_t_ = t_ms;
  double pause = std::min(gap / speed_, static_cast<double>(kMaxPauseMs));
  if (now > due_ms_ + static_cast<double>(kResyncMs)) due_ms_ = now;
  due_ms_ += pause;
  if (due_ms_ <= now) return 0;
  return static_cast<uint64_t>(std::ceil(due_ms_ - now));
}

Replayer::Replayer(uv_loop_t* loop, ReplayConfig config, Callbacks callbacks)
    : loop_(loop), config_(std::move(config)), cb_(std::move(callbacks)), pacer_(config_.speed) {
  assert(cb_.on_event && cb_.on_error && cb_.on_done);
  config_.read_bytes = std::clamp<size_t>(config_.read_bytes, 1, size_t{1} << 30);
  if (config_.yield_every == 0) config_.yield_every = 1;
}

Replayer::~Replayer() { assert(state_ == State::kNew || state_ == State::kClosed); }

Status Replayer::Start() {
  assert(state_ == State::kNew);
  uv_fs_t req;
  int fd = uv_fs_open(loop_, &req, config_.file.c_str(), UV_FS_O_RDONLY, 0, nullptr);
  uv_fs_req_cleanup(&req);
  if (fd < 0) return Status::Error("cannot open " + config_.file + ": " + uv_strerror(fd));
  fd_ = fd;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  state_ = State::kRunning;
  Pump();  // the buffer is empty: this only starts the first read
  return Status::Ok();
}

void Replayer::Stop() {
  stopped_ = true;
  if (state_ == State::kRunning) uv_timer_stop(&timer_);
}

void Replayer::Close(std::function<void()> done) {
  assert(state_ == State::kRunning);
  Stop();
  on_closed_ = std::move(done);
  state_ = State::kClosing;
  if (!reading_) FinishClose();  // else OnRead comes back here
}

void Replayer::FinishClose() {
  req_.data = this;
  int r = uv_fs_close(loop_, &req_, fd_, OnFileClosed);
  fd_ = -1;
  if (r < 0) {
    uv_fs_req_cleanup(&req_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnTimerClosed);
  }
}

void Replayer::OnFileClosed(uv_fs_t* req) noexcept {
  auto* self = static_cast<Replayer*>(req->data);
  uv_fs_req_cleanup(req);  // a failed close(2) of a file only read from loses nothing
  uv_close(reinterpret_cast<uv_handle_t*>(&self->timer_), OnTimerClosed);
}

void Replayer::OnTimerClosed(uv_handle_t* h) noexcept {
  auto* self = static_cast<Replayer*>(h->data);
  self->state_ = State::kClosed;
  // The callback may destroy the Replayer: nothing of it is touched afterwards.
  auto done = std::move(self->on_closed_);
  if (done) done();
}

void Replayer::OnTimer(uv_timer_t* h) noexcept { static_cast<Replayer*>(h->data)->Pump(); }

void Replayer::StartRead() {
  // Only the unfinished last line is kept; everything before pos_ was handled.
  buf_.erase(0, pos_);
  pos_ = 0;
  if (!chunk_) chunk_ = std::make_unique<char[]>(config_.read_bytes);
  uv_buf_t b = uv_buf_init(chunk_.get(), static_cast<unsigned>(config_.read_bytes));
  req_.data = this;
  reading_ = true;
  int r = uv_fs_read(loop_, &req_, fd_, &b, 1, -1, OnRead);
  if (r < 0) {
    reading_ = false;
    uv_fs_req_cleanup(&req_);
    cb_.on_error(fmt::format("{}: read failed: {}", config_.file, uv_strerror(r)));
    read_failed_ = true;
    Finish();
  }
}

void Replayer::OnRead(uv_fs_t* req) noexcept {
  auto* self = static_cast<Replayer*>(req->data);
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  self->reading_ = false;
  if (self->state_ == State::kClosing) {
    self->FinishClose();
    return;
  }
  if (n < 0) {
    self->cb_.on_error(fmt::format("{}: read failed: {}", self->config_.file,
                                   uv_strerror(static_cast<int>(n))));
    self->read_failed_ = true;
    self->Finish();
    return;
  }
  if (n == 0) {
    self->eof_ = true;
  } else {
    self->buf_.append(self->chunk_.get(), static_cast<size_t>(n));
  }
  self->Pump();
}

bool Replayer::NextLine(std::string_view* line) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (skipping_ || buf_.size() - pos_ > config_.max_line_bytes) {
        if (!skipping_) {
          ++stats_.lines;
          Report(++line_no_, fmt::format("longer than {} bytes", config_.max_line_bytes));
          skipping_ = true;
        }
        buf_.clear();
        pos_ = 0;
      }
      return false;
    }
    std::string_view l(buf_.data() + pos_, nl - pos_);
    pos_ = nl + 1;
    if (skipping_) {  // the end of the over-long line, reported already
      skipping_ = false;
      continue;
    }
    ++line_no_;
    if (l.size() > config_.max_line_bytes) {
      ++stats_.lines;
      Report(line_no_, fmt::format("longer than {} bytes", config_.max_line_bytes));
      continue;
    }
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    *line = l;
    return true;
  }
}

void Replayer::Report(uint64_t line_no, const std::string& reason) {
  ++stats_.malformed;
  cb_.on_error(fmt::format("{}:{}: malformed journal line: {}", config_.file, line_no, reason));
}

void Replayer::HandleLine(std::string_view line) {
  if (IsBlankLine(line)) return;
  ++stats_.lines;
  auto entry = parser_.Parse(line);
  if (!entry) {
    Report(line_no_, entry.error());
    return;
  }
  if (!Selected(config_, entry->event)) {
    ++stats_.filtered;
    return;
  }
  // A long slice makes the cached loop time stale; only pacing needs it fresh.
  if (config_.speed > 0) uv_update_time(loop_);
  uint64_t now = uv_now(loop_);
  uint64_t delay = pacer_.Delay(entry->t_ms, now);
  if (delay >= kAnnouncePauseMs) {
    spdlog::info("replay: pausing {:.1f} s before line {} (the recorded gap at speed {})",
                 static_cast<double>(delay) / 1000.0, line_no_, config_.speed);
  }
  ready_ = Ready{std::move(entry->event), entry->t_ms, now + delay};
}

void Replayer::Pump() {
  if (reading_) return;  // OnRead comes back here
  size_t budget = config_.yield_every;
  while (!stopped_ && !finished_) {
    if (ready_) {
      uint64_t now = uv_now(loop_);
      if (ready_->due_ms > now) {
        uv_timer_start(&timer_, OnTimer, ready_->due_ms - now, 0);
        return;
      }
      Ready r = std::move(*ready_);
      ready_.reset();
      ++stats_.events;
      cb_.on_event(r.event, r.t_ms);
    } else {
      std::string_view line;
      if (NextLine(&line)) {
        HandleLine(line);
      } else if (!eof_) {
        if (!reading_) StartRead();
        return;
      } else {
        // The last line may lack its "\n".
        if (pos_ < buf_.size() && !skipping_) {
          std::string_view last(buf_.data() + pos_, buf_.size() - pos_);
          pos_ = buf_.size();
          ++line_no_;
          if (last.back() == '\r') last.remove_suffix(1);
          HandleLine(last);
          continue;
        }
        Finish();
        return;
      }
    }
    if (--budget == 0) {
      // Let the loop run its other handles (a server sharing it) before going on.
      uv_timer_start(&timer_, OnTimer, 0, 0);
      return;
    }
  }
}

void Replayer::Finish() {
  if (finished_ || stopped_) return;
  finished_ = true;
  cb_.on_done(stats_.malformed > 0 || read_failed_ ? 1 : 0);
}

}  // namespace reactor::journal
