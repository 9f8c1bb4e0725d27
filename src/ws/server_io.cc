// Reads and writes: one budget for every byte queued to a connection, reading paused
// while it is over, writes coalesced once per loop pass (uv_try_write, then uv_write).
#include "ws/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "core/sat_time.h"
#include "hub/protocol.h"
#include "ws/handshake.h"
#include "ws/server_internal.h"

namespace reactor::ws {

using namespace detail;

namespace {
char g_read_buffer[65536];  // one loop thread; data is consumed inside the read callback
}  // namespace

void Server::OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = g_read_buffer;
  buf->len = sizeof g_read_buffer;
}

void Server::OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* conn = static_cast<Conn*>(s->data);
  if (conn->destroying) return;
  if (nread < 0) {
    conn->server->Destroy(*conn, nread == UV_EOF ? "peer closed" : uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (nread > 0) conn->server->OnData(*conn, std::string_view(buf->base, static_cast<size_t>(nread)));
}

size_t Server::Queued(const Conn& c) const {
  return c.own_out.bytes() + (c.session ? c.session->out().bytes() : 0) + c.inflight;
}

void Server::Pause(Conn& c, std::string_view rest) {
  c.pending_in.assign(rest);
  if (c.read_paused) return;
  c.read_paused = true;
  ++stats_.read_pauses;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c.tcp));
  spdlog::debug("connection {}: not read while {} bytes are queued", c.peer, Queued(c));
  if (c.phase == Conn::Phase::kHttp && !c.close_after_flush) {
    // A client that pipelines requests and reads no responses is dropped when its
    // queue has not drained within the idle time.
    c.deadline_ms = uv_now(loop_) + config_.idle_timeout_ms;
    ArmTimer(c);
  }
}

void Server::Resume(Conn& c) {
  c.read_paused = false;
  std::string rest = std::move(c.pending_in);
  c.pending_in.clear();
  if (!rest.empty()) OnData(c, rest);
  if (c.read_paused || c.destroying) return;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c.tcp), OnAlloc, OnRead);
}

void Server::Queue(Conn& c, std::string bytes) {
  if (c.destroying || c.close_queued) return;
  // Protocol frames and HTTP responses go ahead of nothing else the hub has queued:
  // before the upgrade there is no session; after it, into the session's queue.
  auto f = std::make_shared<const std::string>(std::move(bytes));
  if (c.session && c.phase != Conn::Phase::kHttp) {
    c.session->out().Push(std::move(f));
  } else {
    c.own_out.Push(std::move(f));
  }
  MarkDirty(c);
}

