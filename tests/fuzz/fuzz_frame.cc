// Fuzzes FrameParser: the same byte stream fed whole and cut into random chunks must give
// the same events, and every event must respect the parser's contract.
//
// Input: [mode u8][max_message u16][cut count u8][cuts u16...][stream...]
// mode bit 0 set: the stream is a list of frame specs [flags u8][length u8][payload],
// encoded with the client encoder (flags: bits 0-3 opcode, bit 4 !fin, bits 5-6 rsv,
// bit 7 unmasked), which reaches deep states quickly; otherwise it is raw wire bytes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "ws/frame.h"
#include "ws/utf8.h"

using namespace reactor::ws;
using reactor::fuzz::Input;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

std::string BuildFrames(Input& in) {
  std::string wire;
  uint32_t key = 0x01020304;
  while (!in.empty()) {
    uint8_t flags = in.U8();
    size_t len = in.U8();
    // Length byte 254: a filler payload in the 16-bit length form. 255: a header in the
    // 64-bit form whose payload is cut short, ending the stream: enough to reach the
    // size limit without megabyte inputs.
    bool last = len == 255;
    std::string payload = len == 254   ? std::string(126 + in.U8() * 4u, 'z')
                          : last       ? std::string(65536 + in.U8() * 64u, 'z')
                                       : in.Bytes(len);
    ClientFrame f;
    f.opcode = flags & 0x0F;
    f.fin = !(flags & 0x10);
    f.rsv = static_cast<uint8_t>((flags >> 5) & 0x3);
    f.masked = !(flags & 0x80);
    key = key * 2654435761u + 1;
    f.mask = {{static_cast<uint8_t>(key >> 24), static_cast<uint8_t>(key >> 16),
               static_cast<uint8_t>(key >> 8), static_cast<uint8_t>(key)}};
    f.payload = payload;
    std::string frame = EncodeClientFrame(f);
    if (last) {
      wire.append(frame, 0, 14 + in.U8());
      break;
    }
    wire += frame;
  }
  return wire;
}

// Parses the chunks in order; checks the per-call contract of Feed.
std::vector<OwnedFrameEvent> Run(size_t max_message, const std::vector<std::vector<char>>& chunks) {
  FrameParser p(max_message);
  std::vector<OwnedFrameEvent> events;
  for (const auto& c : chunks) {
    bool was_stopped = p.stopped();
    size_t before = events.size();
    size_t used = p.Feed(reactor::fuzz::View(c), events);
    Check(used <= c.size());
    if (!p.stopped()) Check(used == c.size());
    if (was_stopped) Check(used == 0 && events.size() == before);
    Check(p.buffer_capacity() <= max_message);
  }
  return events;
}

void CheckEvents(const std::vector<OwnedFrameEvent>& events, size_t max_message) {
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    switch (e.type) {
      case FrameEvent::Type::kText:
        Check(IsValidUtf8(e.payload));
        [[fallthrough]];
      case FrameEvent::Type::kBinary:
        Check(e.payload.size() <= max_message);
        break;
      case FrameEvent::Type::kPing:
      case FrameEvent::Type::kPong:
        Check(e.payload.size() <= 125);
        break;
      case FrameEvent::Type::kClose:
        Check(IsValidCloseCode(e.code) || e.code == close_code::kNoStatus);
        Check(e.payload.size() <= 123 && IsValidUtf8(e.payload));
        Check(i + 1 == events.size());
        break;
      case FrameEvent::Type::kError:
        Check(e.code == close_code::kProtocolError || e.code == close_code::kInvalidPayload ||
              e.code == close_code::kMessageTooBig);
        Check(!e.payload.empty() && e.payload.size() <= 123);
        Check(i + 1 == events.size());
        break;
      case FrameEvent::Type::kNone:
        Check(false);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  uint8_t mode = in.U8();
  size_t max_message = in.U16() + 1;
  if (mode & 0x2) max_message = FrameParser::kDefaultMaxMessage;
  auto cuts = reactor::fuzz::ReadCuts(in);
  std::string stream = (mode & 0x1) ? BuildFrames(in) : in.Rest();

  auto whole = Run(max_message, {std::vector<char>(stream.begin(), stream.end())});
  CheckEvents(whole, max_message);
  auto split = Run(max_message, reactor::fuzz::Split(cuts, stream));
  Check(split == whole);

  // What the server sends back must decode as it was meant.
  for (const auto& e : whole) {
    if (e.type == FrameEvent::Type::kPing) {
      std::string pong = EncodeFrame(Opcode::kPong, e.payload);
      Check(pong.size() == FrameSize(e.payload.size()));
      Check(pong.substr(2) == e.payload);
    } else if (e.type == FrameEvent::Type::kClose) {
      std::string reply = EncodeClose(CloseReplyCode(e.code), e.payload);
      Check(reply.size() <= 2 + 125);
    }
  }
  return 0;
}
