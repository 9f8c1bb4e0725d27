#include "pg/pg_connection.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>

#include "pg/conninfo.h"
#include "pg/libpq_util.h"

namespace reactor::pg {
namespace {

std::string QuoteIdent(PGconn* conn, const std::string& name) {
  char* q = PQescapeIdentifier(conn, name.c_str(), name.size());
  std::string out = q ? q : "\"\"";
  if (q) PQfreemem(q);
  return out;
}

// One snapshot: its horizon as a row with id 0, then every row with txid >= threshold
// (the horizon itself on the first read), payload omitted for ids already seen.
constexpr const char* kCatchUpSql =
    "SELECT 0::bigint AS id, pg_snapshot_xmin(pg_current_snapshot())::text AS txid, "
    "NULL::text AS payload "
    "UNION ALL "
    "SELECT e.id, e.txid::text, CASE WHEN s.id IS NULL THEN e.payload::text END "
    "FROM reactor.job_events e LEFT JOIN unnest($2::bigint[]) AS s(id) ON s.id = e.id "
    "WHERE e.txid >= coalesce($1::xid8, pg_snapshot_xmin(pg_current_snapshot()))";

constexpr const char* kFetchSql = "SELECT payload::text FROM reactor.job_events WHERE id = $1";

constexpr const char* kNotifyKeySql = "SELECT encode(key, 'hex') FROM reactor.notify_key WHERE id = 1";

}  // namespace

struct PgConnection::PollHandle {
  uv_poll_t handle;
  PgConnection* owner;
};

const char* PgConnection::StateName(State s) {
  switch (s) {
    case State::kDisconnected: return "disconnected";
    case State::kConnecting: return "connecting";
    case State::kListening: return "listening";
    case State::kCatchingUp: return "catching up";
    case State::kReady: return "ready";
    case State::kClosing: return "closing";
    case State::kClosed: return "closed";
  }
  return "?";
}

PgConnection::PgConnection(uv_loop_t* loop, ConnectionConfig config, DeliverySequencer& sequencer)
    : loop_(loop), config_(std::move(config)), sequencer_(sequencer), rng_(std::random_device{}()) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  private_channel_ = "reactor_selfcheck_" + std::to_string(getpid()) + "_" +
                     std::to_string(rng_() % 1000000000);
}

PgConnection::~PgConnection() {
  // REQUIRES: Close() completed (every handle closed, connection finished).
  assert(state_ == State::kClosed || (conn_ == nullptr && poll_ == nullptr && timer_closed_));
}

void PgConnection::SetState(State s, const std::string& reason) {
  if (s == state_) return;
  State old = state_;
  state_ = s;
  if (s == State::kDisconnected || s == State::kConnecting) {
    spdlog::debug("postgres: {} -> {} ({})", StateName(old), StateName(s), reason);
  } else {
    spdlog::info("postgres: {} -> {} ({})", StateName(old), StateName(s), reason);
  }
  if (on_state_) on_state_(s, reason);
}

void PgConnection::Start() {
  spdlog::info("postgres: connecting to {} (channel {})", DescribeConnInfo(config_.conninfo),
               config_.channel);
  BeginConnect();
}

void PgConnection::BeginConnect() {
  auto params = MakeConnParams(config_.conninfo, ConnPurpose::kServe);
  if (!params) {
    // The URL was validated at start-up; this cannot change later.
    spdlog::error("postgres: {}", params.error());
    ++stats_.connect_failures;
    ScheduleReconnect();
    return;
  }
  auto kw = params->keyword_ptrs();
  auto vals = params->value_ptrs();
  conn_ = PQconnectStartParams(kw.data(), vals.data(), 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    Fail("cannot start connecting: " + OneLine(conn_ ? PQerrorMessage(conn_) : "out of memory"));
    return;
  }
  LogNotices(conn_, "postgres says");
  SetState(State::kConnecting, "connect started");
  timer_role_ = TimerRole::kConnectTimeout;
  uv_timer_start(&timer_, TimerCb, config_.connect_timeout_ms, 0);
  WatchSocket(UV_WRITABLE);  // as if PQconnectPoll had said PGRES_POLLING_WRITING
}

void PgConnection::ContinueConnect() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      WatchSocket(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      WatchSocket(UV_WRITABLE);
      return;
    case PGRES_POLLING_OK:
      OnConnected();
      return;
    case PGRES_POLLING_FAILED:
    default:
      Fail("connect failed: " + OneLine(PQerrorMessage(conn_)));
      return;
  }
}

