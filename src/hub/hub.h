// The fan-out: subscriptions, authorization, encode-once publishing, per-connection
// bounded queues, resume (`since`) and snapshots. Pure: the WebSocket server (libuv)
// owns connections and calls in; the hub calls back through Hooks to wake a writer, to
// close a connection (never synchronously inside the caller's own callback: the glue
// defers); it reads PostgreSQL through the pg::ClientReads interface.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/counts.h"
#include "core/defaults.h"
#include "core/history.h"
#include "core/status.h"
#include "hub/auth.h"
#include "hub/conflation.h"
#include "hub/out_queue.h"
#include "hub/protocol.h"
#include "hub/route_index.h"
#include "pg/store.h"

namespace reactor {
class MetricsText;
}

namespace reactor::hub {

class Session {
 public:
  Session(uint64_t id, Principal who, bool authenticated, bool loopback = true)
      : id_(id), who_(std::move(who)), authenticated_(authenticated), loopback_(loopback) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t id() const { return id_; }
  const Principal& who() const { return who_; }
  bool authenticated() const { return authenticated_; }
  bool closing() const { return closing_; }
  OutQueue& out() { return out_; }
  // Bytes handed to a write that has not completed; they count against the limit.
  size_t inflight_bytes = 0;
  // The connection has begun to close (a close frame is queued): nothing more is queued.
  void MarkClosing() { closing_ = true; }
  size_t subscriptions() const { return subs_.size(); }
  // Events waiting to be queued because the connection fell behind (conflation).
  size_t conflated_waiting() const { return backlog_ ? backlog_->size() : 0; }
  void* glue = nullptr;  // the owning connection (opaque to the hub)

 private:
  friend class Hub;
  struct Sub {
    std::string id;
    Filter filter;
    RouteIndex::Key key;             // where the hub's index files it
    bool conflate = false;           // asked for conflation instead of 1013
    uint64_t token = 0;              // identifies this incarnation (async results check it)
    bool pending = false;            // snapshot or resume read in flight: hold live events
    std::optional<pg::ClientReads::Ticket> read;  // that read, cancelled if the sub goes
    std::vector<PublishedRef> held;
    // Routed events at history positions >= `from` only (the position the history had
    // reached when it subscribed, or where its resume from the history ends).
    uint64_t from = 0;
    // A resume from the history still being handed out: positions [next, until).
    bool catching_up = false;
    uint64_t next = 0;
    uint64_t until = 0;
    int64_t since = 0;
    // Exact on any replica: positions before `filtered_until` (those up to `since`'s own)
    // are handed out only when their txid >= `min_txid`, the horizon of `since`.
    uint64_t filtered_until = 0;
    uint64_t min_txid = 0;
    // Ending a pending subscription (a snapshot or a resume from the database answered):
    // handed out as the socket drains, never more than fits under --max-queue-bytes:
    // first `reply` (the snapshot), then `rows` (the resume's events, id order), then the
    // live events held meanwhile (`held`, rounds of them while more arrive), none of
    // those in `skip` (the ids the snapshot or the rows already cover).
    bool streaming = false;
    FrameRef reply;
    std::vector<PublishedRef> rows;
    size_t rows_next = 0;
    size_t owned_rows = 0;  // of `rows`, read from the database (counted in rows_in_memory_)
    std::unordered_set<int64_t> skip;
    bool hold_overflow = false;  // more live events arrived than --max-held-events
  };
  Sub* Find(std::string_view id);

