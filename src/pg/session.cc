#include "pg/session.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "pg/conninfo.h"
#include "pg/libpq_util.h"

namespace reactor::pg {

struct Session::PollHandle {
  uv_poll_t handle;
  Session* owner;
};

// A cancel request runs PQcancel (a blocking connect + write) on the thread pool. It
// outlives nothing: Close() waits for it.
struct Session::CancelWork {
  uv_work_t req;
  Session* owner;
  PGcancel* cancel;
  bool ok = false;
  char err[256] = {0};
};

const char* Session::StateName(State s) {
  switch (s) {
    case State::kIdle: return "idle";
    case State::kConnecting: return "connecting";
    case State::kReady: return "ready";
    case State::kBackoff: return "backoff";
    case State::kClosing: return "closing";
    case State::kClosed: return "closed";
  }
  return "?";
}

Session::Session(uv_loop_t* loop, SessionConfig config)
    : loop_(loop), config_(std::move(config)), notice_prefix_(config_.name + " says"), rng_(std::random_device{}()) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

Session::~Session() {
  // REQUIRES: Close() completed.
  assert(state_ == State::kClosed);
}

void Session::SetState(State s, const std::string& reason) {
  if (s == state_) return;
  const State old = state_;
  state_ = s;
  spdlog::debug("{}: {} -> {} ({})", config_.name, StateName(old), StateName(s), reason);
  if (on_state_) on_state_(s, reason);
}

void Session::Start() {
  if (state_ != State::kIdle) return;
  BeginConnect();
}

void Session::BeginConnect() {
  auto params = MakeConnParams(config_.conninfo, ConnPurpose::kServe);
  if (!params) {
    // Validated at start-up; it cannot change later. Keep retrying, loudly.
    Fail(params.error());
    return;
  }
  if (!config_.application_name.empty()) {
    // The reactor's default comes first in the list; a name in the user's URL wins.
    for (size_t i = 0; i < params->keywords.size(); ++i) {
      if (params->keywords[i] == "application_name") params->values[i] = config_.application_name;
    }
  }
  auto kw = params->keyword_ptrs();
  auto vals = params->value_ptrs();
  conn_ = PQconnectStartParams(kw.data(), vals.data(), 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    Fail("cannot start connecting: " + OneLine(conn_ ? PQerrorMessage(conn_) : "out of memory"));
    return;
  }
  LogNotices(conn_, notice_prefix_.c_str());
  SetState(State::kConnecting, "connect started");
  if (state_ != State::kConnecting) return;
  timer_role_ = TimerRole::kConnectTimeout;
  uv_timer_start(&timer_, TimerCb, config_.connect_timeout_ms, 0);
  Watch(UV_WRITABLE);  // as if PQconnectPoll had said PGRES_POLLING_WRITING
}

void Session::ContinueConnect() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      Watch(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      Watch(UV_WRITABLE);
      return;
    case PGRES_POLLING_OK:
      OnConnected();
      return;
    case PGRES_POLLING_FAILED:
    default:
      // libpq's own words ("Connection refused", "password authentication failed"...).
      Fail("connect failed: " + OneLine(PQerrorMessage(conn_)));
      return;
  }
}

void Session::OnConnected() {
  uv_timer_stop(&timer_);
  timer_role_ = TimerRole::kNone;
  if (PQsetnonblocking(conn_, 1) != 0) {
    Fail("cannot make the connection non-blocking: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  ++stats_.connects;
  backend_pid_ = PQbackendPID(conn_);
  server_version_ = PQserverVersion(conn_);
  Watch(UV_READABLE);
  if (!conn_) return;
  ArmSilence();
  SetState(State::kReady, "connected to server " + std::to_string(server_version_) +
                              ", backend pid " + std::to_string(backend_pid_));
}

Status Session::Submit(Statement st, Ticket* ticket) {
  if (state_ != State::kReady) {
    return Status::Error(std::string("not connected (") + StateName(state_) + ")");
  }
  const Ticket t = next_ticket_++;
  if (ticket) *ticket = t;
  if (st.urgent) {
    // Ahead of everything not yet sent, behind other urgent ones (their order holds).
    auto it = queue_.begin();
    if (in_flight_ && it != queue_.end()) ++it;
    while (it != queue_.end() && it->st.urgent) ++it;
    queue_.insert(it, Pending{t, std::move(st)});
  } else {
    queue_.push_back(Pending{t, std::move(st)});
  }
  SendNext();
  return Status::Ok();
}

bool Session::Cancel(Ticket ticket) {
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Pending& p) { return p.ticket == ticket; });
  if (it == queue_.end()) return false;
  ++stats_.cancels;
  if (it == queue_.begin() && in_flight_) {
    if (in_flight_cancelled_) return true;
    in_flight_cancelled_ = true;
    SendCancel();
    return true;
  }
  Callback cb = std::move(it->st.cb);
  queue_.erase(it);
  cb(nullptr, "cancelled");
  return true;
}

