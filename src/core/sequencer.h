// DeliverySequencer: turns NOTIFY doorbells and catch-up reads of reactor.job_events
// into one stream in which no event is lost, none is delivered twice, and per job the
// order is the commit order. Pure: the caller (PgConnection) does the I/O and feeds
// results in; time and transaction ids are plain numbers. docs/delivery.md explains why
// the method is sound.
//
// The catch-up query this pairs with (see CatchUpSql()) returns, in one snapshot S:
//   horizon h = pg_snapshot_xmin(S), and every committed row with txid >= threshold,
//   ordered by id, with its payload unless the id was already seen.
// Any transaction that commits after S has an xid >= h, so "txid >= h" is a superset of
// everything S could not see. Rows are deduplicated by id against `seen`, which only
// needs to hold ids with txid >= the current horizon (plus two generations of recent
// ones whose notification may still be in flight).
//
// Notifications are trusted only when signed (core/notify_auth.h, docs/security.md): the
// key comes from the connection (SetNotifyKey) before the catch-up read it pairs with, so
// every notification held until then is verified on release. A signed event's txid
// also rejects replays: an event whose transaction is older than the last read's horizon
// was read already (docs/delivery.md, "Replays").
//
// Threading: single thread (the loop). Not copyable.
#pragma once

#include <cstdint>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/event.h"
#include "core/notify_auth.h"
#include "core/status.h"

namespace reactor {

class MetricsText;

class DeliverySequencer {
 public:
  enum class CatchUpMode {
    kInitial,    // first connection: rows mark the start of the stream, nothing delivered
    kReconnect,  // after any loss: deliver every row not seen, hold live events meanwhile
    kPrune,      // live and healthy: shrink `seen`; notifications keep flowing
  };

  struct Row {
    int64_t id = 0;
    uint64_t txid = 0;
    std::optional<std::string> payload;  // absent when the id was in the query's seen list
    uint64_t horizon = 0;                // the row's horizon column
  };

  struct Stats {
    uint64_t delivered = 0;
    uint64_t duplicates_dropped = 0;
    uint64_t recovered = 0;   // delivered from a catch-up read rather than a notification
    uint64_t fetches = 0;     // truncated payloads completed from the table
    uint64_t parse_errors = 0;
    // Signed, but its transaction is older than the last read's horizon and its id is
    // no longer remembered: a read delivered it already (a late notification) or it is
    // a replay, or it predates the stream.
    uint64_t stale_dropped = 0;
    // Notifications dropped before parsing, by NotifyVerdict (index kOk stays 0).
    std::array<uint64_t, kNotifyVerdictCount> rejected{};
    uint64_t unsigned_accepted = 0;  // --accept-unsigned-payloads: passed on as foreign
  };

  using DeliverFn = std::function<void(Event&&)>;
  using FetchFn = std::function<void(int64_t id)>;  // ask for the full payload of `id`

  // `deliver` receives the stream; `fetch` is called when a truncated event needs its
  // payload (answer with OnFetched, or OnFetchLost on a disconnect).
  DeliverySequencer(DeliverFn deliver, FetchFn fetch, size_t prune_threshold = 16384);
  DeliverySequencer(const DeliverySequencer&) = delete;
  DeliverySequencer& operator=(const DeliverySequencer&) = delete;

  // The channel the notifications come on (it is part of what is signed) and whether an
  // unsigned payload is passed on (as a foreign payload: no id, never deduplicated,
  // fetched or a doorbell) rather than rejected.
  void ConfigureNotifyAuth(std::string channel, bool accept_unsigned);
  // The key of reactor.notify_key, as 64 hex digits. REQUIRES: called before every
  // catch-up read that follows a (re)connect (the connection reads it right after LISTEN).
  Status SetNotifyKey(std::string_view hex) { return verifier_.SetKeyHex(hex); }

