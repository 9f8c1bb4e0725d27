#include "pg/client_reads.h"

#include "core/metrics_text.h"

#include <spdlog/spdlog.h>

#include "pg/queries.h"

namespace reactor::pg {
namespace {

SessionConfig MakeSessionConfig(const ClientReadsConfig& c) {
  SessionConfig s;
  s.conninfo = c.conninfo;
  s.name = "client reads";
  s.application_name = "reactor-reads";
  s.connect_timeout_ms = c.connect_timeout_ms;
  s.backoff_min_ms = 100;
  s.backoff_max_ms = 10000;
  return s;
}

}  // namespace

PgClientReads::PgClientReads(uv_loop_t* loop, ClientReadsConfig config)
    : config_(std::move(config)), session_(loop, MakeSessionConfig(config_)) {
  session_.set_state_observer([this](Session::State s, const std::string& why) { OnSessionState(s, why); });
}

PgClientReads::~PgClientReads() = default;

void PgClientReads::OnSessionState(Session::State s, const std::string& reason) {
  if (s == Session::State::kReady) {
    timeout_set_ = false;
    auto st = queries::SetStatementTimeout(session_, config_.statement_timeout_ms, [this](Result<Done> r) {
      if (!r) {
        if (session_.ready()) session_.Reconnect("setting statement_timeout: " + r.error());
        return;
      }
      timeout_set_ = true;
      session_.ResetBackoff();
      std::deque<Ticket> waiting;
      waiting.swap(waiting_);
      for (Ticket t : waiting) Submit(t);
    });
    if (!st) session_.Reconnect(st.message());
    return;
  }
  if (s == Session::State::kBackoff || s == Session::State::kClosing) {
    // Submitted reads get their error from the session; those still waiting get it here.
    timeout_set_ = false;
    std::deque<Ticket> waiting;
    waiting.swap(waiting_);
    for (Ticket t : waiting) {
      auto it = reads_.find(t);
      if (it == reads_.end()) continue;
      auto fail = std::move(it->second.fail);
      Finish(t);
      fail("database unavailable: " + reason);
    }
  }
}

Result<PgClientReads::Ticket> PgClientReads::Admit(Ticket t, uint64_t owner,
                                                   std::function<Status(Session::Ticket*)> submit,
                                                   std::function<void(const std::string&)> fail) {
  const auto st = session_.state();
  if (st == Session::State::kBackoff || st == Session::State::kClosing || st == Session::State::kClosed) {
    ++stats_.refused_disconnected;
    return Status::Error("database unavailable");
  }
  if (reads_.size() >= config_.max_total) {
    ++stats_.refused_total;
    return Status::Error("too many database reads in progress (" + std::to_string(config_.max_total) +
                         "); try again");
  }
  size_t& mine = per_owner_[owner];
  if (mine >= config_.max_per_owner) {
    ++stats_.refused_per_owner;
    return Status::Error("this connection already has " + std::to_string(mine) +
                         " database reads in progress");
  }
  ++mine;
  ++stats_.reads;
  reads_.emplace(t, Read{owner, std::move(submit), std::move(fail), std::nullopt});
  if (session_.ready() && timeout_set_) {
    Submit(t);
  } else {
    waiting_.push_back(t);
  }
  return t;
}

void PgClientReads::Submit(Ticket t) {
  auto it = reads_.find(t);
  if (it == reads_.end()) return;
  Session::Ticket st_ticket = 0;
  // Called from a copy: a send that fails at once runs this read's callback, which
  // frees its entry (and the function in it) before the call returns.
  const auto submit = it->second.submit;
  Status st = submit(&st_ticket);
  it = reads_.find(t);
  if (it == reads_.end()) return;
  if (!st) {
    auto fail = std::move(it->second.fail);
    Finish(t);
    fail(st.message());
    return;
  }
  it->second.session_ticket = st_ticket;
}

void PgClientReads::Finish(Ticket t) {
  auto it = reads_.find(t);
  if (it == reads_.end()) return;
  auto o = per_owner_.find(it->second.owner);
  if (o != per_owner_.end() && --o->second == 0) per_owner_.erase(o);
  reads_.erase(it);
}

template <class T>
Reply<T> PgClientReads::Wrap(Ticket t, Reply<T> cb) {
  return [this, t, cb = std::move(cb)](Result<T> r) {
    if (!r && r.error() != "cancelled") ++stats_.failed;
    Finish(t);
    cb(std::move(r));
  };
}

template <class T, class Send>
Result<ClientReads::Ticket> PgClientReads::Start(uint64_t owner, Reply<T> cb, Send send) {
  const Ticket t = next_++;
  auto shared = std::make_shared<Reply<T>>(Wrap<T>(t, std::move(cb)));
  return Admit(
      t, owner,
      [this, send = std::move(send), shared](Session::Ticket* st) {
        return send(session_, [shared](Result<T> r) { (*shared)(std::move(r)); }, st);
      },
      [shared](const std::string& e) { (*shared)(Status::Error(e)); });
}

Result<ClientReads::Ticket> PgClientReads::Resume(uint64_t owner, ResumeQuery q, Reply<ResumeRows> cb) {
  return Start<ResumeRows>(owner, std::move(cb), [q = std::move(q)](Session& s, Reply<ResumeRows> r, Session::Ticket* t) {
    return queries::Resume(s, q, std::move(r), t);
  });
}

Result<ClientReads::Ticket> PgClientReads::Snapshot(uint64_t owner, SnapshotQuery q, Reply<SnapshotRows> cb) {
  return Start<SnapshotRows>(owner, std::move(cb), [q = std::move(q)](Session& s, Reply<SnapshotRows> r, Session::Ticket* t) {
    return queries::Snapshot(s, q, std::move(r), t);
  });
}

Result<ClientReads::Ticket> PgClientReads::History(uint64_t owner, HistoryQuery q, Reply<HistoryRows> cb) {
  return Start<HistoryRows>(owner, std::move(cb), [q = std::move(q)](Session& s, Reply<HistoryRows> r, Session::Ticket* t) {
    return queries::History(s, q, std::move(r), t);
  });
}

Result<ClientReads::Ticket> PgClientReads::Action(uint64_t owner, ActionRequest q, Reply<ActionResult> cb) {
  return Start<ActionResult>(owner, std::move(cb), [q = std::move(q)](Session& s, Reply<ActionResult> r, Session::Ticket* t) {
    return queries::Action(s, q, std::move(r), t);
  });
}

Result<ClientReads::Ticket> PgClientReads::Counts(uint64_t owner, Reply<CountsRows> cb) {
  return Start<CountsRows>(owner, std::move(cb), [](Session& s, Reply<CountsRows> r, Session::Ticket* t) {
    return queries::Counts(s, std::move(r), t);
  });
}

void PgClientReads::Cancel(Ticket t) {
  auto it = reads_.find(t);
  if (it == reads_.end()) return;
  ++stats_.cancelled;
  if (it->second.session_ticket) {
    // Queued on the session: answered "cancelled" now; in flight: when the server stops.
    // Either way the place is free from this moment.
    const Session::Ticket st = *it->second.session_ticket;
    auto fail = std::move(it->second.fail);
    Finish(t);
    (void)fail;
    session_.Cancel(st);
    return;
  }
  for (auto w = waiting_.begin(); w != waiting_.end(); ++w) {
    if (*w == t) {
      waiting_.erase(w);
      break;
    }
  }
  auto fail = std::move(it->second.fail);
  Finish(t);
  fail("cancelled");
}

void PgClientReads::Close(std::function<void()> done) { session_.Close(std::move(done)); }

void PgClientReads::WriteMetrics(MetricsText& m) const {
  const auto& r = stats_;
  m.Gauge("reactor_client_reads", "Database reads for clients (resume, snapshot) outstanding.",
          static_cast<double>(outstanding()));
  m.Counter("reactor_client_reads_total", "Database reads for clients started.", r.reads);
  m.Counter("reactor_client_reads_refused_total", "Database reads for clients refused.", r.refused_per_owner,
            "reason=\"per_connection\"");
  m.Counter("reactor_client_reads_refused_total", "Database reads for clients refused.", r.refused_total,
            "reason=\"total\"");
  m.Counter("reactor_client_reads_refused_total", "Database reads for clients refused.", r.refused_disconnected,
            "reason=\"disconnected\"");
  m.Counter("reactor_client_reads_cancelled_total", "Database reads cancelled (subscription replaced or gone).",
            r.cancelled);
  m.Counter("reactor_client_reads_failed_total", "Database reads for clients that failed (e.g. timed out).",
            r.failed);
}

}  // namespace reactor::pg