void Session::SendCancel() {
  PGcancel* c = conn_ ? PQgetCancel(conn_) : nullptr;
  if (!c) return;  // the answer is still discarded when it comes
  auto* w = new CancelWork{};
  w->owner = this;
  w->cancel = c;
  w->req.data = w;
  ++cancels_running_;
  int rc = uv_queue_work(
      loop_, &w->req,
      [](uv_work_t* req) {
        auto* work = static_cast<CancelWork*>(req->data);
        work->ok = PQcancel(work->cancel, work->err, sizeof work->err) == 1;
      },
      [](uv_work_t* req, int) {
        auto* work = static_cast<CancelWork*>(req->data);
        Session* self = work->owner;
        if (!work->ok) spdlog::debug("{}: cancel request failed: {}", self->config_.name, OneLine(work->err));
        PQfreeCancel(work->cancel);
        delete work;
        --self->cancels_running_;
        self->MaybeFinishClose();
        if (self->cancels_running_ == 0) self->SendNext();
      });
  if (rc != 0) {
    PQfreeCancel(c);
    delete w;
    --cancels_running_;
  }
}

void Session::SendNext() {
  if (in_flight_ || queue_.empty() || !conn_ || state_ != State::kReady) return;
  // A cancel request still on its way would hit whatever runs when it arrives: the next
  // statement waits until the server has received it (the cancelled one had finished).
  if (cancels_running_ > 0) return;
  Statement& q = queue_.front().st;
  int ok;
  if (q.simple && q.params.empty()) {
    ok = PQsendQuery(conn_, q.sql.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(q.params.size());
    for (const auto& p : q.params) values.push_back(p ? p->c_str() : nullptr);
    ok = PQsendQueryParams(conn_, q.sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0);
  }
  if (!ok) {
    Fail("sending a statement failed: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  ++stats_.statements;
  in_flight_ = true;
  in_flight_cancelled_ = false;
  Flush();
}

void Session::Flush() {
  const int r = PQflush(conn_);
  if (r < 0) {
    Fail("write failed: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void Session::Watch(int events) {
  const int fd = PQsocket(conn_);
  if (fd < 0) {
    Fail("connect failed: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  // libpq may open a new socket while connecting (the next address): re-register.
  if (poll_ && poll_fd_ != fd) StopWatching();
  if (!poll_) {
    poll_ = new PollHandle{};
    poll_->owner = this;
    poll_->handle.data = poll_;
    const int rc = uv_poll_init(loop_, &poll_->handle, fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      Fail(std::string("uv_poll_init: ") + uv_strerror(rc));
      return;
    }
    poll_fd_ = fd;
    poll_events_ = 0;
  }
  if (events != poll_events_) {
    uv_poll_start(&poll_->handle, events, PollCb);
    poll_events_ = events;
  }
}

void Session::StopWatching() {
  if (!poll_) return;
  poll_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle),
           [](uv_handle_t* h) { delete static_cast<PollHandle*>(h->data); });
  poll_ = nullptr;
  poll_fd_ = -1;
  poll_events_ = 0;
}

void Session::PollCb(uv_poll_t* h, int status, int events) noexcept {
  auto* ph = static_cast<PollHandle*>(h->data);
  if (ph->owner) ph->owner->OnPoll(status, events);
}

void Session::OnPoll(int status, int events) {
  if (!conn_) return;
  if (state_ == State::kConnecting) {
    // A poll error here (EBADF after libpq closed a refused socket) says nothing;
    // PQconnectPoll reports what really happened.
    ContinueConnect();
    return;
  }
  if (status < 0) {
    // As above: libpq's reading of the socket says more than the poll's errno.
    if (!PQconsumeInput(conn_)) {
      Fail("connection lost: " + OneLine(PQerrorMessage(conn_)));
    } else {
      Fail(std::string("socket error: ") + uv_strerror(status));
    }
    return;
  }
  if (events & UV_WRITABLE) {
    Flush();
    if (!conn_) return;
  }
  if (events & UV_READABLE) ReadInput();
}

void Session::ReadInput() {
  if (!PQconsumeInput(conn_)) {
    Fail("connection lost: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  ArmSilence();
  for (;;) {
    while (PGnotify* n = PQnotifies(conn_)) {
      if (on_notify_) on_notify_(n->relname, n->extra ? n->extra : "");
      PQfreemem(n);
      if (!conn_) return;
    }
    if (!in_flight_ || PQisBusy(conn_)) break;
    PGresult* r = PQgetResult(conn_);
    if (r) {
      // Several statements yield one result each: keep the first error, else the last.
      const bool kept_error =
          in_flight_result_ && (PQresultStatus(in_flight_result_) == PGRES_FATAL_ERROR ||
                                PQresultStatus(in_flight_result_) == PGRES_BAD_RESPONSE);
      if (kept_error) {
        PQclear(r);
      } else {
        if (in_flight_result_) PQclear(in_flight_result_);
        in_flight_result_ = r;
      }
      continue;
    }
    // The statement is complete.
    Pending done = std::move(queue_.front());
    queue_.pop_front();
    in_flight_ = false;
    const bool cancelled = in_flight_cancelled_;
    in_flight_cancelled_ = false;
    PGresult* res = in_flight_result_;
    in_flight_result_ = nullptr;
    std::string err;
    if (cancelled) {
      err = "cancelled";
    } else if (!res) {
      err = "no result";
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK &&
               PQresultStatus(res) != PGRES_EMPTY_QUERY) {
      err = OneLine(PQresultErrorMessage(res));
      if (err.empty()) err = PQresStatus(PQresultStatus(res));
    }
    // A statement the server refused keeps its result (its error fields, e.g. SQLSTATE).
    done.st.cb(err.empty() || (!cancelled && res) ? res : nullptr, err);
    if (res) PQclear(res);
    if (!conn_) return;  // the callback reconnected or closed
    SendNext();
    if (!conn_) return;
  }
  if (on_input_) on_input_();
}

void Session::ArmSilence() {
  if (config_.silence_check_ms == 0 || state_ == State::kClosing || state_ == State::kClosed) return;
  timer_role_ = TimerRole::kSilence;
  uv_timer_start(&timer_, TimerCb, config_.silence_check_ms, 0);
}

void Session::TimerCb(uv_timer_t* t) noexcept { static_cast<Session*>(t->data)->OnTimer(); }

void Session::OnTimer() {
  switch (timer_role_) {
    case TimerRole::kBackoff:
      timer_role_ = TimerRole::kNone;
      BeginConnect();
      return;
    case TimerRole::kConnectTimeout:
      Fail("connect timed out after " + std::to_string(config_.connect_timeout_ms) + " ms");
      return;
    case TimerRole::kSilence:
      timer_role_ = TimerRole::kCheck;
      uv_timer_start(&timer_, TimerCb, config_.check_timeout_ms, 0);
      if (state_ == State::kReady && !in_flight_) {
        ++stats_.self_checks;
        spdlog::debug("{}: {} ms of silence; checking the connection", config_.name,
                      config_.silence_check_ms);
        (void)Submit(Statement{config_.check_sql, {}, [](const pg_result*, const std::string&) {}});
      }
      return;
    case TimerRole::kCheck:
      Fail("no answer from the server within " + std::to_string(config_.check_timeout_ms) +
           " ms (connection presumed dead)");
      return;
    case TimerRole::kNone:
      return;
  }
}

void Session::Reconnect(const std::string& reason) {
  if (state_ == State::kClosing || state_ == State::kClosed || state_ == State::kIdle) return;
  Fail(reason);
}

void Session::Fail(const std::string& reason) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  if (state_ == State::kReady) {
    ++stats_.reconnects;
    spdlog::warn("{}: connection lost: {}", config_.name, reason);
  } else {
    ++stats_.connect_failures;
    spdlog::warn("{}: {}", config_.name, reason);
  }
  Drop();
  uv_timer_stop(&timer_);
  timer_role_ = TimerRole::kNone;
  SetState(State::kBackoff, reason);
  FailQueued("connection lost: " + reason);  // callbacks see the new state
  if (state_ == State::kBackoff && timer_role_ == TimerRole::kNone && !conn_) ScheduleReconnect();
}

void Session::Drop() {
  StopWatching();  // before PQfinish closes the socket the poll handle watches
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  if (in_flight_result_) {
    PQclear(in_flight_result_);
    in_flight_result_ = nullptr;
  }
  in_flight_ = false;
  in_flight_cancelled_ = false;
}

void Session::FailQueued(const std::string& why) {
  std::deque<Pending> failed;
  failed.swap(queue_);
  for (auto& p : failed) p.st.cb(nullptr, why);
}

void Session::ScheduleReconnect() {
  backoff_ms_ = backoff_ms_ == 0 ? config_.backoff_min_ms : std::min(config_.backoff_max_ms, backoff_ms_ * 2);
  const uint64_t half = backoff_ms_ / 2;
  const uint64_t delay = half + (half ? rng_() % (half + 1) : 0);
  spdlog::info("{}: reconnecting in {} ms", config_.name, delay);
  timer_role_ = TimerRole::kBackoff;
  uv_timer_start(&timer_, TimerCb, delay, 0);
}

std::string Session::QuoteIdentifier(const std::string& name) const {
  if (!conn_) return "\"\"";
  char* q = PQescapeIdentifier(conn_, name.c_str(), name.size());
  std::string out = q ? q : "\"\"";
  if (q) PQfreemem(q);
  return out;
}

void Session::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  SetState(State::kClosing, "shutting down");
  Drop();
  FailQueued("shutting down");
  uv_timer_stop(&timer_);
  timer_role_ = TimerRole::kNone;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* self = static_cast<Session*>(h->data);
    self->timer_closed_ = true;
    self->MaybeFinishClose();
  });
}

void Session::MaybeFinishClose() {
  if (state_ != State::kClosing || !timer_closed_ || cancels_running_ > 0) return;
  state_ = State::kClosed;
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    cb();
  }
}

}  // namespace reactor::pg
