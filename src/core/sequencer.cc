#include "core/sequencer.h"

#include "core/metrics_text.h"

#include <algorithm>
#include <cassert>

namespace reactor {

DeliverySequencer::DeliverySequencer(DeliverFn deliver, FetchFn fetch, size_t prune_threshold)
    : deliver_(std::move(deliver)),
      fetch_(std::move(fetch)),
      base_prune_(prune_threshold),
      prune_at_(prune_threshold) {}

DeliverySequencer::CatchUpParams DeliverySequencer::BeginCatchUp(CatchUpMode mode) {
  assert(!in_flight_);
  in_flight_ = true;
  mode_ = mode;
  if (mode != CatchUpMode::kPrune) live_ = false;
  ++generation_;
  CatchUpParams p;
  p.threshold = horizon_;
  p.seen_ids.reserve(seen_.size());
  for (const auto& [id, gen] : seen_) p.seen_ids.push_back(id);
  return p;
}

void DeliverySequencer::OnConnectionLost() {
  in_flight_ = false;
  live_ = false;
}

void DeliverySequencer::OnCatchUpResult(uint64_t horizon, const std::vector<Row>& rows) {
  assert(in_flight_);
  const CatchUpMode mode = mode_;
  in_flight_ = false;

  // Rows first: in id order, which per job is commit order, and all of them committed
  // before anything still held (held events committed after the read's snapshot or are
  // duplicates of rows).
  for (const Row& row : rows) {
    auto it = seen_.find(row.id);
    if (it != seen_.end()) continue;
    // Unseen rows are delivered now even when live (kPrune): the horizon moves past
    // them, so if the connection dropped before their notification arrived no later
    // read would return them. Their notification may still arrive: remember the id
    // through the next read too. Per job this keeps commit order, since a row whose
    // notification has not arrived committed after every notification that has.
    seen_[row.id] = generation_ + 1;
    if (mode == CatchUpMode::kInitial) continue;  // before the stream began
    if (!row.payload) continue;                   // cannot happen: unseen ids get payloads
    auto ev = parser_.Parse(*row.payload);
    if (!ev) {
      ++stats_.parse_errors;
      last_parse_error_ = "job_events row " + std::to_string(row.id) + ": " + ev.error();
      continue;
    }
    ++stats_.recovered;
    ev->txid = row.txid;
    ev->horizon = row.horizon;
    Enqueue(std::move(*ev));
  }

  // Keep what a later read (threshold = horizon) can return again, ids admitted while
  // this read was in flight (committed after its snapshot, so not among its rows), and
  // recovered ids whose notification may still arrive.
  std::unordered_map<int64_t, uint64_t> keep;
  for (const Row& row : rows) {
    if (row.txid >= horizon) {
      auto it = seen_.find(row.id);
      if (it != seen_.end()) keep.emplace(*it);
    }
  }
  for (const auto& [id, gen] : seen_) {
    if (gen >= generation_) keep.emplace(id, gen);
  }
  seen_.swap(keep);
  horizon_ = horizon;
  started_ = true;
  live_ = true;
  prune_at_ = std::max(base_prune_, seen_.size() * 2);

  // Verified now, with the key this connection read before the catch-up.
  while (!held_.empty()) {
    std::string raw = std::move(held_.front());
    held_.pop_front();
    Accept(raw);
  }
  Drain();
}

void DeliverySequencer::ConfigureNotifyAuth(std::string channel, bool accept_unsigned) {
  verifier_.set_channel(std::move(channel));
  accept_unsigned_ = accept_unsigned;
}

void DeliverySequencer::OnNotification(std::string_view payload) {
  if (!live_) {
    held_.emplace_back(payload);
    return;
  }
  Accept(payload);
  Drain();
}

void DeliverySequencer::Accept(std::string_view raw) {
  uint64_t txid = 0;
  NotifyVerdict verdict = verifier_.Verify(raw, verified_, txid);
  const bool is_signed = verdict == NotifyVerdict::kOk;
  const uint64_t horizon = is_signed ? TakeHorizon(verified_) : 0;
  if (!is_signed && !(verdict == NotifyVerdict::kUnsigned && accept_unsigned_)) {
    ++stats_.rejected[static_cast<size_t>(verdict)];
    // For a log line: the start of what anyone may have sent, printable ASCII only.
    last_reject_ = NotifyVerdictName(verdict);
    last_reject_ += ": ";
    for (char c : raw.substr(0, 80)) last_reject_ += c >= 0x20 && c < 0x7f ? c : '?';
    if (raw.size() > 80) last_reject_ += "...";
    return;
  }
  auto ev = parser_.Parse(is_signed ? std::string_view(verified_) : raw);
  if (!ev) {
    ++stats_.parse_errors;
    last_parse_error_ = ev.error();
    return;
  }
  if (!is_signed) {
    // Anyone may send it: it must not pass for an event of the log (claim an id, suppress
    // the real one, move last_event_id), ring the scheduler or ask for a fetch.
    ++stats_.unsigned_accepted;
    ev->foreign = true;
    ev->id = 0;
    ev->truncated = false;
    ev->deadline.clear();
    Enqueue(std::move(*ev));
    return;
  }
  ev->txid = txid;
  ev->horizon = horizon;
  Admit(std::move(*ev), txid);
}

void DeliverySequencer::Admit(Event&& ev, uint64_t txid) {
  if (ev.is_logged()) {
    auto it = seen_.find(ev.id);
    if (it != seen_.end()) {
      ++stats_.duplicates_dropped;
      it->second = std::max(it->second, generation_);
      return;
    }
    // Every row of a transaction older than the horizon was visible to the read that
    // returned it, so the reads have covered it (docs/delivery.md, "Replays").
    if (horizon_ && txid < *horizon_) {
      ++stats_.stale_dropped;
      return;
    }
    seen_.emplace(ev.id, generation_);
  }
  Enqueue(std::move(ev));
}

void DeliverySequencer::Enqueue(Event&& ev) {
  bool fetch = ev.truncated && ev.is_logged();
  int64_t id = ev.id;
  out_.push_back(Item{std::move(ev), fetch});
  if (fetch) {
    ++stats_.fetches;
    fetch_(id);
  }
}

void DeliverySequencer::OnFetched(int64_t id, std::optional<std::string_view> payload) {
  for (Item& item : out_) {
    if (!item.awaiting_fetch || item.event.id != id) continue;
    item.awaiting_fetch = false;
    if (payload) {
      auto ev = parser_.Parse(*payload);
      if (ev && ev->id == id) {
        ev->txid = item.event.txid;
        ev->horizon = item.event.horizon;
        item.event = std::move(*ev);
      } else {
        ++stats_.parse_errors;
        last_parse_error_ = "job_events row " + std::to_string(id) + " payload: " +
                            (ev ? std::string("id mismatch") : ev.error());
      }
    }
    // A row that is gone (retention) is delivered in its truncated form.
    break;
  }
  Drain();
}

std::vector<int64_t> DeliverySequencer::PendingFetches() const {
  std::vector<int64_t> ids;
  for (const Item& item : out_) {
    if (item.awaiting_fetch) ids.push_back(item.event.id);
  }
  return ids;
}

void DeliverySequencer::Drain() {
  for (size_t n = 0; n < max_per_drain_ && !out_.empty() && !out_.front().awaiting_fetch; ++n) {
    Event ev = std::move(out_.front().event);
    out_.pop_front();
    if (ev.id > last_id_ && ev.is_logged()) last_id_ = ev.id;
    ++stats_.delivered;
    deliver_(std::move(ev));
  }
}

void DeliverySequencer::WriteMetrics(MetricsText& m) const {
  const auto& q = stats_;
  m.Counter("reactor_events_received_total", "Events released by the sequencer (live and recovered).", q.delivered);
  m.Counter("reactor_events_recovered_total", "Events recovered from reactor.job_events after a gap.", q.recovered);
  m.Counter("reactor_duplicates_dropped_total", "Events seen twice (notification and catch-up).", q.duplicates_dropped);
  m.Counter("reactor_truncated_fetches_total", "Oversize events completed from reactor.job_events.", q.fetches);
  m.Counter("reactor_payload_errors_total", "Payloads on the channel that were not a JSON object.", q.parse_errors);
  for (NotifyVerdict v : {NotifyVerdict::kUnsigned, NotifyVerdict::kMalformed,
                          NotifyVerdict::kBadSignature, NotifyVerdict::kNoKey}) {
    m.Counter("reactor_payloads_rejected_total",
              "Notifications on the channel dropped unverified (docs/security.md), by reason.",
              q.rejected[static_cast<size_t>(v)], std::string("reason=\"") + NotifyVerdictName(v) + "\"");
  }
  m.Counter("reactor_stale_notifications_total",
            "Signed notifications of a transaction older than the last read's horizon (already read, or replayed).",
            q.stale_dropped);
  m.Counter("reactor_unsigned_payloads_accepted_total",
            "Unsigned payloads passed on as foreign (--accept-unsigned-payloads).", q.unsigned_accepted);
  m.Gauge("reactor_last_event_id", "Highest event id delivered.", static_cast<double>(last_delivered_id()));
}

}  // namespace reactor
