// Fuzzes the channel-payload path: NotifyVerifier, EventParser and the DeliverySequencer
// fed with a mix of notifications as they arrive from PostgreSQL.
//
// Input: [count u8] then `count` records [kind u8][txid u16][length u16][bytes...]
// kind % 4: 0 raw bytes as the notification; 1 the bytes signed (a valid MAC, reaching the
// parser through the verified path); 2 signed, then one byte of the result flipped;
// 3 signed with another key. Invariants checked on every record and on the output:
// - a signed text verifies and gives back exactly the bytes and txid that were signed;
// - a flipped or foreign-key signature never verifies;
// - the sequencer delivers only payloads that verified (unsigned ones are rejected), as
//   they were signed, and its last_event_id is the highest logged id it delivered.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/notify_auth.h"
#include "core/sequencer.h"
#include "fuzz_input.h"

using reactor::DeliverySequencer;
using reactor::Event;
using reactor::NotifyVerdict;
using reactor::NotifyVerifier;
using reactor::SignNotification;
using reactor::fuzz::Input;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

const std::string kKey(32, '\x42');
const std::string kKeyHex = [] {
  std::string h;
  for (int i = 0; i < 32; ++i) h += "42";
  return h;
}();
const std::string kOtherKey(32, '\x24');
constexpr const char* kChannel = "job_status_changed";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  NotifyVerifier verifier(kChannel);
  Check(verifier.SetKeyHex(kKeyHex).ok());
  reactor::EventParser parser;

  std::vector<Event> out;
  DeliverySequencer seq([&](Event&& e) { out.push_back(std::move(e)); }, [](int64_t) {}, 4);
  seq.ConfigureNotifyAuth(kChannel, false);
  Check(seq.SetNotifyKey(kKeyHex).ok());
  (void)seq.BeginCatchUp(seq.NextCatchUpMode());
  seq.OnCatchUpResult(100, {});

  std::set<std::string> verified;  // payloads of everything that verified
  std::string payload;
  uint64_t txid = 0;
  size_t count = in.U8();
  for (size_t i = 0; i < count && !in.empty(); ++i) {
    uint8_t kind = in.U8() % 4;
    uint64_t tx = in.U16();
    std::string bytes = in.Bytes(in.U16() % 12000);
    std::string note = bytes;
    bool valid = false;
    if (kind != 0 && bytes.size() >= 3 && bytes[0] == '{') {
      note = SignNotification(kind == 3 ? kOtherKey : kKey, kChannel, tx, bytes);
      valid = kind == 1;
      if (kind == 2) {
        size_t at = static_cast<size_t>(tx) % note.size();
        note[at] = static_cast<char>(note[at] ^ (1 + bytes.size() % 255));
      }
    }
    NotifyVerdict v = verifier.Verify(note, payload, txid);
    if (valid) {
      Check(v == NotifyVerdict::kOk && payload == bytes && txid == tx);
    } else if (kind != 0 && note != bytes) {
      Check(v != NotifyVerdict::kOk);  // flipped, or another key
    }
    if (v == NotifyVerdict::kOk) {
      verified.insert(payload);
      auto ev = parser.Parse(payload);
      if (ev) Check(ev->json == payload);
    } else {
      (void)parser.Parse(note);  // the parser alone, on whatever arrived
    }
    seq.OnNotification(note);
    if (i % 7 == 6) {  // a prune read now and then, so ids are forgotten and the horizon moves
      (void)seq.BeginCatchUp(DeliverySequencer::CatchUpMode::kPrune);
      seq.OnCatchUpResult(100 + i, {});
    }
    while (seq.backlog()) seq.Pump();
  }

  int64_t last = 0;
  for (const Event& e : out) {
    Check(verified.count(e.json) == 1);
    if (e.is_logged() && e.id > last) last = e.id;
  }
  Check(seq.last_delivered_id() == last);
  return 0;
}
