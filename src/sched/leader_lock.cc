#include "sched/leader_lock.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "pg/conninfo.h"
#include "pg/libpq_util.h"

namespace reactor::sched {

struct LeaderLock::PollHandle {
  uv_poll_t handle;
  LeaderLock* owner;
};

const char* LeaderLock::StateName(State s) {
  switch (s) {
    case State::kIdle: return "idle";
    case State::kConnecting: return "connecting";
    case State::kWaiting: return "waiting";
    case State::kLeader: return "leader";
    case State::kBackoff: return "backoff";
    case State::kClosing: return "closing";
    case State::kClosed: return "closed";
  }
  return "?";
}

LeaderLock::LeaderLock(uv_loop_t* loop, LeaderLockConfig config)
    : loop_(loop), config_(std::move(config)), rng_(std::random_device{}()) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

LeaderLock::~LeaderLock() {
  // REQUIRES: Close() completed.
  assert(timer_closed_ && conn_ == nullptr && poll_ == nullptr);
}

void LeaderLock::SetState(State s) {
  if (s != state_) spdlog::debug("scheduler lock: {} -> {}", StateName(state_), StateName(s));
  state_ = s;
}

void LeaderLock::Start() {
  if (state_ != State::kIdle) return;
  spdlog::info("scheduler: seeking leadership (advisory lock {} on a second connection to {})",
               config_.key, pg::DescribeConnInfo(config_.conninfo));
  BeginConnect();
}

void LeaderLock::BeginConnect() {
  auto params = pg::MakeConnParams(config_.conninfo, pg::ConnPurpose::kServe);
  if (!params) {
    Fail(params.error());
    return;
  }
  // Told apart from the event connection in pg_stat_activity; an application_name in
  // the user's URL still wins, as it does for the other connection.
  for (size_t i = 0; i < params->keywords.size(); ++i) {
    if (params->keywords[i] == "application_name") params->values[i] = "reactor-scheduler";
  }
  auto kw = params->keyword_ptrs();
  auto vals = params->value_ptrs();
  conn_ = PQconnectStartParams(kw.data(), vals.data(), 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    Fail("cannot start connecting: " + pg::OneLine(conn_ ? PQerrorMessage(conn_) : "out of memory"));
    return;
  }
  pg::LogNotices(conn_, "postgres says (scheduler lock)");
  SetState(State::kConnecting);
  uv_timer_start(&timer_, TimerCb, config_.connect_timeout_ms, 0);
  Watch(UV_WRITABLE);  // as if PQconnectPoll had said PGRES_POLLING_WRITING
}

void LeaderLock::ContinueConnect() {
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
      Fail("connect failed: " + pg::OneLine(PQerrorMessage(conn_)));
      return;
  }
}

void LeaderLock::OnConnected() {
  uv_timer_stop(&timer_);
  if (PQsetnonblocking(conn_, 1) != 0) {
    Fail("cannot make the connection non-blocking: " + pg::OneLine(PQerrorMessage(conn_)));
    return;
  }
  // The wait may last days: nothing configured for ordinary sessions may end it.
  std::string sql = "SET statement_timeout = 0; SET lock_timeout = 0; ";
  if (PQserverVersion(conn_) >= 140000) sql += "SET idle_session_timeout = 0; ";
  sql += "SELECT pg_advisory_lock(" + std::to_string(config_.key) + ")";
  if (!PQsendQuery(conn_, sql.c_str())) {
    Fail("sending the lock statement failed: " + pg::OneLine(PQerrorMessage(conn_)));
    return;
  }
  backend_pid_ = PQbackendPID(conn_);
  backoff_ms_ = 0;
  SetState(State::kWaiting);
  spdlog::info("scheduler: waiting for leadership (advisory lock {}, backend pid {})", config_.key,
               backend_pid_);
  const int r = PQflush(conn_);
  if (r < 0) {
    Fail("write failed: " + pg::OneLine(PQerrorMessage(conn_)));
    return;
  }
  Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void LeaderLock::ReadInput() {
  if (!PQconsumeInput(conn_) || PQstatus(conn_) == CONNECTION_BAD) {
    Fail("connection lost: " + pg::OneLine(PQerrorMessage(conn_)));
    return;
  }
  while (conn_ && !PQisBusy(conn_)) {
    PGresult* r = PQgetResult(conn_);
    if (!r) break;
    const ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      std::string err = pg::OneLine(PQresultErrorMessage(r));
      PQclear(r);
      Fail("lock statement failed: " + (err.empty() ? std::string(PQresStatus(status)) : err));
      return;
    }
    PQclear(r);
    // The SETs answer COMMAND_OK; the one row is the lock.
    if (status == PGRES_TUPLES_OK && state_ == State::kWaiting) {
      SetState(State::kLeader);
      ++acquired_;
      spdlog::info("scheduler: leader (advisory lock {} held by backend pid {})", config_.key,
                   backend_pid_);
      if (observer_) observer_(true, "advisory lock acquired");
      if (!conn_) return;
    }
  }
  // Nothing else is expected on this connection; notifications cannot arrive (no
  // LISTEN), so draining them only keeps libpq's buffer small.
  while (conn_) {
    PGnotify* n = PQnotifies(conn_);
    if (!n) break;
    PQfreemem(n);
  }
}