  uint64_t id_;
  Principal who_;
  bool authenticated_;
  bool loopback_;               // the peer's address is a loopback one (actions without a secret)
  bool closing_ = false;
  bool counts_ = false;         // receives `counts` messages
  uint64_t counts_version_ = 0; // the totals' version it was last sent
  // History reads in flight (cancelled when the connection goes); actions are not
  // cancelled (they complete; their answer is dropped).
  std::vector<pg::ClientReads::Ticket> history_reads_;
  OutQueue out_;
  std::vector<Sub> subs_;
  std::unordered_set<uint64_t> sent_while_pending_;  // stream seqs sent while a sub was pending
  // While a resume from the history is handed out, live events are not routed to this
  // session as they are published: the cursor routes them from the history, from this
  // position on, once every catching-up subscription is done (so per-job order holds
  // and nothing is sent twice).
  std::optional<uint64_t> live_pos_;
  bool in_cursor_list_ = false;
  // Conflation: events not queued yet, one per job (allocated when first needed).
  std::unique_ptr<ConflationQueue> backlog_;
  bool in_backlog_list_ = false;
};

struct HubStats {
  uint64_t events = 0;          // published
  uint64_t frames = 0;          // event frames queued to connections
  uint64_t bytes = 0;           // bytes queued to connections (all frames)
  uint64_t control_frames = 0;
  uint64_t slow_closes = 0;
  uint64_t auth_failures = 0;
  uint64_t forbidden = 0;
  uint64_t bad_requests = 0;
  uint64_t resumes_from_history = 0;
  uint64_t resumes_from_database = 0;
  uint64_t gaps = 0;
  uint64_t snapshots = 0;
  uint64_t reads_refused = 0;   // resume/snapshot reads over a bound (per connection or in all)
  uint64_t subscription_limit = 0;  // subscribes refused over --max-subscriptions
  uint64_t filter_limit = 0;        // subscribes refused over --max-filter-values/-bytes
  uint64_t resume_entries = 0;      // history entries walked by resume cursors
  uint64_t resume_deferred = 0;     // loop passes whose resume budget ran out with work left
  uint64_t resume_behind = 0;       // sessions closed 1013: the history moved past their cursor
  uint64_t resumes_widened = 0;     // history resumes that also hand out events before `since`
  uint64_t hold_overflows = 0;      // pending subscriptions that held too many live events: gap
  uint64_t resume_rows_refused = 0; // database resumes over --max-resume-rows in memory: gap
  uint64_t conflated = 0;           // events replaced by a newer one of their job (conflation)
  uint64_t conflation_markers = 0;  // {"type":"conflated"} messages queued
  uint64_t conflation_overflow = 0; // sessions closed 1013: over --max-conflated-jobs waiting
  uint64_t routed_candidates = 0;   // sessions the index offered for events (routing work)
  uint64_t actions_ok = 0;          // actions done (ack)
  uint64_t actions_refused = 0;     // actions refused by the reactor (token, bounds) or the database
  uint64_t actions_failed = 0;      // actions without an answer (database gone, timeout)
  uint64_t history_reads = 0;       // `history` requests answered
  uint64_t counts_reads = 0;        // totals read from the database (GROUP BY)
  uint64_t counts_read_failures = 0;
  uint64_t counts_messages = 0;     // `counts` frames encoded (each sent to every counts viewer)
};

class Hub {
 public:
  struct Config {
    size_t history = defaults::kHistory;
    size_t max_queue_bytes = defaults::kMaxQueueBytes;
    std::string secret;          // empty: no authentication
    TokenRules token_rules;      // leeway, audience, issuer (with a secret)
    std::string server = "reactor";
    size_t snapshot_limit = 5000;      // rows in one snapshot
    size_t resume_limit = 100000;      // events one database resume may return
    size_t max_subscriptions = defaults::kMaxSubscriptions;     // per connection
    ParseLimits parse;                 // filter sizes
    // History entries resume cursors may walk per loop pass, over all connections (a
    // `subscribe` walks at most kResumeEntriesPerMessage of them itself).
    size_t resume_entries_per_pass = defaults::kResumeEntriesPerPass;
    // Live events one subscription may hold while its snapshot or resume is handed out;
    // past it the subscription gets `gap` (the client re-snapshots).
    size_t max_held_events = defaults::kMaxHeldEvents;
    // Events read from the database for resumes, held in memory over all connections.
    size_t max_resume_rows = defaults::kMaxResumeRows;
    // Events (distinct jobs) one conflating connection may have waiting for queue room;
    // over it the connection is closed 1013 like any slow consumer.
    size_t max_conflated_jobs = defaults::kMaxConflatedJobs;
    // "live" (serve) or "replay": said in `welcome`.
    std::string mode = "live";
    // Users (unprivileged tokens) may act on their own jobs (--allow-user-actions).
    bool allow_user_actions = false;
    size_t max_history_events = defaults::kMaxHistoryEvents;  // per `history` request
    uint64_t counts_interval_ms = defaults::kCountsIntervalMs;  // at most one `counts` per interval
    uint64_t counts_refresh_ms = defaults::kCountsRefreshMs;    // re-read the totals this often (0: never)
  };
  static constexpr size_t kResumeEntriesPerMessage = 256;
  struct Hooks {
    std::function<void(Session&)> wake;                                 // output queued
    std::function<void(Session&, uint16_t code, const std::string&)> close;  // close it soon
    pg::ClientReads* reads = nullptr;                  // null in replay; must outlive the hub
    std::function<std::optional<uint64_t>()> horizon;  // the sequencer's horizon
    std::function<void(Session&)> principal_changed;  // re-arm the expiry timer
  };

