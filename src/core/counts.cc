#include "core/counts.h"

#include <algorithm>
#include <charconv>

#include "core/json_text.h"

namespace reactor {

std::optional<PgSnapshot> PgSnapshot::Parse(std::string_view text) {
  auto number = [](std::string_view t, uint64_t& out) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
    return !t.empty() && ec == std::errc() && p == t.data() + t.size();
  };
  const size_t a = text.find(':');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = text.find(':', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  PgSnapshot s;
  if (!number(text.substr(0, a), s.xmin) || !number(text.substr(a + 1, b - a - 1), s.xmax)) return std::nullopt;
  if (s.xmax < s.xmin) return std::nullopt;
  std::string_view rest = text.substr(b + 1);
  while (!rest.empty()) {
    const size_t c = rest.find(',');
    uint64_t x = 0;
    if (!number(rest.substr(0, c), x)) return std::nullopt;
    s.xip.push_back(x);
    if (c == std::string_view::npos) break;
    rest.remove_prefix(c + 1);
  }
  std::sort(s.xip.begin(), s.xip.end());
  return s;
}

bool PgSnapshot::Sees(uint64_t txid) const {
  if (txid < xmin) return true;
  if (txid >= xmax) return false;
  return !std::binary_search(xip.begin(), xip.end(), txid);
}

std::optional<CountsKeeper::Delta> CountsKeeper::DeltaOf(const Event& ev, bool* untrusted) {
  if (!ev.is_logged() || ev.source != "scheduled_jobs" || ev.kind != "status") return std::nullopt;
  if (ev.truncated) {
    *untrusted = true;  // the oversize notice has no old_status or job_type
    return std::nullopt;
  }
  Delta d;
  d.txid = ev.txid;
  d.id = ev.id;
  d.job_type = ev.job_type;
  d.from = ev.old_status;
  d.to = ev.status;
  if (d.from == d.to) return std::nullopt;
  return d;
}

void CountsKeeper::Apply(const Delta& d) {
  if (!d.from.empty()) {
    auto it = totals_.find(Key{d.from, d.job_type});
    if (it == totals_.end() || it->second <= 0) {
      wants_read_ = true;  // a row this keeper never counted (deleted, or a job type changed)
    } else if (--it->second == 0) {
      totals_.erase(it);
    }
  }
  if (!d.to.empty()) ++totals_[Key{d.to, d.job_type}];
  ++stats_.applied;
  ++version_;
}

void CountsKeeper::BeginRead() {
  reading_ = true;
  abandoned_ = false;
  pending_.clear();
}

void CountsKeeper::ReadFailed() {
  reading_ = false;
  abandoned_ = false;
  pending_.clear();
  pending_.shrink_to_fit();
}

bool CountsKeeper::OnRead(Totals totals, const PgSnapshot& snap) {
  const bool abandoned = abandoned_ || !reading_;
  reading_ = false;
  abandoned_ = false;
  if (abandoned) {
    pending_.clear();
    pending_.shrink_to_fit();
    ++stats_.abandoned;
    wants_read_ = true;
    return false;
  }
  for (auto it = totals.begin(); it != totals.end();) {
    it = it->second == 0 ? totals.erase(it) : std::next(it);
  }
  totals_ = std::move(totals);
  known_ = true;
  wants_read_ = false;
  ++stats_.reads;
  ++version_;
  for (const Delta& d : pending_) {
    if (d.txid != 0 && snap.Sees(d.txid)) {
      ++stats_.skipped;
    } else {
      Apply(d);
    }
  }
  pending_.clear();
  pending_.shrink_to_fit();
  filter_ = snap;
  return true;
}

void CountsKeeper::OnEvent(const Event& ev, uint64_t horizon) {
  if (ev.is_logged() && ev.id > as_of_) as_of_ = ev.id;
  if (!known_ && !reading_) return;  // nobody has asked for totals: nothing to keep
  if (filter_ && horizon != 0 && horizon >= filter_->xmax) filter_.reset();
  bool untrusted = false;
  auto d = DeltaOf(ev, &untrusted);
  if (untrusted) {
    ++stats_.untrusted;
    wants_read_ = true;
  }
  if (!d) return;
  if (reading_ && !abandoned_) {
    if (pending_.size() >= max_pending_) {
      abandoned_ = true;  // answered later and thrown away; the next read starts afresh
      pending_.clear();
      pending_.shrink_to_fit();
    } else {
      pending_.push_back(*d);
    }
  }
  if (!known_) return;
  if (filter_) {
    if (d->txid == 0) {
      ++stats_.untrusted;
      wants_read_ = true;  // cannot tell whether the last read counted it
    } else if (filter_->Sees(d->txid)) {
      ++stats_.skipped;
      return;
    }
  }
  Apply(*d);
}

std::string CountsKeeper::Json() const {
  std::string out = "{";
  const std::string* status = nullptr;
  for (const auto& [key, n] : totals_) {
    if (n <= 0) continue;
    if (!status || *status != key.first) {
      if (status) out += "},";
      AppendJsonString(out, key.first);
      out += ":{";
      status = &key.first;
    } else {
      out += ',';
    }
    AppendJsonString(out, key.second);
    out += ':';
    out += std::to_string(n);
  }
  if (status) out += '}';
  out += '}';
  return out;
}

}  // namespace reactor
