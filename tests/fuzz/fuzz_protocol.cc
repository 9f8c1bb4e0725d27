// Fuzzes ParseClientMessage, the parser of everything a WebSocket client sends: no input
// may crash it or make it keep more than the limits allow, and what it accepts must read
// back the same when written out again.
//
// Input: [mode u8][max values u8][max bytes u16][message text...]
// mode bit 0 set: the default limits; otherwise 1 + values % 16 and 64 + bytes % 512.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_input.h"
#include "hub/protocol.h"

using namespace reactor;
using namespace reactor::hub;
using reactor::fuzz::Input;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

std::string List(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + JsonString(v[i]);
  return out + "]";
}

// The message as a client would write it.
std::string Write(const ClientMessage& m) {
  static const char* const kOps[] = {"subscribe", "unsubscribe", "auth", "ping", "action", "history", "counts"};
  std::string out = "{\"op\":" + JsonString(kOps[static_cast<int>(m.op)]);
  if (!m.id.empty()) out += ",\"id\":" + JsonString(m.id);
  if (!m.token.empty()) out += ",\"token\":" + JsonString(m.token);
  if (!m.action.empty()) out += ",\"action\":" + JsonString(m.action);
  if (!m.job_id.empty()) out += ",\"job_id\":" + JsonString(m.job_id);
  if (!m.arg.empty()) out += ",\"arg\":" + JsonString(m.arg);
  if (!m.source.empty()) out += ",\"source\":" + JsonString(m.source);
  if (m.before) out += ",\"before\":" + std::to_string(*m.before);
  if (m.limit) out += ",\"limit\":" + std::to_string(m.limit);
  if (!m.on) out += ",\"on\":false";
  if (m.since) out += ",\"since\":" + std::to_string(*m.since);
  if (m.snapshot) out += ",\"snapshot\":true";
  out += ",\"filter\":{\"job_id\":" + JsonString(m.filter.job_id) + ",\"user_id\":" +
         JsonString(m.filter.user_id) + ",\"job_type\":" + List(m.filter.job_types) +
         ",\"status\":" + List(m.filter.statuses) + "}";
  return out + "}";
}

size_t FilterBytes(const Filter& f) {
  size_t n = f.job_id.size() + f.user_id.size();
  for (const auto& s : f.job_types) n += s.size();
  for (const auto& s : f.statuses) n += s.size();
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  uint8_t mode = in.U8();
  uint8_t values = in.U8();
  uint16_t bytes = in.U16();
  ParseLimits limits;
  if (!(mode & 1)) {
    limits.max_filter_values = 1 + values % 16;
    limits.max_filter_bytes = 64 + bytes % 512;
  }
  std::string text = in.Rest();

  bool over = false;
  auto m = ParseClientMessage(text, limits, &over);
  if (!m) {
    Check(!m.error().empty());
    return 0;
  }
  Check(!over);
  // What was accepted respects the contract of each op and the limits.
  Check(m->id.size() <= 256);
  Check(!m->since || *m->since >= 0);
  switch (m->op) {
    case ClientMessage::Op::kSubscribe: Check(!m->id.empty()); break;
    case ClientMessage::Op::kUnsubscribe: Check(!m->id.empty()); break;
    case ClientMessage::Op::kAuth: Check(!m->token.empty()); break;
    case ClientMessage::Op::kPing: break;
    case ClientMessage::Op::kAction:
      Check(IsAction(m->action) && !m->job_id.empty());
      Check(m->action != "set_priority" || !m->arg.empty());
      break;
    case ClientMessage::Op::kHistory: Check(!m->job_id.empty()); break;
    case ClientMessage::Op::kCounts: break;
  }
  Check(m->job_id.size() <= 1024 && m->arg.size() <= 256 && m->source.size() <= 256);
  Check(!m->before || *m->before >= 1);
  Check(m->filter.job_types.size() <= limits.max_filter_values);
  Check(m->filter.statuses.size() <= limits.max_filter_values);
  Check(FilterBytes(m->filter) <= limits.max_filter_bytes);

  // Written out again, it reads back the same.
  std::string again = Write(*m);
  bool over2 = false;
  auto m2 = ParseClientMessage(again, limits, &over2);
  Check(static_cast<bool>(m2));
  Check(m2->op == m->op && m2->id == m->id && m2->token == m->token && m2->since == m->since &&
        m2->snapshot == m->snapshot && m2->filter.job_id == m->filter.job_id &&
        m2->filter.user_id == m->filter.user_id && m2->filter.job_types == m->filter.job_types &&
        m2->filter.statuses == m->filter.statuses && m2->action == m->action && m2->job_id == m->job_id &&
        m2->arg == m->arg && m2->source == m->source && m2->before == m->before && m2->limit == m->limit &&
        m2->on == m->on);
  return 0;
}