  Hub(Config config, Hooks hooks);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  bool auth_required() const { return !config_.secret.empty(); }
  const Config& config() const { return config_; }

  // A new connection (after the upgrade); queues the welcome. The caller owns the
  // session and must call Remove() before destroying it.
  // `loopback`: the peer's address is a loopback one.
  std::unique_ptr<Session> Open(Principal who, bool authenticated, bool loopback = true);
  void Remove(Session* s);

  void Publish(Event&& ev);
  // One loop pass of the resume cursors: walks at most resume_entries_per_pass history
  // entries, shared round-robin among the connections whose queues have room. True when
  // work is left that could proceed now (the caller should not let the loop sleep);
  // connections waiting for their queue to drain do not count.
  bool Pump();
  size_t resuming_sessions() const { return cursor_list_.size(); }
  // Connections with conflated events waiting for queue room.
  size_t conflating_sessions() const { return backlog_list_.size(); }
  // A connection's conflated events could be queued now (its queue has room, e.g. after
  // the writes of this pass): the caller should not let the loop sleep before Pump().
  bool BacklogReady() const;
  const RouteIndex& index() const { return index_; }
  void OnText(Session& s, std::string_view text);
  // The query-string shortcut and the `subscribe` op.
  void Subscribe(Session& s, ClientMessage m);
  // The query shortcut of the upgrade request (see ParseShortcut); nothing when it has none.
  void OnShortcut(Session& s, const std::vector<std::pair<std::string, std::string>>& query);
  // The console's periodic work at `now_ms` (a steady clock): reads the totals when they
  // are wanted and due, sends changed totals to their viewers at most once per
  // counts_interval_ms. Returns in how many ms it wants to be called again (nullopt:
  // only when something happens).
  std::optional<uint64_t> Tick(uint64_t now_ms);
  // The event stream reconnected and caught up: read the totals again (deletes and
  // other changes no event reports are corrected by a read).
  void RefreshCounts() { counts_refresh_ = true; }
  const CountsKeeper& counts() const { return counts_; }
  size_t counts_viewers() const { return counts_sessions_.size(); }
  // Closes the session with 1008 when its token has expired at `now_s`.
  void CheckExpiry(Session& s, int64_t now_s);
  // Server shutdown: a close frame to everyone.
  void CloseAll(uint16_t code, const std::string& reason);

  // Verifies a token at `now_s` (counts failures).
  Result<Principal> Authenticate(std::string_view token, int64_t now_s);

  int64_t last_event_id() const { return history_.last_id() ? history_.last_id() : last_id_; }
  size_t sessions() const { return sessions_.size(); }
  size_t subscriptions() const;
  size_t history_size() const { return history_.size(); }
  const HubStats& stats() const { return stats_; }
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;
  void set_last_event_id(int64_t id) { last_id_ = id; }
  // Current time for token checks (unix seconds); replaceable in tests.
  std::function<int64_t()> now_s;

