#include "pg/queries.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace reactor::pg::queries {
namespace {

// One snapshot: its horizon as a row with id 0, then every row with txid >= threshold
// (the horizon itself on the first read), payload omitted for ids already seen.
constexpr const char* kCatchUpSql =
    "SELECT 0::bigint AS id, pg_snapshot_xmin(pg_current_snapshot())::text AS txid, "
    "NULL::text AS payload, NULL::text AS horizon "
    "UNION ALL "
    "SELECT e.id, e.txid::text, CASE WHEN s.id IS NULL THEN e.payload::text END, e.horizon::text "
    "FROM reactor.job_events e LEFT JOIN unnest($2::bigint[]) AS s(id) ON s.id = e.id "
    "WHERE e.txid >= coalesce($1::xid8, pg_snapshot_xmin(pg_current_snapshot()))";

constexpr const char* kNotifyKeySql = "SELECT encode(key, 'hex') FROM reactor.notify_key WHERE id = 1";

constexpr const char* kFetchSql = "SELECT payload::text FROM reactor.job_events WHERE id = $1";

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

// The matching jobs as of one snapshot, each with what its newest event says of the last
// change (`last_event`: one probe of idx_job_events_job_id per row; payload fields, so a
// schema before migration 006 gives nulls), and the ids of recent events that snapshot
// already reflects (so that the live events held meanwhile are not applied twice).
constexpr const char* kSnapshotSql =
    "SELECT coalesce((SELECT json_agg(r ORDER BY r.updated_at DESC)::text FROM ("
    "  SELECT j.*, (SELECT json_build_object('id', e.id, 'kind', e.kind, 'at', e.payload->'at', "
    "                 'cause', e.payload->'cause', 'actor', e.payload->'actor', "
    "                 'action', e.payload->'action', 'attempt', e.payload->'attempt') "
    "                 FROM reactor.job_events e WHERE e.job_id = j.id AND e.source = 'scheduled_jobs' "
    "                ORDER BY e.id DESC LIMIT 1) AS last_event "
    "    FROM (SELECT * FROM reactor.scheduled_jobs "
    "           WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR user_id = $2) "
    "             AND ($3::text[] IS NULL OR job_type = ANY($3)) AND ($4::text[] IS NULL OR status = ANY($4)) "
    "           ORDER BY updated_at DESC LIMIT $5) j) r), '[]'), "
    "  (SELECT coalesce(array_agg(id), '{}')::text FROM reactor.job_events "
    "    WHERE txid >= coalesce($6::xid8, pg_snapshot_xmin(pg_current_snapshot())))";

// One job's events, newest first (idx_job_events_job_id).
constexpr const char* kHistorySql =
    "SELECT payload::text FROM reactor.job_events "
    " WHERE job_id = $1 AND ($2::text IS NULL OR source = $2) AND ($3::bigint IS NULL OR id < $3) "
    "   AND ($4::text IS NULL OR user_id = $4) "
    " ORDER BY id DESC LIMIT $5";

// reactor.job_action (migration 006): the id of the event it wrote.
constexpr const char* kActionSql = "SELECT reactor.job_action($1, $2, $3, $4, $5)";

// The totals by status × job type and, first, the snapshot they were counted in.
constexpr const char* kCountsSql =
    "SELECT pg_current_snapshot()::text, NULL::text, NULL::bigint "
    "UNION ALL "
    "SELECT status, job_type, count(*) FROM reactor.scheduled_jobs GROUP BY status, job_type LIMIT 10001";

// One row: the next deadline (or NULL) and the statement's now(), as Unix microseconds.
constexpr const char* kTickSql =
    "SELECT (extract(epoch FROM t) * 1000000)::int8, (extract(epoch FROM now()) * 1000000)::int8 "
    "FROM reactor.tick() AS t";
constexpr const char* kClockSql = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8";

std::optional<std::string> OrNull(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

std::optional<int64_t> ReadInt64(const PGresult* r, int row, int col) {
  if (!r || PQntuples(r) <= row || PQnfields(r) <= col || PQgetisnull(r, row, col)) return std::nullopt;
  const char* text = PQgetvalue(r, row, col);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<std::string> ReadText(const PGresult* r, int row, int col) {
  if (!r || PQntuples(r) <= row || PQnfields(r) <= col || PQgetisnull(r, row, col)) return std::nullopt;
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

// Submits `sql` and hands the callback either the error or `decode(result)`.
template <class T, class Decode>
Status Run(Session& s, std::string sql, std::vector<std::optional<std::string>> params, Reply<T> cb,
           Decode decode, Session::Ticket* ticket = nullptr, bool urgent = false, bool simple = false) {
  Session::Statement st;
  st.sql = std::move(sql);
  st.params = std::move(params);
  st.urgent = urgent;
  st.simple = simple;
  st.cb = [cb = std::move(cb), decode = std::move(decode)](const pg_result* r, const std::string& error) {
    if (!error.empty()) {
      cb(Status::Error(error));
      return;
    }
    cb(decode(r));
  };
  return s.Submit(std::move(st), ticket);
}

}  // namespace

std::optional<std::string> TextArray(const std::vector<std::string>& v) {
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

std::unordered_set<int64_t> ParseIdArray(std::string_view text) {
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

Status Listen(Session& s, const std::vector<std::string>& channels, Reply<Done> cb) {
  std::string sql;
  for (const auto& c : channels) sql += "LISTEN " + s.QuoteIdentifier(c) + "; ";
  return Run<Done>(s, std::move(sql), {}, std::move(cb), [](const pg_result*) -> Result<Done> { return Done{}; },
                   nullptr, /*urgent=*/true, /*simple=*/true);
}

std::string SelfCheckSql(const std::string& channel) {
  // The channel is the reactor's own name; quoted all the same.
  std::string literal = "'";
  for (char c : channel) {
    if (c == '\'') literal += '\'';
    literal += c;
  }
  return "SELECT pg_notify(" + literal + "', 'check')";
}

Status NotifyKey(Session& s, Reply<std::string> cb) {
  return Run<std::string>(s, kNotifyKeySql, {}, std::move(cb), [](const pg_result* r) -> Result<std::string> {
    auto key = ReadText(r, 0, 0);
    if (!key || PQntuples(r) != 1) return Status::Error("reactor.notify_key has no row");
    return std::move(*key);
  }, nullptr, /*urgent=*/true);
}

Status CatchUp(Session& s, const CatchUpRead& read, Reply<CatchUpRows> cb) {
  std::string ids = "{";
  for (size_t i = 0; i < read.seen_ids.size(); ++i) {
    if (i) ids += ',';
    ids += std::to_string(read.seen_ids[i]);
  }
  ids += '}';
  std::optional<std::string> threshold;
  if (read.threshold) threshold = std::to_string(*read.threshold);
  return Run<CatchUpRows>(s, kCatchUpSql, {threshold, ids}, std::move(cb), [](const pg_result* r) -> Result<CatchUpRows> {
    CatchUpRows out;
    const int n = PQntuples(r);
    out.rows.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int64_t id = std::strtoll(PQgetvalue(r, i, 0), nullptr, 10);
      const uint64_t txid = std::strtoull(PQgetvalue(r, i, 1), nullptr, 10);
      if (id == 0) {
        out.horizon = txid;
        continue;
      }
      DeliverySequencer::Row row{id, txid, std::nullopt, 0};
      if (!PQgetisnull(r, i, 2)) row.payload.emplace(PQgetvalue(r, i, 2), static_cast<size_t>(PQgetlength(r, i, 2)));
      if (!PQgetisnull(r, i, 3)) row.horizon = std::strtoull(PQgetvalue(r, i, 3), nullptr, 10);
      out.rows.push_back(std::move(row));
    }
    std::sort(out.rows.begin(), out.rows.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
  }, nullptr, /*urgent=*/true);
}

Status Fetch(Session& s, int64_t id, Reply<std::optional<std::string>> cb) {
  return Run<std::optional<std::string>>(s, kFetchSql, {std::to_string(id)}, std::move(cb),
                                         [](const pg_result* r) -> Result<std::optional<std::string>> {
                                           return ReadText(r, 0, 0);
                                         });
}

Status Resume(Session& s, const ResumeQuery& q, Reply<ResumeRows> cb, Session::Ticket* ticket) {
  const Filter& f = q.filter;
  return Run<ResumeRows>(
      s, kResumeSql,
      {std::to_string(q.since), OrNull(f.job_id), OrNull(f.user_id), TextArray(f.job_types),
       TextArray(f.statuses), std::to_string(q.limit + 1)},
      std::move(cb),
      [](const pg_result* r) -> Result<ResumeRows> {
        ResumeRows out;
        const auto known = ReadText(r, 0, 1);
        out.since_known = known && *known != "0";
        const int n = PQntuples(r);
        for (int i = 1; i < n; ++i) {
          if (auto p = ReadText(r, i, 1)) out.payloads.push_back(std::move(*p));
        }
        return out;
      },
      ticket);
}

Status Snapshot(Session& s, const SnapshotQuery& q, Reply<SnapshotRows> cb, Session::Ticket* ticket) {
  const Filter& f = q.filter;
  std::optional<std::string> horizon;
  if (q.horizon) horizon = std::to_string(*q.horizon);
  return Run<SnapshotRows>(
      s, kSnapshotSql,
      {OrNull(f.job_id), OrNull(f.user_id), TextArray(f.job_types), TextArray(f.statuses),
       std::to_string(q.limit), horizon},
      std::move(cb),
      [](const pg_result* r) -> Result<SnapshotRows> {
        auto jobs = ReadText(r, 0, 0);
        if (!jobs) return Status::Error("no result");
        SnapshotRows out;
        out.jobs_json = std::move(*jobs);
        if (auto ids = ReadText(r, 0, 1)) out.reflected = ParseIdArray(*ids);
        return out;
      },
      ticket);
}

Status History(Session& s, const HistoryQuery& q, Reply<HistoryRows> cb, Session::Ticket* ticket) {
  std::optional<std::string> before;
  if (q.before) before = std::to_string(*q.before);
  return Run<HistoryRows>(
      s, kHistorySql, {q.job_id, OrNull(q.source), before, OrNull(q.only_user), std::to_string(q.limit + 1)},
      std::move(cb),
      [](const pg_result* r) -> Result<HistoryRows> {
        HistoryRows out;
        const int n = PQntuples(r);
        out.payloads.reserve(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) {
          if (auto p = ReadText(r, i, 0)) out.payloads.push_back(std::move(*p));
        }
        return out;
      },
      ticket);
}

ActionResult ActionRefusal(std::string_view sqlstate, std::string message) {
  ActionResult out;
  out.message = std::move(message);
  if (sqlstate == "P0002") {
    out.code = "not_found";
  } else if (sqlstate == "42501") {
    out.code = "forbidden";
  } else if (sqlstate == "55000") {
    out.code = "conflict";
  } else if (sqlstate == "55P03") {
    out.code = "conflict";
    out.message = "the job is locked by a worker; try again";
  } else if (sqlstate == "22023" || sqlstate == "22P02" || sqlstate == "23514") {
    out.code = "bad_request";
  } else {
    out.code = "unavailable";  // anything else (a missing migration, a permission): the server's problem
  }
  return out;
}

Status Action(Session& s, const ActionRequest& q, Reply<ActionResult> cb, Session::Ticket* ticket) {
  Session::Statement st;
  st.sql = kActionSql;
  st.params = {q.job_id, q.action, q.actor, OrNull(q.only_user), OrNull(q.arg)};
  st.cb = [cb = std::move(cb)](const pg_result* r, const std::string& error) {
    if (!error.empty()) {
      if (!r) {
        cb(Status::Error(error));  // cancelled, timed out before an answer, connection lost
        return;
      }
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
      if (state && std::string_view(state) == "57014") {
        cb(Status::Error(error));  // statement timeout: not the database's answer to the action
        return;
      }
      cb(ActionRefusal(state ? state : "", primary ? primary : error));
      return;
    }
    auto id = ReadInt64(r, 0, 0);
    if (!id) {
      cb(Status::Error("reactor.job_action returned no event id"));
      return;
    }
    ActionResult out;
    out.event_id = *id;
    cb(out);
  };
  return s.Submit(std::move(st), ticket);
}

Status Counts(Session& s, Reply<CountsRows> cb, Session::Ticket* ticket) {
  return Run<CountsRows>(
      s, kCountsSql, {}, std::move(cb),
      [](const pg_result* r) -> Result<CountsRows> {
        CountsRows out;
        const int n = PQntuples(r);
        for (int i = 0; i < n; ++i) {
          if (PQgetisnull(r, i, 2)) {
            if (auto snap = ReadText(r, i, 0)) out.snapshot = std::move(*snap);
            continue;
          }
          CountsRows::Row row;
          row.status = ReadText(r, i, 0).value_or("");
          row.job_type = ReadText(r, i, 1).value_or("");
          row.n = ReadInt64(r, i, 2).value_or(0);
          out.rows.push_back(std::move(row));
        }
        if (out.snapshot.empty()) return Status::Error("no snapshot in the counts");
        return out;
      },
      ticket);
}

Status Tick(Session& s, Reply<TickAnswer> cb) {
  return Run<TickAnswer>(s, kTickSql, {}, std::move(cb), [](const pg_result* r) -> Result<TickAnswer> {
    const auto now = ReadInt64(r, 0, 1);
    const bool next_null = r && PQntuples(r) == 1 && PQnfields(r) == 2 && PQgetisnull(r, 0, 0);
    const auto next = ReadInt64(r, 0, 0);
    if (!now || (!next_null && !next)) return Status::Error("unexpected answer from reactor.tick()");
    return TickAnswer{next_null ? std::nullopt : next, *now};
  });
}

Status Clock(Session& s, Reply<int64_t> cb) {
  return Run<int64_t>(s, kClockSql, {}, std::move(cb), [](const pg_result* r) -> Result<int64_t> {
    auto v = ReadInt64(r, 0, 0);
    if (!v) return Status::Error("unexpected answer to the clock reading");
    return *v;
  });
}

namespace {

// The wait may last days: nothing configured for ordinary sessions may end it.
std::string NoTimeouts(const Session& s) {
  std::string sql = "SET statement_timeout = 0; SET lock_timeout = 0; ";
  if (s.server_version() >= 140000) sql += "SET idle_session_timeout = 0; ";
  return sql + "SET idle_in_transaction_session_timeout = 0; ";
}

Status RunDone(Session& s, std::string sql, Reply<Done> cb) {
  return Run<Done>(s, std::move(sql), {}, std::move(cb), [](const pg_result*) -> Result<Done> { return Done{}; },
                   nullptr, false, /*simple=*/true);
}

}  // namespace

Status PrepareLeaderWait(Session& s, Reply<Done> cb) {
  // READ COMMITTED whatever default_transaction_isolation says: a transaction snapshot
  // would be held for as long as the transaction stays open. The ACCESS SHARE lock (which
  // conflicts with no other reactor's) looks the table up, so that the catalog caches hold
  // everything the EXCLUSIVE request needs.
  return RunDone(s, NoTimeouts(s) + "BEGIN ISOLATION LEVEL READ COMMITTED; "
                 "LOCK TABLE ONLY reactor.scheduler_leader IN ACCESS SHARE MODE", std::move(cb));
}

Status WaitForLeaderTable(Session& s, Reply<Done> cb) {
  return RunDone(s, "LOCK TABLE ONLY reactor.scheduler_leader IN EXCLUSIVE MODE", std::move(cb));
}

Status TakeLeaderAdvisoryLock(Session& s, Reply<Done> cb) {
  return RunDone(s, "SELECT pg_advisory_lock(" + std::to_string(kLeaderLockKey) + ")", std::move(cb));
}

Status WarmUp(Session& s, Reply<Done> cb) {
  return Run<Done>(s, "SELECT reactor.warm_up()", {}, std::move(cb),
                   [](const pg_result*) -> Result<Done> { return Done{}; });
}

Status WaitForLeaderLock(Session& s, Reply<Done> cb) {
  return RunDone(s, "ROLLBACK; " + NoTimeouts(s) + "SELECT pg_advisory_lock(" + std::to_string(kLeaderLockKey) + ")",
                 std::move(cb));
}

Status SetStatementTimeout(Session& s, uint64_t ms, Reply<Done> cb) {
  return Run<Done>(s, "SET statement_timeout = " + std::to_string(ms), {}, std::move(cb),
                   [](const pg_result*) -> Result<Done> { return Done{}; }, nullptr, /*urgent=*/true,
                   /*simple=*/true);
}

}  // namespace reactor::pg::queries
