// WebSocket sessions: frames from the peer, the closing handshake, and the hooks the
// hub calls (wake a writer, close, principal changed).
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

void Server::OnWsData(Conn& c, std::string_view data) {
  while (!c.destroying) {
    if (Queued(c) > config_.max_queue_bytes) {
      // Replies (pongs, errors) to a peer that does not read: read no more from it.
      Pause(c, data);
      return;
    }
    FrameEvent ev = c.frames->Next(data);
    switch (ev.type) {
      case FrameEvent::Type::kNone:
        return;
      case FrameEvent::Type::kText:
        if (c.phase == Conn::Phase::kWs) hub_.OnText(*c.session, ev.payload);
        break;
      case FrameEvent::Type::kBinary:
        if (c.phase == Conn::Phase::kWs) {
          Queue(c, EncodeFrame(Opcode::kText, hub::ErrorMessage("bad_request", "messages are JSON text frames")));
        }
        break;
      case FrameEvent::Type::kPing:
        Queue(c, EncodeFrame(Opcode::kPong, ev.payload));
        break;
      case FrameEvent::Type::kPong:
        c.keepalive->OnPong();
        break;
      case FrameEvent::Type::kClose:
        if (c.close_sent) {
          Destroy(c, "closing handshake complete");
          return;
        }
        c.close_sent = true;
        c.phase = Conn::Phase::kClosing;
        if (c.session) c.session->MarkClosing();
        Queue(c, EncodeClose(CloseReplyCode(ev.code)));
        c.close_queued = true;
        c.close_after_flush = true;
        c.deadline_ms = uv_now(loop_) + config_.close_timeout_ms;
        ArmTimer(c);
        return;
      case FrameEvent::Type::kError:
        ++stats_.protocol_errors;
        spdlog::debug("ws {}: protocol error {}: {}", c.peer, ev.code, ev.payload);
        StartWsClose(c, ev.code, std::string(ev.payload), false);
        return;
    }
  }
}

void Server::StartWsClose(Conn& c, uint16_t code, const std::string& reason, bool wait_for_peer) {
  if (c.close_sent || c.destroying) return;
  c.close_sent = true;
  c.phase = Conn::Phase::kClosing;
  if (c.session) c.session->MarkClosing();
  if (code == close_code::kTryAgainLater && c.session) c.session->out().Clear();
  Queue(c, EncodeClose(code, reason));
  c.close_queued = true;  // the close frame is the last thing queued
  if (!wait_for_peer) c.close_after_flush = true;
  c.deadline_ms = uv_now(loop_) + (closing_ ? 1000 : config_.close_timeout_ms);
  ArmTimer(c);
}

void Server::Wake(hub::Session& s) {
  if (s.glue) MarkDirty(*static_cast<Conn*>(s.glue));
}

void Server::CloseSession(hub::Session& s, uint16_t code, const std::string& reason) {
  if (!s.glue) return;
  auto& c = *static_cast<Conn*>(s.glue);
  spdlog::info("ws {}: closing {}: {}", c.peer, code, reason);
  StartWsClose(c, code, reason, code != close_code::kTryAgainLater && !closing_);
}

void Server::SessionPrincipalChanged(hub::Session& s) {
  if (!s.glue) return;
  auto& c = *static_cast<Conn*>(s.glue);
  if (c.phase == Conn::Phase::kWs && s.authenticated()) c.deadline_ms = 0;  // no auth deadline
  ArmTimer(c);
}

}  // namespace reactor::ws