void PgConnection::OnConnected() {
  ++stats_.connects;
  ever_connected_ = true;
  if (PQsetnonblocking(conn_, 1) != 0) {
    Fail("cannot make the connection non-blocking: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  WatchSocket(UV_READABLE);
  ArmSilenceTimer();
  SetState(State::kListening, "connected to server " + std::to_string(PQserverVersion(conn_)) +
                                  ", backend pid " + std::to_string(PQbackendPID(conn_)));
  std::string sql = "LISTEN " + QuoteIdent(conn_, config_.channel) + "; LISTEN " +
                    QuoteIdent(conn_, private_channel_);
  queue_.push_front(PendingQuery{std::move(sql), {}, [this](const pg_result*, const std::string& err) {
                                   if (!err.empty()) {
                                     Fail("LISTEN failed: " + err);
                                     return;
                                   }
                                   StartCatchUp(sequencer_.NextCatchUpMode());
                                 }, true});
  queue_.insert(queue_.begin() + 1, NotifyKeyQuery());
  SendNext();
}

// The notifications' MAC key (migration 003, docs/security.md), read on every connection
// after LISTEN and before the catch-up: the sequencer holds what arrives until that read
// completes and verifies it with this key.
PgConnection::PendingQuery PgConnection::NotifyKeyQuery() {
  return PendingQuery{kNotifyKeySql, {}, [this](const pg_result* r, const std::string& err) {
    // LISTEN's callback has begun the catch-up (queued behind this).
    if (state_ != State::kListening && state_ != State::kCatchingUp) return;  // lost with the connection
    if (!err.empty()) {
      Fail("reading reactor.notify_key failed: " + err +
           (err.find("does not exist") != std::string::npos ? " (run `reactor migrate`)"
            : err.find("permission denied") != std::string::npos
                ? " (GRANT SELECT ON reactor.notify_key to the reactor's role)" : ""));
      return;
    }
    auto* res = const_cast<PGresult*>(r);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
      Fail("reactor.notify_key has no row");
      return;
    }
    if (Status s = sequencer_.SetNotifyKey(std::string_view(
            PQgetvalue(res, 0, 0), static_cast<size_t>(PQgetlength(res, 0, 0))));
        !s) {
      Fail("reactor.notify_key: " + s.message());
    }
  }, true};
}

void PgConnection::StartCatchUp(DeliverySequencer::CatchUpMode mode) {
  if (mode != DeliverySequencer::CatchUpMode::kPrune) {
    SetState(State::kCatchingUp, "reading reactor.job_events");
  }
  auto p = sequencer_.BeginCatchUp(mode);
  std::string ids = "{";
  for (size_t i = 0; i < p.seen_ids.size(); ++i) {
    if (i) ids += ',';
    ids += std::to_string(p.seen_ids[i]);
  }
  ids += '}';
  std::optional<std::string> threshold;
  if (p.threshold) threshold = std::to_string(*p.threshold);
  PendingQuery q{kCatchUpSql, {threshold, ids},
                 [this](const pg_result* r, const std::string& err) { OnCatchUpResult(r, err); },
                 true};
  queue_.push_back(std::move(q));
  SendNext();
}

void PgConnection::OnCatchUpResult(const pg_result* r, const std::string& error) {
  if (!error.empty()) {
    if (state_ == State::kCatchingUp || state_ == State::kReady) {
      Fail("reading reactor.job_events failed: " + error +
           (error.find("does not exist") != std::string::npos ? " (run `reactor migrate`)" : ""));
    }
    return;
  }
  const bool was_catching_up = state_ == State::kCatchingUp;
  auto* res = const_cast<PGresult*>(r);
  int n = PQntuples(res);
  std::vector<DeliverySequencer::Row> rows;
  rows.reserve(static_cast<size_t>(n));
  uint64_t horizon = 0;
  for (int i = 0; i < n; ++i) {
    int64_t id = std::strtoll(PQgetvalue(res, i, 0), nullptr, 10);
    uint64_t txid = std::strtoull(PQgetvalue(res, i, 1), nullptr, 10);
    if (id == 0) {
      horizon = txid;
      continue;
    }
    DeliverySequencer::Row row{id, txid, std::nullopt};
    if (!PQgetisnull(res, i, 2)) row.payload.emplace(PQgetvalue(res, i, 2), PQgetlength(res, i, 2));
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  stats_.catchup_rows += rows.size();
  uint64_t recovered_before = sequencer_.stats().recovered;
  sequencer_.OnCatchUpResult(horizon, rows);
  uint64_t recovered = sequencer_.stats().recovered - recovered_before;
  if (was_catching_up) {
    backoff_ms_ = 0;
    SetState(State::kReady, "caught up: " + std::to_string(rows.size()) + " rows read, " +
                                std::to_string(recovered) + " missed events recovered");
    for (int64_t id : sequencer_.PendingFetches()) Fetch(id);
  } else if (recovered > 0) {
    spdlog::debug("postgres: prune read delivered {} events ahead of their notification", recovered);
  }
}

void PgConnection::Fetch(int64_t id) {
  auto st = Query(kFetchSql, {std::to_string(id)}, [this, id](const pg_result* r, const std::string& err) {
    if (!err.empty()) {
      // Lost with the connection: asked again after the next catch-up. A statement error
      // on a live connection would never heal: deliver the truncated form.
      if (state_ == State::kReady || state_ == State::kCatchingUp) {
        spdlog::error("postgres: fetching event {}: {}", id, err);
        sequencer_.OnFetched(id, std::nullopt);
      }
      return;
    }
    auto* res = const_cast<PGresult*>(r);
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
      spdlog::warn("postgres: event {} is no longer in reactor.job_events; delivering it truncated", id);
      sequencer_.OnFetched(id, std::nullopt);
      return;
    }
    sequencer_.OnFetched(id, std::string_view(PQgetvalue(res, 0, 0),
                                              static_cast<size_t>(PQgetlength(res, 0, 0))));
  });
  (void)st;  // not connected: PendingFetches() is asked again after the next catch-up
}

Status PgConnection::Query(std::string sql, std::vector<std::optional<std::string>> params,
                           QueryCallback cb) {
  if (state_ != State::kReady && state_ != State::kCatchingUp) {
    return Status::Error(std::string("not connected (") + StateName(state_) + ")");
  }
  queue_.push_back(PendingQuery{std::move(sql), std::move(params), std::move(cb), false});
  SendNext();
  return Status::Ok();
}

void PgConnection::SendNext() {
  if (in_flight_ || queue_.empty() || !conn_) return;
  PendingQuery& q = queue_.front();
  int ok;
  if (q.params.empty() && q.internal) {
    ok = PQsendQuery(conn_, q.sql.c_str());  // may hold several statements (LISTEN a; LISTEN b)
  } else {
    std::vector<const char*> values;
    for (const auto& p : q.params) values.push_back(p ? p->c_str() : nullptr);
    ok = PQsendQueryParams(conn_, q.sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0);
  }
  if (!ok) {
    Fail("sending a statement failed: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  ++stats_.queries;
  in_flight_ = true;
  Flush();
}

void PgConnection::Flush() {
  int r = PQflush(conn_);
  if (r < 0) {
    Fail("write failed: " + OneLine(PQerrorMessage(conn_)));
  } else {
    WatchSocket(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
  }
}

void PgConnection::WatchSocket(int events) {
  int fd = PQsocket(conn_);
  if (fd < 0) {
    Fail("no socket");
    return;
  }
  if (poll_ && poll_fd_ != fd) StopWatching();
  if (!poll_) {
    poll_ = new PollHandle{};
    poll_->owner = this;
    poll_->handle.data = poll_;
    int rc = uv_poll_init(loop_, &poll_->handle, fd);
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

void PgConnection::StopWatching() {
  if (!poll_) return;
  poll_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), [](uv_handle_t* h) {
    delete static_cast<PollHandle*>(h->data);
  });
  poll_ = nullptr;
  poll_fd_ = -1;
  poll_events_ = 0;
}

void PgConnection::PollCb(uv_poll_t* h, int status, int events) {
  auto* ph = static_cast<PollHandle*>(h->data);
  if (ph->owner) ph->owner->OnPoll(status, events);
}

void PgConnection::OnPoll(int status, int events) {
  if (!conn_) return;
  if (state_ == State::kConnecting) {
    if (status < 0) {
      Fail(std::string("socket error while connecting: ") + uv_strerror(status));
      return;
    }
    ContinueConnect();
    return;
  }
  if (status < 0) {
    Fail(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (events & UV_WRITABLE) {
    Flush();
    if (!conn_) return;
  }
  if (events & UV_READABLE) ReadInput();
}

void PgConnection::ReadInput() {
  if (!PQconsumeInput(conn_)) {
    Fail("connection lost: " + OneLine(PQerrorMessage(conn_)));
    return;
  }
  ArmSilenceTimer();
  for (;;) {
    DrainNotifications();
    if (!conn_ || !in_flight_ || PQisBusy(conn_)) break;
    PGresult* r = PQgetResult(conn_);
    if (r) {
      // A multi-statement string yields one result each: keep the first error, else the last.
      bool kept_error = in_flight_result_ && (PQresultStatus(in_flight_result_) == PGRES_FATAL_ERROR ||
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
    PendingQuery q = std::move(queue_.front());
    queue_.pop_front();
    in_flight_ = false;
    PGresult* res = in_flight_result_;
    in_flight_result_ = nullptr;
    std::string err;
    if (!res) {
      err = "no result";
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
      err = OneLine(PQresultErrorMessage(res));
      if (err.empty()) err = PQresStatus(PQresultStatus(res));
    }
    q.cb(res, err);
    if (res) PQclear(res);
    if (!conn_) return;  // the callback failed the connection
    SendNext();
  }
  if (!conn_) return;
  if (state_ == State::kReady && sequencer_.WantsPrune()) {
    StartCatchUp(DeliverySequencer::CatchUpMode::kPrune);
  }
  if (on_batch_) on_batch_();
}

void PgConnection::DrainNotifications() {
  while (PGnotify* n = PQnotifies(conn_)) {
    if (config_.channel == n->relname) {
      ++stats_.notifications;
      sequencer_.OnNotification(n->extra ? std::string_view(n->extra) : std::string_view());
    }
    PQfreemem(n);
  }
}

void PgConnection::ArmSilenceTimer() {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  timer_role_ = TimerRole::kSilence;
  uv_timer_start(&timer_, TimerCb, config_.silence_check_ms, 0);
}

void PgConnection::TimerCb(uv_timer_t* t) { static_cast<PgConnection*>(t->data)->OnTimer(); }

void PgConnection::OnTimer() {
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
        spdlog::debug("postgres: {} ms of silence; checking the connection", config_.silence_check_ms);
        queue_.push_back(PendingQuery{"SELECT pg_notify($1, 'check')", {private_channel_},
                                      [](const pg_result*, const std::string&) {}, true});
        SendNext();
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

void PgConnection::Fail(const std::string& reason) {
  const bool was_up = state_ == State::kListening || state_ == State::kCatchingUp || state_ == State::kReady;
  if (was_up) {
    ++stats_.reconnects;
    spdlog::warn("postgres: connection lost: {}", reason);
  } else {
    ++stats_.connect_failures;
    spdlog::warn("postgres: {}", reason);
  }
  Drop();
  uv_timer_stop(&timer_);
  timer_role_ = TimerRole::kNone;
  sequencer_.OnConnectionLost();
  SetState(State::kDisconnected, reason);
  FailQueued("connection lost: " + reason);  // callbacks see the disconnected state
  if (state_ == State::kDisconnected) ScheduleReconnect();
}

void PgConnection::Drop() {
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
}

void PgConnection::FailQueued(const std::string& why) {
  std::deque<PendingQuery> failed;
  failed.swap(queue_);
  for (auto& q : failed) q.cb(nullptr, why);
}

void PgConnection::ScheduleReconnect() {
  backoff_ms_ = backoff_ms_ == 0 ? config_.backoff_min_ms
                                 : std::min(config_.backoff_max_ms, backoff_ms_ * 2);
  uint64_t half = backoff_ms_ / 2;
  uint64_t delay = half + (half ? rng_() % (half + 1) : 0);
  spdlog::info("postgres: reconnecting in {} ms", delay);
  timer_role_ = TimerRole::kBackoff;
  uv_timer_start(&timer_, TimerCb, delay, 0);
}

void PgConnection::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  SetState(State::kClosing, "shutting down");
  Drop();
  FailQueued("shutting down");
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), TimerClosedCb);
}

void PgConnection::TimerClosedCb(uv_handle_t* h) {
  auto* self = static_cast<PgConnection*>(h->data);
  self->timer_closed_ = true;
  self->state_ = State::kClosed;
  if (self->on_closed_) {
    auto done = std::move(self->on_closed_);
    done();
  }
}

}  // namespace reactor::pg
