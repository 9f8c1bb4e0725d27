#include "hub/route_index.h"

#include <algorithm>
#include <cassert>

namespace reactor::hub {

RouteIndex::Key RouteIndex::KeyOf(const Filter& f) {
  // A job has one owner, so a job_id is at least as selective as a user_id.
  if (!f.job_id.empty()) return Key{Key::Kind::kJob, f.job_id};
  if (!f.user_id.empty()) return Key{Key::Kind::kUser, f.user_id};
  return Key{};
}

void RouteIndex::Add(const Key& key, uint64_t member) {
  ++entries_;
  switch (key.kind) {
    case Key::Kind::kJob: AddTo(jobs_[key.value], member); return;
    case Key::Kind::kUser: AddTo(users_[key.value], member); return;
    case Key::Kind::kBroad: AddTo(broad_, member); return;
  }
}

bool RouteIndex::RemoveFrom(Members& m, uint64_t member) {
  auto it = m.find(member);
  assert(it != m.end());
  if (it == m.end()) return m.empty();
  if (--it->second == 0) m.erase(it);
  return m.empty();
}

void RouteIndex::Remove(const Key& key, uint64_t member) {
  assert(entries_ > 0);
  --entries_;
  auto from_table = [&](Table& t) {
    auto it = t.find(key.value);
    assert(it != t.end());
    if (it != t.end() && RemoveFrom(it->second, member)) t.erase(it);
  };
  switch (key.kind) {
    case Key::Kind::kJob: from_table(jobs_); return;
    case Key::Kind::kUser: from_table(users_); return;
    case Key::Kind::kBroad: RemoveFrom(broad_, member); return;
  }
}

void RouteIndex::Candidates(const Event& ev, std::vector<uint64_t>& out) const {
  out.clear();
  auto take = [&](const Members& m) {
    for (const auto& [member, n] : m) out.push_back(member);
  };
  if (!ev.job_id.empty()) {
    if (auto it = jobs_.find(std::string_view(ev.job_id)); it != jobs_.end()) take(it->second);
  }
  if (ev.has_user) {
    if (auto it = users_.find(std::string_view(ev.user_id)); it != users_.end()) take(it->second);
  }
  take(broad_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace reactor::hub
