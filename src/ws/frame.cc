#include "ws/frame.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace reactor::ws {
namespace {

using Type = FrameEvent::Type;

// A buffer that grew past this for one large message is freed once the message has been
// handed out, so that an idle connection holds little memory.
constexpr size_t kRetainedBuffer = 8192;

bool IsControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

bool IsKnownOpcode(uint8_t opcode) {
  switch (opcode) {
    case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA:
      return true;
    default:
      return false;
  }
}

void PutBigEndian(char* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

}  // namespace

bool IsValidCloseCode(uint32_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

void ApplyMask(const uint8_t* src, uint8_t* dst, size_t size, const std::array<uint8_t, 4>& mask,
               uint64_t offset) {
  uint8_t rotated[8];
  for (size_t i = 0; i < 8; ++i) rotated[i] = mask[(offset + i) & 3];
  uint64_t m;
  std::memcpy(&m, rotated, 8);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= m;
    std::memcpy(dst + i, &w, 8);
  }
  // i is a multiple of 8 here, so rotated[i & 7] is still the right mask byte.
  for (; i < size; ++i) dst[i] = src[i] ^ rotated[i & 7];
}

FrameParser::FrameParser(size_t max_message) : max_message_(max_message) {}

FrameEvent FrameParser::Fail(uint16_t code, const char* reason) {
  state_ = State::kStopped;
  return {Type::kError, code, reason};
}

FrameEvent FrameParser::CheckFirstByte() {
  uint8_t b = hdr_[0];
  fin_ = (b & 0x80) != 0;
  opcode_ = b & 0x0F;
  if (b & 0x70) return Fail(close_code::kProtocolError, "reserved bits set without an extension");
  if (!IsKnownOpcode(opcode_)) return Fail(close_code::kProtocolError, "reserved opcode");
  if (IsControl(opcode_)) {
    if (!fin_) return Fail(close_code::kProtocolError, "fragmented control frame");
  } else if (opcode_ == 0x0) {
    if (!in_message_) return Fail(close_code::kProtocolError, "continuation frame without a message");
  } else if (in_message_) {
    return Fail(close_code::kProtocolError, "new data frame inside a fragmented message");
  }
  return {};
}

FrameEvent FrameParser::CheckSecondByte() {
  uint8_t b = hdr_[1];
  if (!(b & 0x80)) return Fail(close_code::kProtocolError, "client frame not masked");
  uint8_t len7 = b & 0x7F;
  if (IsControl(opcode_) && len7 > 125) {
    return Fail(close_code::kProtocolError, "control frame payload over 125 bytes");
  }
  hdr_need_ = static_cast<uint8_t>(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
  return {};
}

FrameEvent FrameParser::StartPayload() {
  uint8_t len7 = hdr_[1] & 0x7F;
  uint64_t len = len7;
  size_t at = 2;
  if (len7 == 126) {
    len = (uint64_t{hdr_[2]} << 8) | hdr_[3];
    at = 4;
    if (len < 126) return Fail(close_code::kProtocolError, "payload length not in its shortest form");
  } else if (len7 == 127) {
    len = 0;
    for (size_t i = 2; i < 10; ++i) len = (len << 8) | hdr_[i];
    at = 10;
    if (len >> 63) return Fail(close_code::kProtocolError, "64-bit payload length has its top bit set");
    if (len <= 0xFFFF) return Fail(close_code::kProtocolError, "payload length not in its shortest form");
  }
  std::memcpy(mask_.data(), hdr_.data() + at, 4);

  if (!IsControl(opcode_)) {
    // Checked on the header, before any payload is buffered: an oversized message costs
    // no memory and fails before the client has sent it.
    if (len > max_message_ - message_.size()) {
      return Fail(close_code::kMessageTooBig, "message over the size limit");
    }
    if (opcode_ != 0x0) {
      in_message_ = true;
      message_text_ = opcode_ == 0x1;
      utf8_.Reset();
    }
  }
  control_size_ = IsControl(opcode_) ? static_cast<uint8_t>(len) : 0;
  remaining_ = len;
  frame_pos_ = 0;
  state_ = State::kPayload;
  return {};
}

FrameEvent FrameParser::FinishFrame() {
  state_ = State::kHeader;
  hdr_have_ = 0;
  hdr_need_ = 2;
  std::string_view payload(control_.data(), control_size_);
  switch (opcode_) {
    case 0x8: {
      if (payload.empty()) {
        state_ = State::kStopped;
        return {Type::kClose, close_code::kNoStatus, {}};
      }
      if (payload.size() == 1) return Fail(close_code::kProtocolError, "close payload of one byte");
      uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                            static_cast<uint8_t>(payload[1]));
      if (!IsValidCloseCode(code)) return Fail(close_code::kProtocolError, "invalid close code");
      payload.remove_prefix(2);
      if (!IsValidUtf8(payload)) return Fail(close_code::kInvalidPayload, "close reason is not UTF-8");
      state_ = State::kStopped;
      return {Type::kClose, code, payload};
    }
    case 0x9:
      return {Type::kPing, 0, payload};
    case 0xA:
      return {Type::kPong, 0, payload};
    default:
      break;
  }
  if (!fin_) return {};
  if (message_text_ && !utf8_.complete()) {
    return Fail(close_code::kInvalidPayload, "text message ends inside a UTF-8 sequence");
  }
  in_message_ = false;
  release_buffer_ = true;
  return {message_text_ ? Type::kText : Type::kBinary, 0,
          std::string_view(message_.data(), message_.size())};
}

FrameEvent FrameParser::Next(std::string_view& in) {
  if (release_buffer_) {
    release_buffer_ = false;
    if (message_.capacity() > kRetainedBuffer) {
      std::vector<char>().swap(message_);
    } else {
      message_.clear();
    }
  }
  for (;;) {
    switch (state_) {
      case State::kStopped:
        return {};

      case State::kHeader: {
        while (hdr_have_ < hdr_need_) {
          if (in.empty()) return {};
          hdr_[hdr_have_++] = static_cast<uint8_t>(in.front());
          in.remove_prefix(1);
          // Checked byte by byte so that a bad frame fails before the rest of it arrives.
          if (hdr_have_ <= 2) {
            FrameEvent e = hdr_have_ == 1 ? CheckFirstByte() : CheckSecondByte();
            if (e.type != Type::kNone) return e;
          }
        }
        FrameEvent e = StartPayload();
        if (e.type != Type::kNone) return e;
        break;
      }

      case State::kPayload: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
        if (take > 0) {
          const auto* src = reinterpret_cast<const uint8_t*>(in.data());
          uint8_t* dst;
          if (IsControl(opcode_)) {
            dst = reinterpret_cast<uint8_t*>(control_.data()) + frame_pos_;
          } else {
            size_t old = message_.size();
            size_t need = old + take;  // <= max_message_, checked on the header
            if (need > message_.capacity()) {
              // Geometric growth, but never past the limit: the limit is the memory bound.
              message_.reserve(std::min(std::max(need, 2 * message_.capacity()), max_message_));
            }
            message_.resize(need);
            dst = reinterpret_cast<uint8_t*>(message_.data()) + old;
          }
          ApplyMask(src, dst, take, mask_, frame_pos_);
          in.remove_prefix(take);
          remaining_ -= take;
          frame_pos_ += take;
          if (!IsControl(opcode_) && message_text_ && !utf8_.Feed(dst, take)) {
            return Fail(close_code::kInvalidPayload, "text message is not UTF-8");
          }
        }
        if (remaining_ > 0) return {};
        FrameEvent e = FinishFrame();
        if (e.type != Type::kNone) return e;
        break;
      }
    }
  }
}

