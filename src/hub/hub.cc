#include "hub/hub.h"

#include <algorithm>
#include <chrono>

#include "ws/frame.h"

namespace reactor::hub {

Session::Sub* Session::Find(std::string_view id) {
  for (auto& s : subs_) {
    if (s.id == id) return &s;
  }
  return nullptr;
}


Hub::Hub(Config config, Hooks hooks)
    : config_(std::move(config)), hooks_(std::move(hooks)), history_(config_.history),
      pass_budget_left_(config_.resume_entries_per_pass) {
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

void Hub::Remove(Session* s) {
  sessions_.erase(s->id());
  for (auto& sub : s->subs_) {
    CancelRead(sub);
    Unindex(*s, sub);
  }
}

void Hub::Unindex(Session& s, Session::Sub& sub) {
  index_.Remove(sub.key, s.id());
}

void Hub::CancelRead(Session::Sub& sub) {
  if (!sub.read) return;
  const auto t = *sub.read;
  sub.read.reset();
  sub.token = next_token_++;  // whatever the cancelled read answers is ignored
  if (hooks_.reads) hooks_.reads->Cancel(t);
}

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

bool Hub::SlowClose(Session& s, const std::string& why) {
  s.closing_ = true;
  ++stats_.slow_closes;
  if (s.backlog_) s.backlog_.reset();
  if (hooks_.close) hooks_.close(s, ws::close_code::kTryAgainLater, why);
  return false;
}

bool Hub::Conflate(Session& s, const PublishedRef& p) {
  if (!s.backlog_) s.backlog_ = std::make_unique<ConflationQueue>();
  if (s.backlog_->Put(p)) ++stats_.conflated;
  if (s.backlog_->size() > config_.max_conflated_jobs) {
    ++stats_.conflation_overflow;
    return SlowClose(s, "slow consumer: more than " + std::to_string(config_.max_conflated_jobs) +
                            " jobs' events waiting (--max-conflated-jobs)");
  }
  if (!s.in_backlog_list_) {
    s.in_backlog_list_ = true;
    backlog_list_.push_back(s.id());
  }
  return true;
}

bool Hub::DrainBacklog(Session& s) {
  if (s.closing_ || !s.backlog_) return true;
  ConflationQueue& b = *s.backlog_;
  while (!b.empty()) {
    const PublishedRef& p = b.front();
    size_t queued = s.out_.bytes() + s.inflight_bytes;
    if (queued > 0 && queued + p->frame.size() > config_.max_queue_bytes) return false;
    if (uint64_t n = b.TakeDropped()) {
      // Before the first event released after some were replaced: how many were.
      ++stats_.conflation_markers;
      SendControl(s, ConflatedMessage(n));
    }
    PublishedRef e = p;
    b.pop_front();
    bool was_empty = s.out_.empty();
    s.out_.Push(FrameRef(e, &e->frame), e->received_ns);
    stats_.bytes += e->frame.size();
    ++stats_.frames;
    if (was_empty && hooks_.wake) hooks_.wake(s);
  }
  if (uint64_t n = b.TakeDropped()) {
    // The last ones replaced were taken along by other events: say so all the same.
    ++stats_.conflation_markers;
    SendControl(s, ConflatedMessage(n));
  }
  s.backlog_.reset();
  return true;
}

bool Hub::BacklogReady() const {
  for (uint64_t id : backlog_list_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return true;  // Pump forgets it
    const Session& s = *it->second;
    if (s.closing_ || !s.backlog_ || s.backlog_->empty()) return true;
    size_t queued = s.out_.bytes() + s.inflight_bytes;
    if (queued == 0 || queued + s.backlog_->front()->frame.size() <= config_.max_queue_bytes) return true;
  }
  return false;
}

bool Hub::Send(Session& s, FrameRef f, bool event, uint64_t stamp_ns, const PublishedRef* p,
               bool conflate) {
  if (s.closing_) return false;
  if (event && s.backlog_ && p) {
    // Events are waiting for room: a conflatable one waits behind them (replacing its
    // job's); another one takes its job's waiting event along first (per-job order).
    if (conflate) return Conflate(s, *p);
    if (PublishedRef older = s.backlog_->Take((*p)->event.job_id)) {
      if (uint64_t n = s.backlog_->TakeDropped()) {
        ++stats_.conflation_markers;
        SendControl(s, ConflatedMessage(n));
      }
      if (!Send(s, FrameRef(older, &older->frame), true, older->received_ns)) return false;
    }
  }
  size_t size = f->size();
  // Events must fit under the limit. A reply (a snapshot can be megabytes: up to
  // snapshot_limit rows) only needs the queue not to be over it already: it is bounded,
  // asked for, and sent once; counting it like events would close every client whose
  // snapshot is larger than --max-queue-bytes, again at each reconnect.
  size_t queued = s.out_.bytes() + s.inflight_bytes;
  if (event ? queued + size > config_.max_queue_bytes : queued > config_.max_queue_bytes) {
    if (event && conflate && p) return Conflate(s, *p);
    return SlowClose(s, "slow consumer: " + std::to_string(s.out_.bytes() + s.inflight_bytes) +
                            " bytes queued");
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
  uint64_t pos = history_.end();
  history_.Push(ref);
  FrameRef frame(ref, &ref->frame);
  // Only the sessions with a subscription filed under this event's job, user or the
  // broad set (Route checks the rest of each filter and the principal).
  index_.Candidates(ref->event, candidates_);
  stats_.routed_candidates += candidates_.size();
  for (uint64_t id : candidates_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    Session* s = it->second;
    if (s->live_pos_) continue;  // its resume cursor routes this one from the history
    Route(*s, ref, frame, pos);
  }
}

void Hub::Route(Session& s, const PublishedRef& p, const FrameRef& frame, uint64_t pos) {
  if (s.closing_ || !s.authenticated_ || !s.who_.MaySee(p->event)) return;
  bool live = false;
  bool any_pending = false;
  bool conflate = true;  // every live subscription it matches asked for conflation
  for (auto& sub : s.subs_) {
    if (pos < sub.from || !sub.filter.Matches(p->event)) continue;
    if (sub.pending) {
      sub.held.push_back(p);
      any_pending = true;
    } else {
      live = true;
      conflate = conflate && sub.conflate;
    }
  }
  if (!live) return;
  if (any_pending || !s.sent_while_pending_.empty()) {
    bool pending_now = std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.pending; });
    if (pending_now) s.sent_while_pending_.insert(p->seq);
  }
  Send(s, frame, true, p->received_ns, &p, conflate);
}

void Hub::OnShortcut(Session& s, const std::vector<std::pair<std::string, std::string>>& query) {
  if (s.closing_) return;
  bool over_limit = false;
  auto m = ParseShortcut(query, config_.parse, &over_limit);
  if (!m) return;
  if (!*m) {
    ++stats_.bad_requests;
    if (over_limit) ++stats_.filter_limit;
    SendControl(s, ErrorMessage("bad_request", m->error()));
    return;
  }
  Subscribe(s, std::move(m->value()));
}

void Hub::OnText(Session& s, std::string_view text) {
  if (s.closing_) return;
  bool over_limit = false;
  auto m = ParseClientMessage(text, config_.parse, &over_limit);
  if (!m) {
    ++stats_.bad_requests;
    if (over_limit) ++stats_.filter_limit;
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
      CancelRead(*it);
      Unindex(s, *it);
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
    if (s.subs_.size() >= config_.max_subscriptions) {
      ++stats_.subscription_limit;
      ++stats_.bad_requests;
      SendControl(s, ErrorMessage("bad_request", "too many subscriptions: at most " +
                                                     std::to_string(config_.max_subscriptions) +
                                                     " per connection (--max-subscriptions); unsubscribe one first"));
      return;
    }
    s.subs_.push_back(Session::Sub{});
    sub = &s.subs_.back();
    sub->id = m.id;
  } else {
    Unindex(s, *sub);
  }
  CancelRead(*sub);  // a replaced subscription's read is of no use any more
  sub->filter = std::move(*filter);
  sub->key = RouteIndex::KeyOf(sub->filter);
  index_.Add(sub->key, s.id());
  sub->conflate = m.conflate;
  sub->token = next_token_++;
  sub->pending = false;
  sub->held.clear();
  sub->catching_up = false;
  sub->from = history_.end();  // routed events from now on
  SendControl(s, SubscribedMessage(m.id, last_event_id()));

  if (m.snapshot) {
    TakeSnapshot(s, m.id);
    return;
  }
  if (!m.since) return;
  int64_t since = *m.since;
  if (auto start = history_.PositionAfter(since)) {
    ++stats_.resumes_from_history;
    // A cursor over [start, until), handed out a bounded slice at a time; then routed
    // events from `until` on. While the session's own cursor is behind (another resume
    // in progress), its routing resumes at live_pos_, so this one ends there.
    uint64_t until = s.live_pos_ ? *s.live_pos_ : history_.end();
    sub->from = std::max(*start, until);
    if (*start < until) {
      sub->catching_up = true;
      sub->next = *start;
      sub->until = until;
      sub->since = since;
      EnterCursor(s);
      size_t budget = std::min(kResumeEntriesPerMessage, pass_budget_left_);
      size_t before = budget;
      Advance(s, budget);
      pass_budget_left_ -= before - budget;
    }
    return;
  }
  if (since >= 0 && since == last_event_id()) return;  // nothing after it yet
  ResumeFromDatabase(s, m.id, since);
}

void Hub::ResumeFromDatabase(Session& s, const std::string& sub_id, int64_t since) {
  Session::Sub* sub = s.Find(sub_id);
  if (!hooks_.reads) {
    ++stats_.gaps;
    SendControl(s, GapMessage(sub_id, since));
    return;
  }
  const uint64_t token = sub->token;
  const uint64_t sid = s.id();
  sub->pending = true;
  auto ticket = hooks_.reads->Resume(
      sid, pg::ResumeQuery{since, sub->filter, config_.resume_limit},
      [this, sid, sub_id, token, since](Result<pg::ResumeRows> rows) {
        Session* live = Live(sid);
        if (!live) return;
        Session::Sub* sub = live->Find(sub_id);
        if (!sub || sub->token != token) return;
        sub->read.reset();
        if (!rows || !rows->since_known || rows->payloads.size() > config_.resume_limit) {
          ++stats_.gaps;
          SendControl(*live, GapMessage(sub_id, since));
          Release(*live, sub_id, token, {}, {});
          return;
        }
        ++stats_.resumes_from_database;
        EventParser parser;
        std::vector<PublishedRef> first;
        std::unordered_set<int64_t> ids;
        for (const auto& payload : rows->payloads) {
          auto ev = parser.Parse(payload);
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
  if (!ticket) {
    sub->pending = false;
    ++stats_.reads_refused;
    ++stats_.gaps;
    SendControl(s, GapMessage(sub_id, since));
    return;
  }
  sub->read = *ticket;
}

void Hub::TakeSnapshot(Session& s, const std::string& sub_id) {
  Session::Sub* sub = s.Find(sub_id);
  if (!hooks_.reads) {
    SendControl(s, ErrorMessage("bad_request", "snapshots need the database (not available in replay)"));
    return;
  }
  const uint64_t token = sub->token;
  const uint64_t sid = s.id();
  const int64_t as_of = last_event_id();
  pg::SnapshotQuery q{sub->filter, config_.snapshot_limit, std::nullopt};
  if (hooks_.horizon) q.horizon = hooks_.horizon();
  sub->pending = true;
  auto ticket = hooks_.reads->Snapshot(
      sid, std::move(q), [this, sid, sub_id, token, as_of](Result<pg::SnapshotRows> rows) {
        Session* live = Live(sid);
        if (!live) return;
        Session::Sub* sub = live->Find(sub_id);
        if (!sub || sub->token != token) return;
        sub->read.reset();
        if (!rows) {
          SendControl(*live, ErrorMessage("bad_request", "snapshot failed: " + rows.error()));
          Release(*live, sub_id, token, {}, {});
          return;
        }
        ++stats_.snapshots;
        SendControl(*live, SnapshotMessage(sub_id, as_of, rows->jobs_json));
        Release(*live, sub_id, token, {}, rows->reflected);
      });
  if (!ticket) {
    sub->pending = false;
    ++stats_.reads_refused;
    SendControl(s, ErrorMessage("bad_request", "snapshot unavailable: " + ticket.error()));
    return;
  }
  sub->read = *ticket;
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

void Hub::EnterCursor(Session& s) {
  if (!s.live_pos_) s.live_pos_ = history_.end();
  if (!s.in_cursor_list_) {
    s.in_cursor_list_ = true;
    cursor_list_.push_back(s.id());
  }
}

Hub::Progress Hub::Advance(Session& s, size_t& budget) {
  while (budget > 0) {
    if (s.closing_ || !s.live_pos_) return Progress::kDone;
    auto sub = std::find_if(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.catching_up; });
    if (sub != s.subs_.end()) {
      if (sub->next >= sub->until) {
        sub->catching_up = false;
        continue;
      }
      const PublishedRef* p = history_.At(sub->next);
      if (!p) {
        // The history moved past this resume before it was handed out.
        ++stats_.gaps;
        sub->catching_up = false;
        SendControl(s, GapMessage(sub->id, sub->since));
        continue;
      }
      --budget;
      ++stats_.resume_entries;
      const Published& e = **p;
      if (s.who_.MaySee(e.event) && sub->filter.Matches(e.event)) {
        // Wait for room rather than take the client for a slow consumer: it asked for it.
        size_t queued = s.out_.bytes() + s.inflight_bytes;
        if (queued > 0 && queued + e.frame.size() > config_.max_queue_bytes) {
          ++budget;
          --stats_.resume_entries;
          return Progress::kBlocked;
        }
        if (!Send(s, FrameRef(*p, &e.frame), true)) return Progress::kDone;
      }
      ++sub->next;
      continue;
    }
    // Every resume is out: route what was published meanwhile, then go live.
    uint64_t pos = *s.live_pos_;
    if (pos >= history_.end()) {
      s.live_pos_.reset();
      return Progress::kDone;
    }
    const PublishedRef* p = history_.At(pos);
    if (!p) {
      // Events this session should have had are gone from the history: it has fallen
      // too far behind to be served without a loss.
      ++stats_.resume_behind;
      s.live_pos_.reset();
      s.closing_ = true;
      ++stats_.slow_closes;
      if (hooks_.close) {
        hooks_.close(s, ws::close_code::kTryAgainLater, "slow consumer: fell behind the history");
      }
      return Progress::kDone;
    }
    size_t queued = s.out_.bytes() + s.inflight_bytes;
    if (queued > 0 && queued + (*p)->frame.size() > config_.max_queue_bytes) {
      return Progress::kBlocked;
    }
    --budget;
    ++stats_.resume_entries;
    Route(s, *p, FrameRef(*p, &(*p)->frame), pos);
    s.live_pos_ = pos + 1;
  }
  return Progress::kMore;
}

bool Hub::Pump() {
  size_t left = config_.resume_entries_per_pass;
  bool more = false;
  size_t n = cursor_list_.size();
  for (size_t i = 0; i < n; ++i) {
    uint64_t sid = cursor_list_.front();
    cursor_list_.pop_front();
    auto it = sessions_.find(sid);
    if (it == sessions_.end()) continue;
    Session& s = *it->second;
    if (s.closing_ || !s.live_pos_) {
      s.in_cursor_list_ = false;
      s.live_pos_.reset();
      continue;
    }
    if (left == 0) {
      cursor_list_.push_back(sid);
      more = true;
      continue;
    }
    // An equal share of what is left, at least a useful slice.
    size_t share = std::min(left, std::max<size_t>(64, left / (n - i)));
    size_t budget = share;
    Progress pr = Advance(s, budget);
    left -= share - budget;
    if (pr == Progress::kDone) {
      s.in_cursor_list_ = false;
      continue;
    }
    cursor_list_.push_back(sid);
    if (pr == Progress::kMore) more = true;
  }
  if (more) ++stats_.resume_deferred;
  // Conflated events go out as their connections' queues drain (a write completed).
  for (size_t i = 0; i < backlog_list_.size();) {
    auto it = sessions_.find(backlog_list_[i]);
    Session* s = it == sessions_.end() ? nullptr : it->second;
    if (s && !s->closing_ && s->backlog_ && !DrainBacklog(*s)) {
      ++i;
      continue;
    }
    if (s) s->in_backlog_list_ = false;
    backlog_list_[i] = backlog_list_.back();
    backlog_list_.pop_back();
  }
  // Subscribes handled before the next pass share a budget of the same size.
  pass_budget_left_ = config_.resume_entries_per_pass;
  return more;
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
