// The WebSocket frame codec (RFC 6455 section 5), server side. Pure: bytes in, events
// out; no I/O, no clock, no libuv.
//
// FrameParser reads what a client sends (masked frames) and reassembles messages;
// the encoders write what the server sends (unmasked frames). A masked client encoder
// exists for tests and tools.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ws/utf8.h"

namespace reactor::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes used by the reactor (CONTRACT section 5; RFC 6455 section 7.4.1).
namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;        // server shutdown
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kUnsupportedData = 1003;
inline constexpr uint16_t kNoStatus = 1005;         // never sent: "the close had no code"
inline constexpr uint16_t kAbnormal = 1006;         // never sent: "no close frame at all"
inline constexpr uint16_t kInvalidPayload = 1007;   // invalid UTF-8
inline constexpr uint16_t kPolicyViolation = 1008;  // authentication
inline constexpr uint16_t kMessageTooBig = 1009;
inline constexpr uint16_t kInternalError = 1011;
inline constexpr uint16_t kTryAgainLater = 1013;    // slow consumer
}  // namespace close_code

// A code a peer may put in a Close frame: 1000-1003, 1007-1014 (the IANA registry's
// assigned codes minus those reserved for local use), and 3000-4999.
bool IsValidCloseCode(uint32_t code);

// One thing the parser found. Views point into the parser (or at static text) and stay
// valid until the next call on that parser.
struct FrameEvent {
  enum class Type : uint8_t {
    kNone,    // nothing (more) in the input, or the parser has stopped
    kText,    // a complete text message (valid UTF-8), all fragments joined
    kBinary,  // a complete binary message
    kPing,    // payload = ping application data (answer with a pong carrying it)
    kPong,    // payload = pong application data
    kClose,   // code = peer's code (kNoStatus when it gave none), payload = reason (UTF-8)
    kError,   // the connection must fail: code = close code to send, payload = reason
  };
  Type type = Type::kNone;
  uint16_t code = 0;
  std::string_view payload;
};

// A FrameEvent with its own copy of the payload.
struct OwnedFrameEvent {
  FrameEvent::Type type = FrameEvent::Type::kNone;
  uint16_t code = 0;
  std::string payload;
  friend bool operator==(const OwnedFrameEvent&, const OwnedFrameEvent&) = default;
};

// Parses client-to-server frames fed in chunks of any size (one byte at a time works).
//
// Enforces RFC 6455 for a server: frames must be masked, RSV1-3 clear (no extension is
// negotiated), opcodes known, control frames final and at most 125 bytes, lengths in
// their shortest form with the top bit of a 64-bit length clear, continuations only
// inside a fragmented message and no new data frame inside one (all 1002); close
// payloads of 0 or >= 2 bytes with a valid code (1002) and a UTF-8 reason (1007); text
// messages valid UTF-8, checked as the bytes arrive so that the first bad byte fails
// the connection (1007); a message larger than max_message bytes over all its fragments
// fails as soon as a frame header announces it (1009).
//
// After a kClose or kError the parser has stopped: it consumes nothing more and reports
// kNone. Memory: a message buffer of at most max_message bytes, grown only as payload
// arrives, reused between messages and released after a large one; plus 125 bytes for
// control payloads.
//
// Not thread-safe; one parser per connection.
class FrameParser {
 public:
  static constexpr size_t kDefaultMaxMessage = 65536;

  explicit FrameParser(size_t max_message = kDefaultMaxMessage);
  FrameParser(const FrameParser&) = delete;
  FrameParser& operator=(const FrameParser&) = delete;

  // Consumes bytes from the front of `in` up to and including the end of the next event,
  // and returns that event. When `in` runs out first, everything has been consumed
  // (a partial frame is kept inside) and the result is kNone. Call it in a loop until
  // kNone. Views returned by an earlier call become invalid.
  FrameEvent Next(std::string_view& in);

  // Parses all of `chunk` and appends a copy of every event to `out`. Returns the bytes
  // consumed: all of them unless the parser stopped (close or error) inside the chunk.
  size_t Feed(std::string_view chunk, std::vector<OwnedFrameEvent>& out);