size_t FrameParser::Feed(std::string_view chunk, std::vector<OwnedFrameEvent>& out) {
  std::string_view in = chunk;
  for (;;) {
    FrameEvent e = Next(in);
    if (e.type == Type::kNone) break;
    out.push_back({e.type, e.code, std::string(e.payload)});
  }
  return chunk.size() - in.size();
}

EncodedHeader EncodeHeader(Opcode op, uint64_t payload_size, bool fin) {
  assert(!IsControl(static_cast<uint8_t>(op)) || (fin && payload_size <= 125));
  EncodedHeader h;
  h.bytes[0] = static_cast<char>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(op));
  if (payload_size <= 125) {
    h.bytes[1] = static_cast<char>(payload_size);
    h.size = 2;
  } else if (payload_size <= 0xFFFF) {
    h.bytes[1] = 126;
    PutBigEndian(&h.bytes[2], payload_size, 2);
    h.size = 4;
  } else {
    h.bytes[1] = 127;
    PutBigEndian(&h.bytes[2], payload_size, 8);
    h.size = 10;
  }
  return h;
}

size_t EncodeFrameInto(char* out, Opcode op, std::string_view payload, bool fin) {
  EncodedHeader h = EncodeHeader(op, payload.size(), fin);
  std::memcpy(out, h.bytes.data(), h.size);
  if (!payload.empty()) std::memcpy(out + h.size, payload.data(), payload.size());
  return h.size + payload.size();
}

std::string EncodeFrame(Opcode op, std::string_view payload, bool fin) {
  std::string out(FrameSize(payload.size()), '\0');
  EncodeFrameInto(out.data(), op, payload, fin);
  return out;
}

std::string EncodeClose(uint16_t code, std::string_view reason) {
  assert(IsValidCloseCode(code) || code == close_code::kNoStatus);
  if (code == close_code::kNoStatus) return EncodeFrame(Opcode::kClose, {});
  if (reason.size() > 123) {
    size_t cut = 123;
    while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  char payload[125];
  PutBigEndian(payload, code, 2);
  if (!reason.empty()) std::memcpy(payload + 2, reason.data(), reason.size());
  return EncodeFrame(Opcode::kClose, std::string_view(payload, 2 + reason.size()));
}

std::string EncodeClientFrame(const ClientFrame& f) {
  std::string out;
  uint64_t n = f.payload.size();
  out.reserve(14 + n);
  out.push_back(static_cast<char>((f.fin ? 0x80 : 0) | ((f.rsv & 0x7) << 4) | (f.opcode & 0x0F)));
  char mask_bit = f.masked ? static_cast<char>(0x80) : 0;
  char ext[8];
  if (n <= 125) {
    out.push_back(static_cast<char>(mask_bit | static_cast<char>(n)));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    PutBigEndian(ext, n, 2);
    out.append(ext, 2);
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    PutBigEndian(ext, n, 8);
    out.append(ext, 8);
  }
  if (f.masked) out.append(reinterpret_cast<const char*>(f.mask.data()), 4);
  size_t at = out.size();
  out.append(f.payload);
  if (f.masked) {
    auto* p = reinterpret_cast<uint8_t*>(out.data()) + at;
    ApplyMask(p, p, n, f.mask, 0);
  }
  return out;
}

}  // namespace reactor::ws
