#include "hub/hub.h"

#include <algorithm>
#include <chrono>

#include "ws/frame.h"

namespace reactor::hub {
namespace {

std::optional<std::string> OrNull(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

std::optional<std::string> ArrayOrNull(const std::vector<std::string>& v) {
  if (v.empty()) return std::nullopt;
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : v[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// Every event committed after `since`: the transactions running when `since` was
// written (txid >= its horizon) and everything later. A superset: repeats are allowed
// after a resume, losses are not. The first row says whether `since` exists.
constexpr const char* kResumeSql =
    "WITH s AS (SELECT horizon FROM reactor.job_events WHERE id = $1) "
    "SELECT 0::bigint, (SELECT count(*) FROM s)::text "
    "UNION ALL "
    "SELECT * FROM (SELECT e.id, e.payload::text FROM reactor.job_events e, s "
    "  WHERE e.txid >= s.horizon AND e.id <> $1 "
    "    AND ($2::text IS NULL OR e.job_id = $2) AND ($3::text IS NULL OR e.user_id = $3) "
    "    AND ($4::text[] IS NULL OR e.job_type = ANY($4)) AND ($5::text[] IS NULL OR e.status = ANY($5)) "
    "  ORDER BY e.id LIMIT $6) r";

// The matching jobs as of one snapshot, and the ids of recent events that snapshot
// already reflects (so that the live events held meanwhile are not applied twice).
constexpr const char* kSnapshotSql =
    "SELECT coalesce((SELECT json_agg(j)::text FROM ("
    "  SELECT * FROM reactor.scheduled_jobs "
    "   WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR user_id = $2) "
    "     AND ($3::text[] IS NULL OR job_type = ANY($3)) AND ($4::text[] IS NULL OR status = ANY($4)) "
    "   ORDER BY updated_at DESC LIMIT $5) j), '[]'), "
    "  (SELECT coalesce(array_agg(id), '{}')::text FROM reactor.job_events "
    "    WHERE txid >= coalesce($6::xid8, pg_snapshot_xmin(pg_current_snapshot())))";

std::unordered_set<int64_t> ParseIdArray(const std::string& text) {
  std::unordered_set<int64_t> out;
  int64_t cur = 0;
  bool any = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      cur = cur * 10 + (c - '0');
      any = true;
    } else {
      if (any) out.insert(cur);
      cur = 0;
      any = false;
    }
  }
  if (any) out.insert(cur);
  return out;
}

}  // namespace

Session::Sub* Session::Find(std::string_view id) {
  for (auto& s : subs_) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

Hub::Hub(Config config, Hooks hooks)
    : config_(std::move(config)), hooks_(std::move(hooks)), history_(config_.history) {
  now_s = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

size_t Hub::subscriptions() const {
  size_t n = 0;
  for (const auto& [id, s] : sessions_) n += s->subs_.size();
  return n;
}

Result<Principal> Hub::Authenticate(std::string_view token, int64_t now) {
  auto p = VerifyToken(token, config_.secret, now, config_.token_rules);
  if (!p) ++stats_.auth_failures;
  return p;
}

std::unique_ptr<Session> Hub::Open(Principal who, bool authenticated) {
  auto s = std::make_unique<Session>(next_session_++, std::move(who), authenticated);
  sessions_[s->id()] = s.get();
  SendControl(*s, WelcomeMessage(config_.server, last_event_id()));
  if (authenticated && hooks_.principal_changed) hooks_.principal_changed(*s);
  return s;
}

void Hub::Remove(Session* s) { sessions_.erase(s->id()); }

Session* Hub::Live(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  return it == sessions_.end() || it->second->closing_ ? nullptr : it->second;
}

FrameRef Hub::TextFrame(std::string_view json) {
  return std::make_shared<const std::string>(ws::EncodeFrame(ws::Opcode::kText, json));
}

void Hub::SendControl(Session& s, std::string json) {
  ++stats_.control_frames;
  Send(s, TextFrame(json), false);
}

bool Hub::Send(Session& s, FrameRef f, bool event, uint64_t stamp_ns) {
  if (s.closing_) return false;
  size_t size = f->size();
  // Events must fit under the limit. A reply (a snapshot can be megabytes: up to
  // snapshot_limit rows) only needs the queue not to be over it already: it is bounded,
  // asked for, and sent once; counting it like events would close every client whose
  // snapshot is larger than --max-queue-bytes, again at each reconnect.
  size_t queued = s.out_.bytes() + s.inflight_bytes;
  if (event ? queued + size > config_.max_queue_bytes : queued > config_.max_queue_bytes) {
    s.closing_ = true;
    ++stats_.slow_closes;
    std::string why = "slow consumer: " + std::to_string(s.out_.bytes() + s.inflight_bytes) +
                      " bytes queued";
    if (hooks_.close) hooks_.close(s, ws::close_code::kTryAgainLater, why);
    return false;
  }
  bool was_empty = s.out_.empty();
  s.out_.Push(std::move(f), stamp_ns);
  stats_.bytes += size;
  if (event) ++stats_.frames;
  if (was_empty && hooks_.wake) hooks_.wake(s);
  return true;
}

void Hub::Publish(Event&& ev) {
  auto p = std::make_shared<Published>();
  p->seq = ++seq_;
  p->received_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count());
  p->event = std::move(ev);
  p->frame = ws::EncodeFrame(ws::Opcode::kText, EventMessage(p->event.json));
  if (p->event.id > 0) last_id_ = std::max(last_id_, p->event.id);
  ++stats_.events;
  PublishedRef ref = p;
  history_.Push(ref);
  FrameRef frame(ref, &ref->frame);
  for (auto& [id, s] : sessions_) Route(*s, ref, frame);
}

void Hub::Route(Session& s, const PublishedRef& p, const FrameRef& frame) {
  if (s.closing_ || !s.authenticated_ || !s.who_.MaySee(p->event)) return;
  bool live = false;
  bool any_pending = false;
  for (auto& sub : s.subs_) {
    if (!sub.filter.Matches(p->event)) continue;
    if (sub.pending) {
      sub.held.push_back(p);
      any_pending = true;
    } else {
      live = true;
    }
  }
  if (!live) return;
  if (any_pending || !s.sent_while_pending_.empty()) {
    bool pending_now = std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.pending; });
    if (pending_now) s.sent_while_pending_.insert(p->seq);
  }
  Send(s, frame, true, p->received_ns);
}

void Hub::OnText(Session& s, std::string_view text) {
  if (s.closing_) return;
  auto m = ParseClientMessage(text);
  if (!m) {
    ++stats_.bad_requests;
    SendControl(s, ErrorMessage("bad_request", m.error()));
    return;
  }
  switch (m->op) {
    case ClientMessage::Op::kPing:
      SendControl(s, PongMessage());
      return;
    case ClientMessage::Op::kAuth: {
      if (!auth_required()) return;  // open server: every token is as good as none
      auto who = Authenticate(m->token, now_s());
      if (!who) {
        s.closing_ = true;
        if (hooks_.close) hooks_.close(s, ws::close_code::kPolicyViolation, who.error());
        return;
      }
      if (s.authenticated_ && !s.who_.sees_all && !who->sees_all && who->user_id != s.who_.user_id) {
        ++stats_.forbidden;
        SendControl(s, ErrorMessage("forbidden", "a connection cannot change users"));
        return;
      }
      s.who_ = std::move(*who);
      s.authenticated_ = true;
      if (hooks_.principal_changed) hooks_.principal_changed(s);
      return;
    }
    case ClientMessage::Op::kUnsubscribe: {
      auto it = std::find_if(s.subs_.begin(), s.subs_.end(), [&](const auto& x) { return x.id == m->id; });
      if (it == s.subs_.end()) {
        SendControl(s, ErrorMessage("unknown_subscription", "no subscription '" + m->id + "'"));
        return;
      }
      s.subs_.erase(it);
      SendControl(s, UnsubscribedMessage(m->id));
      return;
    }
    case ClientMessage::Op::kSubscribe:
      Subscribe(s, std::move(*m));
      return;
  }
}

void Hub::Subscribe(Session& s, ClientMessage m) {
  if (!s.authenticated_) {
    ++stats_.forbidden;
    SendControl(s, ErrorMessage("forbidden", "authenticate first ({\"op\":\"auth\",\"token\":...})"));
    return;
  }
  auto filter = AuthorizeFilter(s.who_, m.filter);
  if (!filter) {
    ++stats_.forbidden;
    SendControl(s, ErrorMessage("forbidden", filter.error()));
    return;
  }
  Session::Sub* sub = s.Find(m.id);
  if (!sub) {
    s.subs_.push_back(Session::Sub{});
    sub = &s.subs_.back();
    sub->id = m.id;
  }
  sub->filter = std::move(*filter);
  sub->token = next_token_++;
  sub->pending = false;
  sub->held.clear();
  SendControl(s, SubscribedMessage(m.id, last_event_id()));

  if (m.snapshot) {
    TakeSnapshot(s, m.id);
    return;
  }
  if (!m.since) return;
  int64_t since = *m.since;
  if (auto after = history_.After(since)) {
    ++stats_.resumes_from_history;
    for (const auto& p : *after) {
      if (!s.who_.MaySee(p->event) || !sub->filter.Matches(p->event)) continue;
      if (!Send(s, FrameRef(p, &p->frame), true)) return;
    }
    return;
  }
  if (since >= 0 && since == last_event_id()) return;  // nothing after it yet
  ResumeFromDatabase(s, m.id, since);
}

void Hub::ResumeFromDatabase(Session& s, const std::string& sub_id, int64_t since) {
  Session::Sub* sub = s.Find(sub_id);
  if (!hooks_.query) {
    ++stats_.gaps;
    SendControl(s, GapMessage(sub_id, since));
    return;
  }
  const Filter& f = sub->filter;
  uint64_t token = sub->token;
  uint64_t sid = s.id();
  sub->pending = true;
  auto st = hooks_.query(
      kResumeSql,
      {std::to_string(since), OrNull(f.job_id), OrNull(f.user_id), ArrayOrNull(f.job_types),
       ArrayOrNull(f.statuses), std::to_string(config_.resume_limit + 1)},
      [this, sid, sub_id, token, since](Result<std::vector<Row>> rows) {
        Session* live = Live(sid);
        if (!live) return;
        Session::Sub* sub = live->Find(sub_id);
        if (!sub || sub->token != token) return;
        bool found = rows && !rows->empty() && (*rows)[0][1] && *(*rows)[0][1] != "0";
        if (!rows || !found || rows->size() - 1 > config_.resume_limit) {
          ++stats_.gaps;
          SendControl(*live, GapMessage(sub_id, since));
          Release(*live, sub_id, token, {}, {});
          return;
        }
        ++stats_.resumes_from_database;
        EventParser parser;
        std::vector<PublishedRef> first;
        std::unordered_set<int64_t> ids;
        for (size_t i = 1; i < rows->size(); ++i) {
          const auto& payload = (*rows)[i][1];
          if (!payload) continue;
          auto ev = parser.Parse(*payload);
          if (!ev) continue;
          auto p = std::make_shared<Published>();
          p->event = std::move(*ev);
          p->frame = ws::EncodeFrame(ws::Opcode::kText, EventMessage(p->event.json));
          ids.insert(p->event.id);
          first.push_back(std::move(p));
        }
        std::sort(first.begin(), first.end(),
                  [](const PublishedRef& a, const PublishedRef& b) { return a->event.id < b->event.id; });
        Release(*live, sub_id, token, first, ids);
      });
  if (!st) {
    sub->pending = false;
    ++stats_.gaps;
    SendControl(s, GapMessage(sub_id, since));
  }
}

void Hub::TakeSnapshot(Session& s, const std::string& sub_id) {
  Session::Sub* sub = s.Find(sub_id);
  if (!hooks_.query) {
    SendControl(s, ErrorMessage("bad_request", "snapshots need the database (not available in replay)"));
    return;
  }
  const Filter& f = sub->filter;
  uint64_t token = sub->token;
  uint64_t sid = s.id();
  int64_t as_of = last_event_id();
  std::optional<std::string> horizon;
  if (hooks_.horizon) {
    if (auto h = hooks_.horizon()) horizon = std::to_string(*h);
  }
  sub->pending = true;
  auto st = hooks_.query(
      kSnapshotSql,
      {OrNull(f.job_id), OrNull(f.user_id), ArrayOrNull(f.job_types), ArrayOrNull(f.statuses),
       std::to_string(config_.snapshot_limit), horizon},
      [this, sid, sub_id, token, as_of](Result<std::vector<Row>> rows) {
        Session* live = Live(sid);
        if (!live) return;
        Session::Sub* sub = live->Find(sub_id);
        if (!sub || sub->token != token) return;
        if (!rows || rows->empty() || !(*rows)[0][0]) {
          SendControl(*live, ErrorMessage("bad_request", "snapshot failed: " +
                                                              (rows ? std::string("no result") : rows.error())));
          Release(*live, sub_id, token, {}, {});
          return;
        }
        ++stats_.snapshots;
        SendControl(*live, SnapshotMessage(sub_id, as_of, *(*rows)[0][0]));
        std::unordered_set<int64_t> reflected;
        if ((*rows)[0][1]) reflected = ParseIdArray(*(*rows)[0][1]);
        Release(*live, sub_id, token, {}, reflected);
      });
  if (!st) {
    sub->pending = false;
    SendControl(s, ErrorMessage("bad_request", "snapshot unavailable: " + st.message()));
  }
}

void Hub::Release(Session& s, const std::string& sub_id, uint64_t token,
                  const std::vector<PublishedRef>& first, const std::unordered_set<int64_t>& skip) {
  Session::Sub* sub = s.Find(sub_id);
  if (!sub || sub->token != token) return;
  std::vector<PublishedRef> held;
  held.swap(sub->held);
  sub->pending = false;
  for (const auto& p : first) {
    if (!s.who_.MaySee(p->event) || !sub->filter.Matches(p->event)) continue;
    if (!Send(s, FrameRef(p, &p->frame), true)) return;
  }
  // Another subscription still held may hold the same events: remember what goes out
  // now so that its release does not send them a second time.
  bool others_pending = std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.pending; });
  for (const auto& p : held) {
    if (p->event.id > 0 && skip.count(p->event.id)) continue;
    if (s.sent_while_pending_.count(p->seq)) continue;  // another subscription sent it
    if (!Send(s, FrameRef(p, &p->frame), true)) return;
    if (others_pending) s.sent_while_pending_.insert(p->seq);
  }
  bool still_pending = std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.pending; });
  if (!still_pending) s.sent_while_pending_.clear();
}

void Hub::CheckExpiry(Session& s, int64_t now) {
  if (s.closing_ || !s.who_.Expired(now)) return;
  s.closing_ = true;
  ++stats_.auth_failures;
  if (hooks_.close) hooks_.close(s, ws::close_code::kPolicyViolation, "token expired");
}

void Hub::CloseAll(uint16_t code, const std::string& reason) {
  for (auto& [id, s] : sessions_) {
    if (s->closing_) continue;
    s->closing_ = true;
    if (hooks_.close) hooks_.close(*s, code, reason);
  }
}

}  // namespace reactor::hub