 private:
  FrameRef TextFrame(std::string_view json);
  void SendControl(Session& s, std::string json);
  // `stamp` (live events only) feeds the latency and age metrics. False: the session is closing.
  // `conflate` (an event whose every matching subscription asked for conflation, `p`
  // given): a full queue parks it in the session's backlog instead of closing 1013.
  bool Send(Session& s, FrameRef f, bool event, OutQueue::Stamp stamp = {},
            const PublishedRef* p = nullptr, bool conflate = false);
  // Parks `p` in the backlog; false when that closed the session (over the bound).
  bool Conflate(Session& s, const PublishedRef& p);
  // Queues what the backlog holds while the queue has room; true when it emptied.
  bool DrainBacklog(Session& s);
  bool SlowClose(Session& s, const std::string& why);
  void Unindex(Session& s, Session::Sub& sub);
  // `pos`: the event's position in the history's stream.
  void Route(Session& s, const PublishedRef& p, const FrameRef& frame, uint64_t pos);
  enum class Progress { kDone, kBlocked, kMore };
  // Walks up to `budget` history entries for `s`'s resume cursor (decrements it).
  Progress Advance(Session& s, size_t& budget);
  // Hands out what ending pending subscriptions have waiting (see Sub::streaming).
  Progress Stream(Session& s, size_t& budget);
  void StartStream(Session& s, Session::Sub& sub);
  void DropRows(Session::Sub& sub);
  // Room for `bytes` more in the session's queue (always, when it is empty).
  bool Room(const Session& s, size_t bytes) const;
  void EnterCursor(Session& s);
  void ResumeFromDatabase(Session& s, const std::string& sub_id, int64_t since);
  void TakeSnapshot(Session& s, const std::string& sub_id);
  // Ends a pending sub: delivers `first` (filtered) then held events not in `skip`.
  void Release(Session& s, const std::string& sub_id, uint64_t token,
               const std::vector<PublishedRef>& first, const std::unordered_set<int64_t>& skip);
  Session* Live(uint64_t session_id);
  void CancelRead(Session::Sub& sub);
  // The operator's console (hub/console.cc).
  void OnAction(Session& s, const ClientMessage& m);
  void OnHistory(Session& s, const ClientMessage& m);
  void OnCounts(Session& s, const ClientMessage& m);
  void StartCountsRead(uint64_t now_ms);
  void SendCounts(Session* only);
  void ForgetConsole(Session& s);

  Config config_;
  Hooks hooks_;
  HistoryRing history_;
  uint64_t seq_ = 0;
  uint64_t next_session_ = 1;
  uint64_t next_token_ = 1;
  int64_t last_id_ = 0;
  std::unordered_map<uint64_t, Session*> sessions_;
  std::deque<uint64_t> cursor_list_;  // sessions with a resume cursor or a stream, round-robin
  size_t rows_in_memory_ = 0;         // database resume rows held by streams
  std::vector<uint64_t> backlog_list_;  // sessions with conflated events waiting
  RouteIndex index_;                  // subscriptions by job, user, or broad
  std::vector<uint64_t> candidates_;  // scratch for Publish
  size_t pass_budget_left_ = 0;       // of resume_entries_per_pass, this loop pass
  HubStats stats_;
  // Counts: the totals, their viewers, the read.
  CountsKeeper counts_;
  std::vector<uint64_t> counts_sessions_;
  bool counts_refresh_ = false;
  bool counts_reading_ = false;
  uint64_t counts_sent_version_ = 0;  // the totals' version last sent to every viewer
  size_t counts_skipped_ = 0;         // viewers that missed a version since (queue half full)
  uint64_t counts_sent_ms_ = 0;
  uint64_t counts_read_ms_ = 0;       // when the last read was answered
  uint64_t counts_retry_ms_ = 0;      // a failed read is retried from then on
  uint64_t counts_now_ms_ = 0;        // the last Tick's time
};

}  // namespace reactor::hub