  // The connection is (re)listening: which catch-up to run now.
  CatchUpMode NextCatchUpMode() const { return started_ ? CatchUpMode::kReconnect : CatchUpMode::kInitial; }
  // Whether live traffic has grown `seen` enough to ask for a prune read.
  bool WantsPrune() const { return !in_flight_ && started_ && seen_.size() > prune_at_; }

  // Parameters for the catch-up query: threshold txid (nullopt = "the snapshot's own
  // horizon", used for the first read) and the seen ids (their payloads are not sent).
  // Marks the read as in flight. Live events are held from a connection loss (or the
  // start) until a kInitial/kReconnect read completes.
  struct CatchUpParams {
    std::optional<uint64_t> threshold;
    std::vector<int64_t> seen_ids;
  };
  CatchUpParams BeginCatchUp(CatchUpMode mode);

  // The read's result, rows ordered by id. Releases held events after the recovered ones.
  void OnCatchUpResult(uint64_t horizon, const std::vector<Row>& rows);

  // The connection is gone (any read in flight with it). Until the next catch-up read
  // completes, every notification is held: those that arrive between the new LISTEN
  // and the read's result may belong after events only that read will recover.
  void OnConnectionLost();

  // A notification payload from the channel, as received (signed or not).
  void OnNotification(std::string_view payload);

  // At most this many events leave per call (OnNotification, OnCatchUpResult, Pump...);
  // the rest wait, in order, for Pump(). A catch-up of 100 000 rows is then handed out
  // over many loop passes, so the journal and the sockets are written in between.
  void set_max_per_drain(size_t n) { max_per_drain_ = n ? n : 1; }
  // Events ready to leave (not waiting for a fetch): call Pump() on a later loop pass.
  bool backlog() const { return !out_.empty() && !out_.front().awaiting_fetch; }
  void Pump() { Drain(); }

  // The full payload of a truncated event, or nullopt when the row is gone.
  void OnFetched(int64_t id, std::optional<std::string_view> payload);
  // The connection dropped: every fetch in flight must be asked for again.
  std::vector<int64_t> PendingFetches() const;

  int64_t last_delivered_id() const { return last_id_; }
  size_t seen_size() const { return seen_.size(); }
  size_t held_size() const { return held_.size(); }
  std::optional<uint64_t> horizon() const { return horizon_; }
  bool catching_up() const { return !live_; }
  const Stats& stats() const { return stats_; }
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;
  // Why the last payload could not be parsed (for rate-limited logging by the caller).
  const std::string& last_parse_error() const { return last_parse_error_; }
  // Why the last notification was rejected (likewise).
  const std::string& last_reject() const { return last_reject_; }

 private:
  struct Item {
    Event event;
    bool awaiting_fetch = false;
  };
  void Accept(std::string_view raw);   // verify, parse, admit
  void Admit(Event&& ev, uint64_t txid);  // dedup + order a verified event
  void Enqueue(Event&& ev);
  void Drain();

  DeliverFn deliver_;
  FetchFn fetch_;
  EventParser parser_;
  NotifyVerifier verifier_;
  bool accept_unsigned_ = false;
  std::string verified_;  // the verified payload (reused buffer)
  size_t base_prune_;
  size_t prune_at_;
  size_t max_per_drain_ = SIZE_MAX;

  bool started_ = false;    // an initial read has completed
  bool live_ = false;       // caught up on this connection: notifications flow
  bool in_flight_ = false;
  CatchUpMode mode_ = CatchUpMode::kInitial;
  uint64_t generation_ = 0;
  std::optional<uint64_t> horizon_;
  std::unordered_map<int64_t, uint64_t> seen_;  // id -> keep at least until this generation
  std::deque<std::string> held_;                 // raw notifications during a catch-up
  std::deque<Item> out_;                         // ordered output; head may await a fetch
  int64_t last_id_ = 0;
  Stats stats_;
  std::string last_parse_error_;
  std::string last_reject_;
};

}  // namespace reactor
