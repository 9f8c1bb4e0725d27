// Helpers shared by the WebSocket codec tests: client frames, chunked feeding, and a
// minimal decoder for server frames.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ws/frame.h"

namespace reactor::ws {

// For doctest's failure messages.
inline std::ostream& operator<<(std::ostream& os, const OwnedFrameEvent& e) {
  static constexpr const char* kNames[] = {"none", "text", "binary", "ping", "pong", "close", "error"};
  os << kNames[static_cast<int>(e.type)];
  if (e.code != 0) os << " " << e.code;
  os << " [" << e.payload.size() << " bytes";
  if (e.payload.size() <= 40) os << ": \"" << e.payload << "\"";
  return os << "]";
}
inline std::ostream& operator<<(std::ostream& os, const std::vector<OwnedFrameEvent>& v) {
  os << "{";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os << "}";
}

}  // namespace reactor::ws

namespace reactor::ws::testing {

using Type = FrameEvent::Type;

// A masked client frame. The mask changes from call to call so that no test depends on
// one particular key.
inline std::string Frame(uint8_t opcode, std::string_view payload, bool fin = true,
                         uint8_t rsv = 0) {
  static uint32_t counter = 0x9e3779b9u;
  counter = counter * 1664525u + 1013904223u;
  ClientFrame f;
  f.opcode = opcode;
  f.payload = payload;
  f.fin = fin;
  f.rsv = rsv;
  f.mask = {{static_cast<uint8_t>(counter >> 24), static_cast<uint8_t>(counter >> 16),
             static_cast<uint8_t>(counter >> 8), static_cast<uint8_t>(counter)}};
  return EncodeClientFrame(f);
}

inline std::string Text(std::string_view s, bool fin = true) { return Frame(0x1, s, fin); }
inline std::string Binary(std::string_view s, bool fin = true) { return Frame(0x2, s, fin); }
inline std::string Cont(std::string_view s, bool fin = true) { return Frame(0x0, s, fin); }
inline std::string Ping(std::string_view s = {}) { return Frame(0x9, s); }
inline std::string Pong(std::string_view s = {}) { return Frame(0xA, s); }
inline std::string CloseFrame(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason);
  return Frame(0x8, p);
}

// Splits `bytes` into chunks of `size` bytes (the last may be shorter).
inline std::vector<std::string> Chop(std::string_view bytes, size_t size) {
  std::vector<std::string> out;
  for (size_t i = 0; i < bytes.size(); i += size) out.emplace_back(bytes.substr(i, size));
  return out;
}

// Feeds the chunks in order; events[i] are those that chunk i produced.
struct Trace {
  std::vector<std::vector<OwnedFrameEvent>> per_chunk;
  std::vector<OwnedFrameEvent> all() const {
    std::vector<OwnedFrameEvent> out;
    for (const auto& c : per_chunk) out.insert(out.end(), c.begin(), c.end());
    return out;
  }
  // Index of the chunk that produced the first event of type t, or -1.
  int chunk_of(Type t) const {
    for (size_t i = 0; i < per_chunk.size(); ++i) {
      for (const auto& e : per_chunk[i]) {
        if (e.type == t) return static_cast<int>(i);
      }
    }
    return -1;
  }
};

inline Trace Drive(FrameParser& p, const std::vector<std::string>& chunks) {
  Trace t;
  for (const auto& c : chunks) {
    t.per_chunk.emplace_back();
    p.Feed(c, t.per_chunk.back());
  }
  return t;
}

inline std::vector<OwnedFrameEvent> Parse(std::string_view bytes, size_t chunk = 0,
                                          size_t max_message = FrameParser::kDefaultMaxMessage) {
  FrameParser p(max_message);
  return Drive(p, chunk == 0 ? std::vector<std::string>{std::string(bytes)} : Chop(bytes, chunk))
      .all();
}

inline OwnedFrameEvent Ev(Type t, std::string payload = {}, uint16_t code = 0) {
  return {t, code, std::move(payload)};
}
inline OwnedFrameEvent TextEv(std::string s) { return Ev(Type::kText, std::move(s)); }
inline OwnedFrameEvent BinaryEv(std::string s) { return Ev(Type::kBinary, std::move(s)); }
inline OwnedFrameEvent PingEv(std::string s = {}) { return Ev(Type::kPing, std::move(s)); }
inline OwnedFrameEvent PongEv(std::string s = {}) { return Ev(Type::kPong, std::move(s)); }
inline OwnedFrameEvent CloseEv(uint16_t code, std::string reason = {}) {
  return Ev(Type::kClose, std::move(reason), code);
}

// Only the type and code of an error matter to the peer; the reason text is for logs.
inline bool IsError(const OwnedFrameEvent& e, uint16_t code) {
  return e.type == Type::kError && e.code == code && !e.payload.empty();
}

// A server frame as a client sees it.
struct ServerFrame {
  bool ok = false;
  bool fin = false;
  uint8_t rsv = 0;
  uint8_t opcode = 0;
  bool masked = false;
  size_t header_size = 0;
  std::string payload;
};

inline ServerFrame DecodeServerFrame(std::string_view b) {
  ServerFrame f;
  if (b.size() < 2) return f;
  auto u = [&b](size_t i) { return static_cast<uint8_t>(b[i]); };
  f.fin = u(0) & 0x80;
  f.rsv = (u(0) >> 4) & 0x7;
  f.opcode = u(0) & 0xF;
  f.masked = u(1) & 0x80;
  uint64_t len = u(1) & 0x7F;
  size_t at = 2;
  if (len == 126) {
    if (b.size() < 4) return f;
    len = (uint64_t{u(2)} << 8) | u(3);
    at = 4;
  } else if (len == 127) {
    if (b.size() < 10) return f;
    len = 0;
    for (size_t i = 2; i < 10; ++i) len = (len << 8) | u(i);
    at = 10;
  }
  if (b.size() != at + len) return f;
  f.header_size = at;
  f.payload.assign(b.substr(at));
  f.ok = true;
  return f;
}

}  // namespace reactor::ws::testing