void LeaderLock::Fail(const std::string& reason) {
  const bool was_leader = state_ == State::kLeader;
  Finish();
  uv_timer_stop(&timer_);
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  backoff_ms_ = backoff_ms_ == 0 ? config_.backoff_min_ms
                                 : std::min(config_.backoff_max_ms, backoff_ms_ * 2);
  const uint64_t half = backoff_ms_ / 2;
  const uint64_t delay = half + (half ? rng_() % (half + 1) : 0);
  SetState(State::kBackoff);
  uv_timer_start(&timer_, TimerCb, delay, 0);
  if (was_leader) {
    ++lost_;
    spdlog::warn("scheduler: leadership lost: {}; seeking it again in {} ms", reason, delay);
    if (observer_) observer_(false, reason);
  } else {
    spdlog::warn("scheduler lock connection: {}; retrying in {} ms", reason, delay);
  }
}

void LeaderLock::Finish() {
  if (poll_) {
    poll_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle),
             [](uv_handle_t* h) { delete static_cast<PollHandle*>(h->data); });
    poll_ = nullptr;
    poll_fd_ = -1;
    poll_events_ = 0;
  }
  if (conn_) {
    // Ends the session, which is what releases the lock.
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

void LeaderLock::Watch(int events) {
  const int fd = PQsocket(conn_);
  if (fd < 0) {
    Fail("no socket");
    return;
  }
  if (poll_ && poll_fd_ != fd) {
    // libpq may open a new socket while connecting (another address): re-register.
    poll_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle),
             [](uv_handle_t* h) { delete static_cast<PollHandle*>(h->data); });
    poll_ = nullptr;
  }
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

void LeaderLock::PollCb(uv_poll_t* h, int status, int events) noexcept {
  auto* ph = static_cast<PollHandle*>(h->data);
  if (ph->owner) ph->owner->OnPoll(status, events);
}

void LeaderLock::OnPoll(int status, int events) {
  if (!conn_) return;
  if (status < 0) {
    Fail(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (state_ == State::kConnecting) {
    ContinueConnect();
    return;
  }
  if (events & UV_WRITABLE) {
    const int r = PQflush(conn_);
    if (r < 0) {
      Fail("write failed: " + pg::OneLine(PQerrorMessage(conn_)));
      return;
    }
    Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
    if (!conn_) return;
  }
  if (events & UV_READABLE) ReadInput();
}

void LeaderLock::TimerCb(uv_timer_t* t) noexcept { static_cast<LeaderLock*>(t->data)->OnTimer(); }

void LeaderLock::OnTimer() {
  if (state_ == State::kConnecting) {
    Fail("connect timed out after " + std::to_string(config_.connect_timeout_ms) + " ms");
  } else if (state_ == State::kBackoff) {
    BeginConnect();
  }
}

void LeaderLock::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  if (state_ == State::kLeader) {
    spdlog::info("scheduler: giving up leadership (shutting down)");
  }
  SetState(State::kClosing);
  Finish();
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* self = static_cast<LeaderLock*>(h->data);
    self->timer_closed_ = true;
    self->state_ = State::kClosed;
    if (self->on_closed_) {
      auto cb = std::move(self->on_closed_);
      cb();
    }
  });
}

}  // namespace reactor::sched
