// The operator's console on the hub: actions, a job's history, the totals by status ×
// job type (docs/protocol.md, "Actions", "A job's history", "Counts").
#include <algorithm>

#include "hub/hub.h"

namespace reactor::hub {
namespace {

// A `history` answer stops adding events past this many bytes (`more` says the rest
// exists): 500 events of a table with large results could otherwise be many megabytes.
constexpr size_t kHistoryReplyBytes = 1 << 20;
// A read asked for because the stream could not account for an event is made at most
// this often (a steady run of oversize events must not become a steady GROUP BY).
constexpr uint64_t kCountsMinReadGapMs = 10000;
// A failed or refused totals read is tried again after this long.
constexpr uint64_t kCountsRetryMs = 1000;
// At most this many status × job type pairs (the read says so rather than sending more).
constexpr size_t kMaxCountsPairs = 10000;

}  // namespace

void Hub::OnAction(Session& s, const ClientMessage& m) {
  auto refuse = [&](const char* code, const std::string& why) {
    ++stats_.actions_refused;
    if (std::string_view(code) == "forbidden") ++stats_.forbidden;
    SendControl(s, ErrorMessage(code, why, m.id));
  };
  if (!s.authenticated_) return refuse("forbidden", "authenticate first ({\"op\":\"auth\",\"token\":...})");
  pg::ActionRequest q;
  q.job_id = m.job_id;
  q.action = m.action;
  q.arg = m.arg;
  if (auth_required()) {
    if (s.who_.sees_all) {
      q.actor = !s.who_.user_id.empty() ? s.who_.user_id : "role:" + s.who_.role;
    } else if (!config_.allow_user_actions) {
      return refuse("forbidden", "actions by users are not enabled on this server (--allow-user-actions)");
    } else {
      q.actor = s.who_.user_id;
      q.only_user = s.who_.user_id;
    }
  } else {
    // No secret: anyone who can reach the port is "authenticated"; only a local peer acts.
    if (!s.loopback_) return refuse("forbidden", "without --jwt-secret, actions are accepted from loopback peers only");
    q.actor = "local";
  }
  if (!hooks_.reads) return refuse("unavailable", "no database (replay)");
  const uint64_t sid = s.id();
  const std::string id = m.id, action = m.action, job_id = m.job_id;
  const bool user = !q.only_user.empty();
  auto t = hooks_.reads->Action(sid, std::move(q), [this, sid, id, action, job_id, user](Result<pg::ActionResult> r) {
    Session* live = Live(sid);
    if (!r) {
      ++stats_.actions_failed;
      if (live) SendControl(*live, ErrorMessage("unavailable", "action not done: " + r.error(), id));
      return;
    }
    if (!r->code.empty()) {
      // A user is not told whether another user's job exists: "not yours" and "no such
      // job" read the same.
      if (user && (r->code == "not_found" || r->code == "forbidden")) {
        r->code = "forbidden";
        r->message = "no job " + JsonString(job_id) + " of yours";
      }
      ++stats_.actions_refused;
      if (r->code == "forbidden") ++stats_.forbidden;
      if (live) SendControl(*live, ErrorMessage(r->code, r->message, id));
      return;
    }
    ++stats_.actions_ok;
    if (live) SendControl(*live, AckMessage(id, action, job_id, r->event_id));
  });
  if (!t) {
    ++stats_.reads_refused;
    refuse("unavailable", "action not started: " + t.error());
  }
}

void Hub::OnHistory(Session& s, const ClientMessage& m) {
  if (!s.authenticated_) {
    ++stats_.forbidden;
    SendControl(s, ErrorMessage("forbidden", "authenticate first ({\"op\":\"auth\",\"token\":...})", m.id));
    return;
  }
  if (!hooks_.reads) {
    SendControl(s, ErrorMessage("unavailable", "no database (replay)", m.id));
    return;
  }
  pg::HistoryQuery q;
  q.job_id = m.job_id;
  q.source = m.source;
  q.before = m.before;
  if (!s.who_.sees_all) q.only_user = s.who_.user_id;
  q.limit = std::min<size_t>(m.limit ? m.limit : 100, config_.max_history_events);
  const size_t limit = q.limit;
  const uint64_t sid = s.id();
  const std::string id = m.id, job_id = m.job_id;
  // The read's ticket, once History() has returned it; `done` when the answer came first
  // (a read that failed at once answers inside the call).
  struct Pending {
    pg::ClientReads::Ticket ticket = 0;
    bool done = false;
  };
  auto pending = std::make_shared<Pending>();
  auto t = hooks_.reads->History(sid, std::move(q), [this, sid, id, job_id, limit, pending](Result<pg::HistoryRows> r) {
    pending->done = true;
    if (!r && r.error() == "cancelled") return;
    Session* live = Live(sid);
    if (!live) return;
    auto& mine = live->history_reads_;
    mine.erase(std::remove(mine.begin(), mine.end(), pending->ticket), mine.end());
    if (!r) {
      SendControl(*live, ErrorMessage("unavailable", "history not read: " + r.error(), id));
      return;
    }
    ++stats_.history_reads;
    bool more = r->payloads.size() > limit;
    std::string events = "[";
    size_t n = 0;
    for (const auto& p : r->payloads) {
      if (n == limit || (n > 0 && events.size() + p.size() > kHistoryReplyBytes)) {
        more = true;
        break;
      }
      if (n++) events += ',';
      events += p;
    }
    events += ']';
    SendControl(*live, HistoryMessage(id, job_id, events, more));
  });
  if (!t) {
    ++stats_.reads_refused;
    SendControl(s, ErrorMessage("unavailable", "history not read: " + t.error(), m.id));
    return;
  }
  pending->ticket = *t;
  if (!pending->done) s.history_reads_.push_back(*t);
}

void Hub::OnCounts(Session& s, const ClientMessage& m) {
  if (!m.on) {
    if (!s.counts_) return;
    s.counts_ = false;
    counts_sessions_.erase(std::remove(counts_sessions_.begin(), counts_sessions_.end(), s.id()),
                           counts_sessions_.end());
    return;
  }
  if (!s.authenticated_ || !s.who_.sees_all) {
    ++stats_.forbidden;
    SendControl(s, ErrorMessage("forbidden", "the totals cover every user's jobs: privileged tokens only", m.id));
    return;
  }
  if (!hooks_.reads) {
    SendControl(s, ErrorMessage("unavailable", "no database (replay)", m.id));
    return;
  }
  if (!s.counts_) {
    s.counts_ = true;
    s.counts_version_ = 0;
    counts_sessions_.push_back(s.id());
  }
  if (counts_.known()) SendCounts(&s);
  // A first viewer after a quiet spell: the totals were kept from the stream meanwhile,
  // but deletes are not in it.
  if (!counts_reading_ && (!counts_.known() || (config_.counts_refresh_ms &&
                                                counts_now_ms_ - counts_read_ms_ >= config_.counts_refresh_ms))) {
    counts_refresh_ = true;
  }
}

void Hub::StartCountsRead(uint64_t now_ms) {
  counts_refresh_ = false;
  counts_reading_ = true;
  counts_.BeginRead();
  auto t = hooks_.reads->Counts(0, [this](Result<pg::CountsRows> r) {
    counts_reading_ = false;
    std::optional<PgSnapshot> snap;
    if (r) snap = PgSnapshot::Parse(r->snapshot);
    if (!r || !snap || r->rows.size() > kMaxCountsPairs) {
      ++stats_.counts_read_failures;
      counts_.ReadFailed();
      counts_refresh_ = true;  // asked for, so still wanted
      counts_retry_ms_ = counts_now_ms_ + kCountsRetryMs;
      return;
    }
    CountsKeeper::Totals totals;
    for (auto& row : r->rows) totals[{std::move(row.status), std::move(row.job_type)}] += row.n;
    if (counts_.OnRead(std::move(totals), *snap)) ++stats_.counts_reads;
    counts_read_ms_ = counts_now_ms_;
  });
  if (!t) {
    counts_reading_ = false;
    ++stats_.counts_read_failures;
    counts_.ReadFailed();
    counts_refresh_ = true;
    counts_retry_ms_ = now_ms + kCountsRetryMs;
  }
}

void Hub::SendCounts(Session* only) {
  FrameRef frame = TextFrame(CountsMessage(counts_.as_of(), counts_.Json()));
  ++stats_.counts_messages;
  auto send = [&](Session& x) {
    // Totals are state: a viewer whose queue is half full skips this one and gets a
    // later one (never closed for them).
    if (x.out_.bytes() + x.inflight_bytes > config_.max_queue_bytes / 2) {
      ++counts_skipped_;
      return;
    }
    ++stats_.control_frames;
    if (Send(x, frame, false)) x.counts_version_ = counts_.version();
  };
  if (only) {
    send(*only);
    return;
  }
  counts_skipped_ = 0;
  counts_sent_version_ = counts_.version();
  for (uint64_t id : counts_sessions_) {
    Session* x = Live(id);
    if (x && x->counts_version_ != counts_.version()) send(*x);
  }
}

std::optional<uint64_t> Hub::Tick(uint64_t now_ms) {
  counts_now_ms_ = now_ms;
  if (counts_sessions_.empty() || !hooks_.reads) return std::nullopt;
  std::optional<uint64_t> next;
  auto want = [&](uint64_t ms) { next = next ? std::min(*next, ms) : ms; };
  if (!counts_reading_) {
    const bool periodic = config_.counts_refresh_ms && counts_.known() &&
                          now_ms - counts_read_ms_ >= config_.counts_refresh_ms;
    const bool untrusted = counts_.wants_read() && now_ms - counts_read_ms_ >= kCountsMinReadGapMs;
    if (counts_refresh_ || !counts_.known() || periodic || untrusted) {
      if (now_ms >= counts_retry_ms_) StartCountsRead(now_ms);
      // Refused at once (or still waiting for the retry time): come back for it.
      if (!counts_reading_) want(counts_retry_ms_ > now_ms ? counts_retry_ms_ - now_ms : kCountsRetryMs);
    } else if (counts_.wants_read()) {
      want(counts_read_ms_ + kCountsMinReadGapMs - now_ms);
    } else if (config_.counts_refresh_ms) {
      want(counts_read_ms_ + config_.counts_refresh_ms - now_ms);
    }
  }
  // Nothing new since the last round, and nobody skipped it: nothing to send (a new
  // viewer got the totals when it asked).
  if (!counts_.known() || (counts_.version() == counts_sent_version_ && counts_skipped_ == 0)) return next;
  if (now_ms - counts_sent_ms_ >= config_.counts_interval_ms) {
    counts_sent_ms_ = now_ms;
    SendCounts(nullptr);
  }
  want(config_.counts_interval_ms - std::min(now_ms - counts_sent_ms_, config_.counts_interval_ms));
  return next;
}

void Hub::ForgetConsole(Session& s) {
  if (s.counts_) {
    s.counts_ = false;
    counts_sessions_.erase(std::remove(counts_sessions_.begin(), counts_sessions_.end(), s.id()),
                           counts_sessions_.end());
  }
  auto reads = std::move(s.history_reads_);
  s.history_reads_.clear();
  if (hooks_.reads) {
    for (auto t : reads) hooks_.reads->Cancel(t);
  }
}

}  // namespace reactor::hub
