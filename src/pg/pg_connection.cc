#include "pg/pg_connection.h"

#include "core/metrics_text.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <random>

#include "pg/conninfo.h"
#include "pg/queries.h"

namespace reactor::pg {
namespace {

std::string PrivateChannel() {
  std::random_device rd;
  return "reactor_selfcheck_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 1000000000);
}

SessionConfig MakeSessionConfig(const ConnectionConfig& c, const std::string& private_channel) {
  SessionConfig s;
  s.conninfo = c.conninfo;
  s.name = "postgres";
  s.connect_timeout_ms = c.connect_timeout_ms;
  s.backoff_min_ms = c.backoff_min_ms;
  s.backoff_max_ms = c.backoff_max_ms;
  s.silence_check_ms = c.silence_check_ms;
  s.check_timeout_ms = c.check_timeout_ms;
  s.check_sql = queries::SelfCheckSql(private_channel);
  return s;
}

}  // namespace

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
    : config_(std::move(config)),
      sequencer_(sequencer),
      private_channel_(PrivateChannel()),
      session_(loop, MakeSessionConfig(config_, private_channel_)) {
  session_.set_state_observer([this](Session::State s, const std::string& why) { OnSessionState(s, why); });
  session_.set_notify_observer([this](const char* ch, const char* payload) { OnNotify(ch, payload); });
  session_.set_input_observer([this] { OnInput(); });
}

PgConnection::~PgConnection() = default;

void PgConnection::SetState(State s, const std::string& reason) {
  if (s == state_) return;
  const State old = state_;
  state_ = s;
  if (s == State::kDisconnected || s == State::kConnecting) {
    spdlog::debug("postgres: {} -> {} ({})", StateName(old), StateName(s), reason);
  } else {
    spdlog::info("postgres: {} -> {} ({})", StateName(old), StateName(s), reason);
  }
  if (on_state_) on_state_(s, reason);
}

void PgConnection::Start() {
  spdlog::info("postgres: connecting to {} (channel {})", DescribeConnInfo(config_.conninfo), config_.channel);
  session_.Start();
}

void PgConnection::OnSessionState(Session::State s, const std::string& reason) {
  switch (s) {
    case Session::State::kConnecting:
      SetState(State::kConnecting, reason);
      return;
    case Session::State::kReady: {
      SetState(State::kListening, reason);
      auto st = queries::Listen(session_, {config_.channel, private_channel_}, [this](Result<Done> r) {
        if (!r) {
          session_.Reconnect("LISTEN failed: " + r.error());
          return;
        }
        StartCatchUp(sequencer_.NextCatchUpMode());
      });
      if (!st) {
        session_.Reconnect("LISTEN not sent: " + st.message());
        return;
      }
      ReadNotifyKey();
      return;
    }
    case Session::State::kBackoff:
      sequencer_.OnConnectionLost();
      SetState(State::kDisconnected, reason);
      return;
    case Session::State::kClosing:
      SetState(State::kClosing, reason);
      return;
    case Session::State::kClosed:
    case Session::State::kIdle:
      return;
  }
}

// The notifications' MAC key (migration 003, docs/security.md), read on every connection
// after LISTEN and before the catch-up: the sequencer holds what arrives until that read
// completes and verifies it with this key.
void PgConnection::ReadNotifyKey() {
  auto st = queries::NotifyKey(session_, [this](Result<std::string> key) {
    if (!key) {
      if (!usable() && state_ != State::kListening) return;  // lost with the connection
      const std::string& e = key.error();
      session_.Reconnect("reading reactor.notify_key failed: " + e +
                         (e.find("does not exist") != std::string::npos ? " (run `reactor migrate`)"
                          : e.find("permission denied") != std::string::npos
                              ? " (GRANT SELECT ON reactor.notify_key to the reactor's role)"
                              : ""));
      return;
    }
    if (Status s = sequencer_.SetNotifyKey(*key); !s) session_.Reconnect("reactor.notify_key: " + s.message());
  });
  if (!st) session_.Reconnect("reading reactor.notify_key: " + st.message());
}

void PgConnection::StartCatchUp(DeliverySequencer::CatchUpMode mode) {
  const bool catching_up = mode != DeliverySequencer::CatchUpMode::kPrune;
  if (catching_up) SetState(State::kCatchingUp, "reading reactor.job_events");
  auto p = sequencer_.BeginCatchUp(mode);
  auto st = queries::CatchUp(session_, CatchUpRead{p.threshold, std::move(p.seen_ids)},
                             [this, catching_up](Result<CatchUpRows> rows) { OnCatchUp(std::move(rows), catching_up); });
  if (!st) session_.Reconnect("reading reactor.job_events: " + st.message());
}

void PgConnection::OnCatchUp(Result<CatchUpRows> result, bool was_catching_up) {
  if (!result) {
    // A lost connection has already been reported; a failed statement on a live one
    // (a missing schema, a permission) is worth a reconnect and a clear hint.
    if (usable()) {
      const std::string& e = result.error();
      session_.Reconnect("reading reactor.job_events failed: " + e +
                         (e.find("does not exist") != std::string::npos ? " (run `reactor migrate`)" : ""));
    }
    return;
  }
  auto& rows = result->rows;
  stats_.catchup_rows += rows.size();
  const uint64_t recovered_before = sequencer_.stats().recovered;
  sequencer_.OnCatchUpResult(result->horizon, rows);
  const uint64_t recovered = sequencer_.stats().recovered - recovered_before;
  if (was_catching_up) {
    session_.ResetBackoff();
    SetState(State::kReady, "caught up: " + std::to_string(rows.size()) + " rows read, " +
                                std::to_string(recovered) + " missed events recovered");
    for (int64_t id : sequencer_.PendingFetches()) Fetch(id);
  } else if (recovered > 0) {
    spdlog::debug("postgres: prune read delivered {} events ahead of their notification", recovered);
  }
}

void PgConnection::Fetch(int64_t id) {
  if (!usable()) return;  // PendingFetches() is asked again after the next catch-up
  auto st = queries::Fetch(session_, id, [this, id](Result<std::optional<std::string>> r) {
    if (!r) {
      // Lost with the connection: asked again after the next catch-up. A statement error
      // on a live connection would never heal: deliver the truncated form.
      if (usable()) {
        spdlog::error("postgres: fetching event {}: {}", id, r.error());
        sequencer_.OnFetched(id, std::nullopt);
      }
      return;
    }
    if (!*r) {
      spdlog::warn("postgres: event {} is no longer in reactor.job_events; delivering it truncated", id);
      sequencer_.OnFetched(id, std::nullopt);
      return;
    }
    sequencer_.OnFetched(id, std::string_view(**r));
  });
  (void)st;  // not sent: the connection is going; PendingFetches() covers it
}

Status PgConnection::Tick(Reply<TickAnswer> cb) {
  if (!usable()) return Status::Error(std::string("not connected (") + StateName(state_) + ")");
  return queries::Tick(session_, std::move(cb));
}

Status PgConnection::WarmUp(Reply<Done> cb) {
  if (!usable()) return Status::Error(std::string("not connected (") + StateName(state_) + ")");
  return queries::WarmUp(session_, std::move(cb));
}

Status PgConnection::Clock(Reply<int64_t> cb) {
  if (!usable()) return Status::Error(std::string("not connected (") + StateName(state_) + ")");
  return queries::Clock(session_, std::move(cb));
}

void PgConnection::OnNotify(const char* channel, const char* payload) {
  if (config_.channel != channel) return;  // the private self-check channel
  ++stats_.notifications;
  sequencer_.OnNotification(payload);
}

void PgConnection::OnInput() {
  if (state_ == State::kReady && sequencer_.WantsPrune()) StartCatchUp(DeliverySequencer::CatchUpMode::kPrune);
  if (on_batch_) on_batch_();
}

void PgConnection::Close(std::function<void()> done) {
  session_.Close([this, done = std::move(done)] {
    SetState(State::kClosed, "closed");
    if (done) done();
  });
}

void PgConnection::WriteMetrics(MetricsText& m) const {
  const auto& c = session_.stats();
  const auto& n = stats_;
  m.Gauge("reactor_postgres_connected", "1 while LISTEN is active on a live, caught-up connection.",
          ready() ? 1 : 0);
  m.Counter("reactor_postgres_connects_total", "Successful connections.", c.connects);
  m.Counter("reactor_postgres_reconnects_total", "Connections lost after being established.", c.reconnects);
  m.Counter("reactor_postgres_connect_failures_total", "Connection attempts that failed.", c.connect_failures);
  m.Counter("reactor_postgres_queries_total", "Statements sent.", c.statements);
  m.Counter("reactor_postgres_self_checks_total", "Liveness self-checks after a silence.", c.self_checks);
  m.Counter("reactor_notifications_total", "Notifications received on the channel.", n.notifications);
}

}  // namespace reactor::pg