void Server::MarkDirty(Conn& c) {
  if (c.dirty || c.destroying) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

void Server::OnPrepare(uv_prepare_t* p) {
  auto* self = static_cast<Server*>(p->data);
  // Resume cursors first (their frames go out in this pass's writes). While they have
  // work ready, an idle handle keeps the loop from sleeping.
  bool more = self->hub_.Pump();
  // The console's timers (the totals' pacing and reads) before this pass's writes.
  // Only the WebSocket listener drives it (a --metrics-listen server shares the hub).
  std::optional<uint64_t> wait;
  if (self->config_.websocket) wait = self->hub_.Tick(uv_now(self->loop_));
  if (wait && !self->closing_) {
    uv_timer_start(&self->console_timer_, [](uv_timer_t*) {}, std::max<uint64_t>(*wait, 1), 0);
  } else {
    uv_timer_stop(&self->console_timer_);
  }
  self->FlushAll();
  // Writes that emptied a queue make room for conflated events: another pass, not a sleep.
  more = more || self->hub_.BacklogReady();
  if (more && !self->closing_) {
    uv_idle_start(&self->idle_, [](uv_idle_t*) {});
  } else {
    uv_idle_stop(&self->idle_);
  }
}

void Server::FlushAll() {
  // A flush that resumes a paused connection may queue more (its parsed input): a few
  // rounds so that nothing waits for the next wake-up.
  for (int round = 0; round < 4 && !dirty_.empty(); ++round) {
    std::vector<Conn*> batch;
    batch.swap(dirty_);
    for (Conn* c : batch) {
      c->dirty = false;
      if (!c->destroying) Flush(*c);
    }
  }
}

void Server::ObserveLatency(const hub::OutQueue::Stamp& st, uint64_t now_ns, int64_t wall_us) {
  stats_.latency.Observe(now_ns > st.received_ns ? (now_ns - st.received_ns) / 1000 : 0);
  // Commit to socket, across two clocks (the database's `at`, this host's): a clock
  // ahead of the database's reads as 0.
  if (st.at_us > 0) stats_.age.Observe(wall_us > st.at_us ? static_cast<uint64_t>(wall_us - st.at_us) : 0);
}

void Server::Flush(Conn& c) {
  while (!c.writing && !c.destroying) {
    if (c.read_paused && Queued(c) <= config_.max_queue_bytes / 2) {
      Resume(c);
      continue;
    }
    if (!c.has_output()) {
      if (c.close_after_flush) Destroy(c, "closed after the last write");
      return;
    }
    hub::OutQueue& q = c.queue();
    auto chunks = q.Gather(64);
    std::vector<uv_buf_t> bufs;
    size_t total = 0;
    for (const auto& ch : chunks) {
      bufs.push_back(uv_buf_init(const_cast<char*>(ch.view().data()), static_cast<unsigned>(ch.size)));
      total += ch.size;
    }
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c.tcp), bufs.data(), static_cast<unsigned>(bufs.size()));
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
      Destroy(c, uv_strerror(n));
      return;
    }
    ++stats_.writes;
    stats_.bytes_written += static_cast<uint64_t>(n);
    const uint64_t now = SteadyNs();
    const int64_t wall_us = UnixMicros();
    q.Consume(static_cast<size_t>(n), [&](const hub::OutQueue::Stamp& st) { ObserveLatency(st, now, wall_us); });
    if (static_cast<size_t>(n) == total) continue;

    // The socket is full: hand the rest of these buffers to one asynchronous write.
    auto* w = new WriteReq{};
    w->conn = &c;
    w->chunks = q.Gather(64);
    bufs.clear();
    for (const auto& ch : w->chunks) {
      bufs.push_back(uv_buf_init(const_cast<char*>(ch.view().data()), static_cast<unsigned>(ch.size)));
      w->bytes += ch.size;
    }
    q.Consume(w->bytes, [&](const hub::OutQueue::Stamp& st) { w->stamps.push_back(st); });
    if (c.session) c.session->inflight_bytes += w->bytes;
    c.inflight += w->bytes;
    c.writing = true;
    ++stats_.async_writes;
    w->req.data = w;
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c.tcp), bufs.data(),
                      static_cast<unsigned>(bufs.size()), [](uv_write_t* req, int status) {
                        auto* wr = static_cast<WriteReq*>(req->data);
                        Conn* conn = wr->conn;
                        Server* self = conn->server;
                        conn->writing = false;
                        if (conn->session) conn->session->inflight_bytes -= wr->bytes;
                        conn->inflight -= wr->bytes;
                        if (status == 0) {
                          self->stats_.bytes_written += wr->bytes;
                          const uint64_t t = SteadyNs();
                          const int64_t wall_us = UnixMicros();
                          for (const auto& st : wr->stamps) self->ObserveLatency(st, t, wall_us);
                        }
                        delete wr;
                        if (conn->destroying) return;
                        if (status < 0) {
                          self->Destroy(*conn, uv_strerror(status));
                          return;
                        }
                        self->MarkDirty(*conn);
                      });
    if (rc != 0) {
      c.writing = false;
      if (c.session) c.session->inflight_bytes -= w->bytes;
      c.inflight -= w->bytes;
      delete w;
      Destroy(c, uv_strerror(rc));
    }
    return;
  }
}

}  // namespace reactor::ws
