#include "hub/hub.h"

#include <algorithm>
#include <chrono>

#include "core/metrics_text.h"
#include "ws/frame.h"

namespace reactor::hub {

namespace {
OutQueue::Stamp StampOf(const Published& p) { return OutQueue::Stamp{p.received_ns, p.event.at_us}; }
}  // namespace

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

std::unique_ptr<Session> Hub::Open(Principal who, bool authenticated, bool loopback) {
  auto s = std::make_unique<Session>(next_session_++, std::move(who), authenticated, loopback);
  sessions_[s->id()] = s.get();
  SendControl(*s, WelcomeMessage(config_.server, last_event_id(), config_.mode));
  if (authenticated && hooks_.principal_changed) hooks_.principal_changed(*s);
  return s;
}

void Hub::Remove(Session* s) {
  ForgetConsole(*s);
  sessions_.erase(s->id());
  for (auto& sub : s->subs_) {
    CancelRead(sub);
    DropRows(sub);
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
    s.out_.Push(FrameRef(e, &e->frame), StampOf(*e));
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

bool Hub::Send(Session& s, FrameRef f, bool event, OutQueue::Stamp stamp, const PublishedRef* p,
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
      if (!Send(s, FrameRef(older, &older->frame), true, StampOf(*older))) return false;
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
  s.out_.Push(std::move(f), stamp);
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
  counts_.OnEvent(p->event, hooks_.horizon ? hooks_.horizon().value_or(0) : 0);
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
      if (sub.held.size() >= config_.max_held_events) {
        sub.hold_overflow = true;  // its stream ends with a gap
      } else {
        sub.held.push_back(p);
      }
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
  Send(s, frame, true, StampOf(*p), &p, conflate);
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
      SendControl(s, PongMessage(s.out_.bytes() + s.inflight_bytes));
      return;
    case ClientMessage::Op::kAction:
      OnAction(s, *m);
      return;
    case ClientMessage::Op::kHistory:
      OnHistory(s, *m);
      return;
    case ClientMessage::Op::kCounts:
      OnCounts(s, *m);
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
      DropRows(*it);
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
  DropRows(*sub);
  sub->filter = std::move(*filter);
  sub->key = RouteIndex::KeyOf(sub->filter);
  index_.Add(sub->key, s.id());
  sub->conflate = m.conflate;
  sub->token = next_token_++;
  sub->pending = false;
  sub->held.clear();
  sub->catching_up = false;
  sub->filtered_until = 0;
  sub->min_txid = 0;
  sub->from = history_.end();  // routed events from now on
  SendControl(s, SubscribedMessage(m.id, last_event_id()));

  if (m.snapshot) {
    TakeSnapshot(s, m.id);
    return;
  }
  if (!m.since) return;
  int64_t since = *m.since;
  auto start = history_.PositionAfter(since);
  // Exact on any replica (docs/delivery.md): every event whose transaction may have
  // committed after `since` did, wherever this replica's stream put it: txid >= the
  // horizon of `since`. Without a horizon (a schema before migration 005) only the
  // database can say that exactly, so a live server asks it.
  uint64_t first = start ? *start : 0;
  uint64_t min_txid = 0;
  if (start && since != 0) {
    const PublishedRef* at = history_.At(*start - 1);
    min_txid = at ? (*at)->event.horizon : 0;
    if (min_txid == 0 && hooks_.reads) start.reset();
    if (min_txid != 0) {
      if (auto lo = history_.FirstTxidAtLeast(min_txid, *start)) first = std::min(first, *lo);
      if (first < *start) ++stats_.resumes_widened;
    }
  }
  if (start) {
    ++stats_.resumes_from_history;
    // A cursor over [start, until), handed out a bounded slice at a time; then routed
    // events from `until` on. While the session's own cursor is behind (another resume
    // in progress), its routing resumes at live_pos_, so this one ends there.
    uint64_t until = s.live_pos_ ? *s.live_pos_ : history_.end();
    sub->from = std::max(*start, until);
    if (first < until) {
      sub->catching_up = true;
      sub->next = first;
      sub->until = until;
      sub->since = since;
      sub->filtered_until = *start;
      sub->min_txid = min_txid;
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
        if (rows_in_memory_ + rows->payloads.size() > config_.max_resume_rows) {
          ++stats_.resume_rows_refused;
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
        ++stats_.control_frames;
        sub->reply = TextFrame(SnapshotMessage(sub_id, as_of, rows->jobs_json));
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
  sub->rows = first;
  sub->rows_next = 0;
  sub->owned_rows = first.size();
  rows_in_memory_ += first.size();
  sub->skip = skip;
  StartStream(s, *sub);
}

bool Hub::Room(const Session& s, size_t bytes) const {
  const size_t queued = s.out_.bytes() + s.inflight_bytes;
  return queued == 0 || queued + bytes <= config_.max_queue_bytes;
}

void Hub::DropRows(Session::Sub& sub) {
  rows_in_memory_ -= std::min(rows_in_memory_, sub.owned_rows);
  sub.owned_rows = 0;
  sub.rows.clear();
  sub.rows.shrink_to_fit();
  sub.rows_next = 0;
  sub.reply.reset();
  sub.skip.clear();
  sub.streaming = false;
  sub.hold_overflow = false;
}

void Hub::StartStream(Session& s, Session::Sub& sub) {
  sub.streaming = true;
  if (!s.in_cursor_list_) {
    s.in_cursor_list_ = true;
    cursor_list_.push_back(s.id());
  }
  size_t budget = std::min(kResumeEntriesPerMessage, pass_budget_left_);
  const size_t before = budget;
  (void)Stream(s, budget);
  pass_budget_left_ -= before - budget;
}

Hub::Progress Hub::Stream(Session& s, size_t& budget) {
  bool blocked = false;
  bool more = false;
  for (size_t i = 0; i < s.subs_.size(); ++i) {
    Session::Sub& sub = s.subs_[i];
    while (sub.streaming && !s.closing_) {
      if (sub.hold_overflow) {
        // Too much arrived while it was pending: what it holds is incomplete.
        ++stats_.hold_overflows;
        ++stats_.gaps;
        const std::string id = sub.id;
        const int64_t after = last_event_id();
        DropRows(sub);
        sub.held.clear();
        sub.pending = false;
        SendControl(s, GapMessage(id, after));
        break;
      }
      if (sub.reply) {
        if (!Room(s, 0)) {  // a reply needs the queue not to be over the limit
          blocked = true;
          break;
        }
        FrameRef r = std::move(sub.reply);
        sub.reply.reset();
        if (!Send(s, std::move(r), false)) return Progress::kDone;
        continue;
      }
      if (sub.rows_next < sub.rows.size()) {
        if (budget == 0) {
          more = true;
          break;
        }
        const PublishedRef& p = sub.rows[sub.rows_next];
        const bool wanted = s.who_.MaySee(p->event) && sub.filter.Matches(p->event) &&
                            !(sub.owned_rows == 0 && p->event.id > 0 && sub.skip.count(p->event.id)) &&
                            !(sub.owned_rows == 0 && s.sent_while_pending_.count(p->seq));
        if (wanted && !Room(s, p->frame.size())) {
          blocked = true;
          break;
        }
        --budget;
        ++sub.rows_next;
        if (wanted) {
          if (!Send(s, FrameRef(p, &p->frame), true)) return Progress::kDone;
          const bool others_pending = std::any_of(s.subs_.begin(), s.subs_.end(), [&](const auto& x) {
            return &x != &sub && x.pending;
          });
          if (sub.owned_rows == 0 && others_pending) s.sent_while_pending_.insert(p->seq);
        }
        continue;
      }
      // The rows are out; then what was held meanwhile, a round at a time (more may
      // arrive while a round drains: the subscription stays pending until none is left).
      rows_in_memory_ -= std::min(rows_in_memory_, sub.owned_rows);
      sub.owned_rows = 0;
      sub.rows.clear();
      sub.rows_next = 0;
      if (!sub.held.empty()) {
        sub.rows.swap(sub.held);
        continue;
      }
      sub.pending = false;
      sub.streaming = false;
      sub.skip.clear();
      if (std::none_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.pending; })) {
        s.sent_while_pending_.clear();
      }
    }
  }
  if (blocked) return Progress::kBlocked;
  if (more) return Progress::kMore;
  return Progress::kDone;
}

void Hub::EnterCursor(Session& s) {
  if (!s.live_pos_) s.live_pos_ = history_.end();
  if (!s.in_cursor_list_) {
    s.in_cursor_list_ = true;
    cursor_list_.push_back(s.id());
  }
}

Hub::Progress Hub::Advance(Session& s, size_t& budget) {
  if (s.closing_) return Progress::kDone;
  if (std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.streaming; })) {
    const Progress streamed = Stream(s, budget);
    if (streamed != Progress::kDone || !s.live_pos_) return streamed;
  }
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
      const bool before_since = sub->next < sub->filtered_until;
      const bool wanted = !before_since || (e.event.txid >= sub->min_txid && e.event.id != sub->since);
      if (wanted && s.who_.MaySee(e.event) && sub->filter.Matches(e.event)) {
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
    const bool streaming = std::any_of(s.subs_.begin(), s.subs_.end(), [](const auto& x) { return x.streaming; });
    if (s.closing_ || (!s.live_pos_ && !streaming)) {
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

void Hub::WriteMetrics(MetricsText& m) const {
  const auto& h = stats_;
  m.Counter("reactor_events_published_total", "Events fanned out (encoded once each).", h.events);
  m.Counter("reactor_frames_sent_total", "Event frames queued to subscribers.", h.frames);
  m.Counter("reactor_control_frames_total", "Protocol messages queued to subscribers.", h.control_frames);
  m.Gauge("reactor_subscribers", "Open WebSocket connections.", static_cast<double>(sessions()));
  m.Gauge("reactor_subscriptions", "Subscriptions over all connections.", static_cast<double>(subscriptions()));
  m.Counter("reactor_slow_consumer_closes_total", "Connections closed with 1013 for exceeding --max-queue-bytes.", h.slow_closes);
  m.Counter("reactor_auth_failures_total", "Bad, forged or expired tokens.", h.auth_failures);
  m.Counter("reactor_forbidden_total", "Requests refused as forbidden.", h.forbidden);
  m.Counter("reactor_bad_requests_total", "Client messages that were not understood.", h.bad_requests);
  m.Counter("reactor_resumes_total", "Resumes served from memory.", h.resumes_from_history, "source=\"history\"");
  m.Counter("reactor_resumes_total", "Resumes served from memory.", h.resumes_from_database, "source=\"database\"");
  m.Counter("reactor_gaps_total", "Resumes that could not be filled.", h.gaps);
  m.Counter("reactor_snapshots_total", "Snapshots served.", h.snapshots);
  m.Counter("reactor_reads_refused_total", "Resumes and snapshots refused for a database-read bound (answered gap or error).",
            h.reads_refused);
  m.Gauge("reactor_history_events", "Events kept in memory for resume.", static_cast<double>(history_size()));
  m.Counter("reactor_limit_refusals_total", "Subscribes refused over a limit.", h.subscription_limit, "limit=\"subscriptions\"");
  m.Counter("reactor_limit_refusals_total", "Subscribes refused over a limit.", h.filter_limit, "limit=\"filter\"");
  m.Gauge("reactor_resume_cursors", "Connections with a resume from the history being handed out.",
          static_cast<double>(resuming_sessions()));
  m.Counter("reactor_resume_entries_total", "History entries walked by resume cursors.", h.resume_entries);
  m.Counter("reactor_resume_deferred_passes_total", "Loop passes whose resume budget (--resume-entries-per-pass) ran out with work left.", h.resume_deferred);
  m.Counter("reactor_resumes_widened_total", "History resumes that also hand out events before `since` (txid >= its horizon): exact on any replica.", h.resumes_widened);
  m.Counter("reactor_hold_overflows_total", "Subscriptions that held more than --max-held-events live events while their snapshot or resume was handed out (answered gap).", h.hold_overflows);
  m.Counter("reactor_resume_rows_refused_total", "Database resumes refused because --max-resume-rows would be exceeded (answered gap).", h.resume_rows_refused);
  m.Gauge("reactor_resume_rows", "Events read from the database for resumes, waiting to be handed out.", static_cast<double>(rows_in_memory_));
  m.Counter("reactor_conflated_events_total", "Events of conflating subscriptions replaced by a newer event of their job (the connection was behind).", h.conflated);
  m.Counter("reactor_conflation_markers_total", "{\"type\":\"conflated\"} messages queued.", h.conflation_markers);
  m.Gauge("reactor_conflating_connections", "Connections with conflated events waiting for queue room.",
          static_cast<double>(conflating_sessions()));
  m.Counter("reactor_conflation_overflow_closes_total", "Conflating connections closed 1013 over --max-conflated-jobs waiting.", h.conflation_overflow);
  m.Counter("reactor_route_candidates_total", "Connections the routing index offered for published events (the fan-out's work).", h.routed_candidates);
  m.Counter("reactor_actions_total", "Operator actions answered with ack.", h.actions_ok, "result=\"ok\"");
  m.Counter("reactor_actions_total", "Operator actions refused (token, bounds, or the database: forbidden, not_found, conflict).", h.actions_refused, "result=\"refused\"");
  m.Counter("reactor_actions_total", "Operator actions without an answer from the database (unavailable).", h.actions_failed, "result=\"failed\"");
  m.Counter("reactor_history_reads_total", "Job histories read for clients.", h.history_reads);
  m.Counter("reactor_counts_reads_total", "Totals read from the database (one GROUP BY, whatever the number of viewers).", h.counts_reads);
  m.Counter("reactor_counts_read_failures_total", "Totals reads that failed or were refused.", h.counts_read_failures);
  m.Counter("reactor_counts_messages_total", "`counts` messages encoded (each sent to every viewer).", h.counts_messages);
  m.Gauge("reactor_counts_viewers", "Connections receiving `counts`.", static_cast<double>(counts_sessions_.size()));
  m.Counter("reactor_counts_events_skipped_total", "Events the last totals read had already counted.", counts_.stats().skipped);
  m.Counter("reactor_counts_reads_abandoned_total", "Totals reads thrown away: more than 100 000 events were delivered while one was in flight (a new read follows).", counts_.stats().abandoned);
  m.Counter("reactor_counts_untrusted_events_total", "Events the totals could not account for (a new read follows).", counts_.stats().untrusted);
  m.Counter("reactor_resume_behind_closes_total", "Connections closed 1013 because the history moved past their resume cursor.", h.resume_behind);
}

}  // namespace reactor::hub