  bool stopped() const { return state_ == State::kStopped; }
  size_t max_message() const { return max_message_; }
  // A fragmented message has been started and not finished.
  bool in_message() const { return in_message_; }
  // Bytes allocated for message reassembly (for memory accounting).
  size_t buffer_capacity() const { return message_.capacity(); }

 private:
  enum class State : uint8_t { kHeader, kPayload, kStopped };

  FrameEvent Fail(uint16_t code, const char* reason);
  // Checks the first two header bytes as soon as each arrives (kNone when fine).
  FrameEvent CheckFirstByte();
  FrameEvent CheckSecondByte();
  // The header is complete in hdr_: checks the length and enters the payload phase.
  FrameEvent StartPayload();
  // The current frame's payload is complete: the event it yields, if any.
  FrameEvent FinishFrame();

  size_t max_message_;
  State state_ = State::kHeader;

  // Current frame.
  std::array<uint8_t, 14> hdr_{};
  uint8_t hdr_have_ = 0;
  uint8_t hdr_need_ = 2;
  uint8_t opcode_ = 0;
  bool fin_ = false;
  std::array<uint8_t, 4> mask_{};
  uint64_t remaining_ = 0;   // payload bytes still to read
  uint64_t frame_pos_ = 0;   // payload bytes read (selects the mask byte)

  // Current message (data frames).
  bool in_message_ = false;
  bool message_text_ = false;
  bool release_buffer_ = false;  // the message buffer was handed out: clear it first
  std::vector<char> message_;
  Utf8Validator utf8_;

  // Current control frame (may arrive in the middle of a fragmented message).
  std::array<char, 125> control_{};
  uint8_t control_size_ = 0;
};

// ---- Encoding, server to client (never masked) ----

inline constexpr size_t kMaxServerHeader = 10;

// Header bytes of an unmasked frame: 2, 4 or 10.
constexpr size_t HeaderSize(uint64_t payload_size) {
  return payload_size <= 125 ? 2 : payload_size <= 0xFFFF ? 4 : 10;
}
// Header plus payload.
constexpr size_t FrameSize(uint64_t payload_size) {
  return HeaderSize(payload_size) + static_cast<size_t>(payload_size);
}

struct EncodedHeader {
  std::array<char, kMaxServerHeader> bytes{};
  uint8_t size = 0;
  std::string_view view() const { return {bytes.data(), size}; }
};

// The header of a server frame. REQUIRES: control frames (close/ping/pong) have
// fin and payload_size <= 125.
EncodedHeader EncodeHeader(Opcode op, uint64_t payload_size, bool fin = true);

// Writes header + payload to `out`, which must hold FrameSize(payload.size()) bytes, and
// returns the bytes written. Lets the hub encode an event once into a shared buffer.
size_t EncodeFrameInto(char* out, Opcode op, std::string_view payload, bool fin = true);

// A complete server frame.
std::string EncodeFrame(Opcode op, std::string_view payload, bool fin = true);

// A Close frame. `reason` must be UTF-8; it is cut (on a character boundary) to the 123
// bytes a control frame leaves for it. kNoStatus yields an empty close payload.
// REQUIRES: IsValidCloseCode(code) or kNoStatus.
std::string EncodeClose(uint16_t code, std::string_view reason = {});

// The code to answer a peer's Close with: its own code echoed (RFC 6455 section 5.5.1),
// or 1000 when it gave none.
constexpr uint16_t CloseReplyCode(uint16_t peer_code) {
  return peer_code == close_code::kNoStatus ? close_code::kNormal : peer_code;
}

// ---- Encoding, client to server (masked); for tests and tools ----

struct ClientFrame {
  uint8_t opcode = 0x1;  // raw, so that reserved opcodes can be sent
  std::string_view payload;
  bool fin = true;
  uint8_t rsv = 0;       // RSV1..3 as bits 2..0
  bool masked = true;
  std::array<uint8_t, 4> mask{{0x37, 0xfa, 0x21, 0x3d}};
};
std::string EncodeClientFrame(const ClientFrame& frame);

// XORs `size` bytes of `src` with the 4-byte mask starting at mask byte `offset % 4`,
// into `dst` (may equal src). Eight bytes at a time.
void ApplyMask(const uint8_t* src, uint8_t* dst, size_t size, const std::array<uint8_t, 4>& mask,
               uint64_t offset);

}  // namespace reactor::ws
