// The Autobahn TestSuite's server cases of sections 1-7 and 9, replayed against the pure
// codec: each case sends the same frames, split the same way (one chunk per "wait" or
// per "sync" send, one byte per chunk for the octet-wise cases), and checks what the
// parser reports and what the server would send back. docs/autobahn.md maps every case
// to a TEST_CASE here.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "utf8_vectors.h"
#include "ws/frame.h"
#include "ws_test_util.h"

using namespace reactor::ws;
using namespace reactor::ws::testing;
namespace cc = reactor::ws::close_code;
using Events = std::vector<OwnedFrameEvent>;

namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += p;
  return s;
}

// Expect exactly one error with `code` and nothing else after `before`.
void CheckFails(const Events& got, const Events& before, uint16_t code) {
  REQUIRE(got.size() == before.size() + 1);
  for (size_t i = 0; i < before.size(); ++i) CHECK(got[i] == before[i]);
  CHECK(IsError(got.back(), code));
}

// A masked frame header announcing `len` payload bytes, without the payload.
std::string HeaderOnly(uint8_t opcode, uint64_t len, bool fin) {
  std::string h = {static_cast<char>((fin ? 0x80 : 0) | opcode), static_cast<char>(0x80 | 127)};
  for (int i = 7; i >= 0; --i) h.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  return h + std::string("\x01\x02\x03\x04", 4);
}

// The server's answer to a ping must be a pong carrying the same payload.
void CheckPongAnswer(const std::string& ping_payload) {
  auto f = DecodeServerFrame(EncodeFrame(Opcode::kPong, ping_payload));
  REQUIRE(f.ok);
  CHECK(f.fin);
  CHECK_FALSE(f.masked);
  CHECK(f.opcode == 0xA);
  CHECK(f.payload == ping_payload);
}

}  // namespace

// ---- 1 Framing ----

TEST_CASE("Autobahn 1.1.1-1.1.8, 1.2.1-1.2.8: text and binary messages of 0..65536 bytes") {
  const size_t sizes[] = {0, 125, 126, 127, 128, 65535, 65536};
  for (bool binary : {false, true}) {
    for (size_t n : sizes) {
      std::string payload(n, binary ? '\xfe' : '*');
      std::string wire = binary ? Binary(payload) : Text(payload);
      Events expect = {binary ? BinaryEv(payload) : TextEv(payload)};
      CAPTURE(n);
      CHECK(Parse(wire) == expect);
      // What the server would send back has the shortest header and the same bytes.
      auto f = DecodeServerFrame(EncodeFrame(binary ? Opcode::kBinary : Opcode::kText, payload));
      REQUIRE(f.ok);
      CHECK(f.payload == payload);
      CHECK(f.header_size == HeaderSize(n));
    }
    // 1.1.8 / 1.2.8: 65536 bytes sent in chops of 997 octets.
    std::string payload(65536, binary ? '\xfe' : '*');
    CHECK(Parse(binary ? Binary(payload) : Text(payload), 997) ==
          Events{binary ? BinaryEv(payload) : TextEv(payload)});
  }
}

// ---- 2 Pings/Pongs ----

TEST_CASE("Autobahn 2.1-2.4: pings with empty, text, binary and 125-byte payloads") {
  const std::string payloads[] = {"", "Hello, world!", std::string("\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 8),
                                  std::string(125, '\xfe')};
  for (const auto& p : payloads) {
    CHECK(Parse(Ping(p)) == Events{PingEv(p)});
    CheckPongAnswer(p);
  }
}

TEST_CASE("Autobahn 2.5: a ping with 126 bytes fails the connection") {
  std::string wire = Ping(std::string(126, '\xfe'));
  CheckFails(Parse(wire), {}, cc::kProtocolError);
  // It fails on the length byte, before the payload is read.
  FrameParser p;
  CHECK(Drive(p, Chop(wire, 1)).chunk_of(Type::kError) == 1);
}

TEST_CASE("Autobahn 2.6: a 125-byte ping sent one octet at a time") {
  std::string p(125, '\xfe');
  CHECK(Parse(Ping(p), 1) == Events{PingEv(p)});
}

TEST_CASE("Autobahn 2.7-2.9: unsolicited pongs are reported and change nothing") {
  CHECK(Parse(Pong()) == Events{PongEv()});
  CHECK(Parse(Pong("unsolicited pong payload")) == Events{PongEv("unsolicited pong payload")});
  CHECK(Parse(Pong("unsolicited pong payload") + Ping("ping payload")) ==
        Events{PongEv("unsolicited pong payload"), PingEv("ping payload")});
}

TEST_CASE("Autobahn 2.10-2.11: ten pings in a row, whole and octet-wise") {
  std::string wire;
  Events expect;
  for (int i = 0; i < 10; ++i) {
    std::string p = "payload-" + std::to_string(i);
    wire += Ping(p);
    expect.push_back(PingEv(p));
  }
  CHECK(Parse(wire) == expect);
  CHECK(Parse(wire, 1) == expect);
}

// ---- 3 Reserved bits ----

TEST_CASE("Autobahn 3.1-3.7: a reserved bit set fails the connection") {
  const std::string hello = "Hello, world!";
  // 3.1
  CheckFails(Parse(Frame(0x1, hello, true, 1)), {}, cc::kProtocolError);
  // 3.2 (one write), 3.3 (frame-wise chops), 3.4 (octet-wise chops): the first message
  // is delivered, the RSV frame fails, the ping after it is never read.
  std::vector<std::string> frames = {Text(hello), Frame(0x1, hello, true, 2), Ping()};
  CheckFails(Parse(Join(frames)), {TextEv(hello)}, cc::kProtocolError);
  FrameParser p3;
  auto t = Drive(p3, {Text(hello), Frame(0x1, hello, true, 3), Ping()});
  CheckFails(t.all(), {TextEv(hello)}, cc::kProtocolError);
  CHECK(t.chunk_of(Type::kError) == 1);
  frames[1] = Frame(0x1, hello, true, 4);
  CheckFails(Parse(Join(frames), 1), {TextEv(hello)}, cc::kProtocolError);
  // 3.5 binary, 3.6 ping, 3.7 close
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  CheckFails(Parse(Frame(0x2, bin, true, 5)), {}, cc::kProtocolError);
  CheckFails(Parse(Frame(0x9, hello, true, 6)), {}, cc::kProtocolError);
  CheckFails(Parse(Frame(0x8, std::string("\x03\xe8", 2), true, 7)), {}, cc::kProtocolError);
}

// ---- 4 Opcodes ----

TEST_CASE("Autobahn 4.1.1-4.1.5: reserved non-control opcodes 3-7") {
  const std::string hello = "Hello, world!";
  CheckFails(Parse(Frame(3, "")), {}, cc::kProtocolError);
  CheckFails(Parse(Frame(4, "reserved opcode payload")), {}, cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(5, "") + Ping()), {TextEv(hello)}, cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(6, "reserved opcode payload") + Ping()), {TextEv(hello)},
             cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(7, "reserved opcode payload") + Ping(), 1), {TextEv(hello)},
             cc::kProtocolError);
}

TEST_CASE("Autobahn 4.2.1-4.2.5: reserved control opcodes 11-15") {
  const std::string hello = "Hello, world!";
  CheckFails(Parse(Frame(11, "")), {}, cc::kProtocolError);
  CheckFails(Parse(Frame(12, "reserved opcode payload")), {}, cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(13, "") + Ping()), {TextEv(hello)}, cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(14, "reserved opcode payload") + Ping()), {TextEv(hello)},
             cc::kProtocolError);
  CheckFails(Parse(Text(hello) + Frame(15, "reserved opcode payload") + Ping(), 1), {TextEv(hello)},
             cc::kProtocolError);
}

// ---- 5 Fragmentation ----

TEST_CASE("Autobahn 5.1-5.2: fragmented control frames fail") {
  CheckFails(Parse(Frame(0x9, "fragment1", false) + Cont("fragment2")), {}, cc::kProtocolError);
  CheckFails(Parse(Frame(0xA, "fragment1", false) + Cont("fragment2")), {}, cc::kProtocolError);
}

TEST_CASE("Autobahn 5.3-5.5: a text message in two fragments") {
  std::vector<std::string> frames = {Text("fragment1", false), Cont("fragment2")};
  Events expect = {TextEv("fragment1fragment2")};
  CHECK(Parse(Join(frames)) == expect);  // 5.3
  FrameParser p;
  auto t = Drive(p, frames);              // 5.4: with a wait between the fragments
  CHECK(t.per_chunk[0].empty());
  CHECK(t.all() == expect);
  CHECK(Parse(Join(frames), 1) == expect);  // 5.5
}

TEST_CASE("Autobahn 5.6-5.8: a ping between two fragments") {
  std::vector<std::string> frames = {Text("fragment1", false), Ping("ping payload"), Cont("fragment2")};
  Events expect = {PingEv("ping payload"), TextEv("fragment1fragment2")};
  CHECK(Parse(Join(frames)) == expect);
  FrameParser p;
  auto t = Drive(p, frames);
  CHECK(t.per_chunk[1] == Events{PingEv("ping payload")});  // answered before the message ends
  CHECK(t.all() == expect);
  CHECK(Parse(Join(frames), 1) == expect);
}

TEST_CASE("Autobahn 5.9-5.14: a continuation without a message fails") {
  for (bool fin : {true, false}) {
    std::vector<std::string> frames = {Cont("non-continuation payload", fin), Text("Hello, world!")};
    CheckFails(Parse(Join(frames)), {}, cc::kProtocolError);      // 5.9 / 5.12
    FrameParser p;
    CheckFails(Drive(p, frames).all(), {}, cc::kProtocolError);   // 5.10 / 5.13
    CheckFails(Parse(Join(frames), 1), {}, cc::kProtocolError);   // 5.11 / 5.14
  }
}

TEST_CASE("Autobahn 5.15: a continuation after a finished message fails") {
  CheckFails(Parse(Text("fragment1", false) + Cont("fragment2") + Cont("fragment3", false) +
                   Text("fragment4")),
             {TextEv("fragment1fragment2")}, cc::kProtocolError);
}

TEST_CASE("Autobahn 5.16-5.17: continuation-first sequences fail at once") {
  std::string seq16 = Cont("fragment1", false) + Text("fragment2", false) + Cont("fragment3");
  CheckFails(Parse(seq16 + seq16), {}, cc::kProtocolError);
  std::string seq17 = Cont("fragment1") + Text("fragment2", false) + Cont("fragment3");
  CheckFails(Parse(seq17 + seq17), {}, cc::kProtocolError);
}

TEST_CASE("Autobahn 5.18: a new text frame inside a fragmented message fails") {
  CheckFails(Parse(Text("fragment1", false) + Text("fragment2")), {}, cc::kProtocolError);
}

TEST_CASE("Autobahn 5.19-5.20: five fragments with two pings, waits and octet-wise") {
  std::vector<std::string> frames = {Text("fragment1", false), Cont("fragment2", false),
                                     Ping("pongme 1!"),        Cont("fragment3", false),
                                     Ping("pongme 2!"),        Cont("fragment4", false),
                                     Cont("fragment5")};
  Events expect = {PingEv("pongme 1!"), PingEv("pongme 2!"),
                   TextEv("fragment1fragment2fragment3fragment4fragment5")};
  FrameParser p;
  auto t = Drive(p, frames);  // 5.19: every frame its own write, with waits
  CHECK(t.per_chunk[2] == Events{PingEv("pongme 1!")});
  CHECK(t.per_chunk[4] == Events{PingEv("pongme 2!")});
  CHECK(t.all() == expect);
  CHECK(Parse(Join(frames), 1) == expect);  // 5.20
}

// ---- 6 UTF-8 handling ----

TEST_CASE("Autobahn 6.1.1-6.1.3: empty text messages and empty fragments") {
  CHECK(Parse(Text("")) == Events{TextEv("")});
  CHECK(Parse(Text("", false) + Cont("", false) + Cont("")) == Events{TextEv("")});
  CHECK(Parse(Text("", false) + Cont("middle frame payload", false) + Cont("")) ==
        Events{TextEv("middle frame payload")});
}

TEST_CASE("Autobahn 6.2.1-6.2.4: valid UTF-8, whole, split at a code point, one octet per frame") {
  const std::string hello = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
  CHECK(Parse(Text(hello)) == Events{TextEv(hello)});
  const std::string part1 = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4";
  CHECK(Parse(Text(part1, false) + Cont(hello.substr(part1.size()))) == Events{TextEv(hello)});
  for (const std::string& s : {hello, Hex("cebae1bdb9cf83cebcceb5")}) {
    // Frames that end in the middle of code points (6.2.3, 6.2.4).
    std::string wire;
    for (size_t i = 0; i < s.size(); ++i) {
      bool last = i + 1 == s.size();
      wire += i == 0 ? Text(s.substr(0, 1), last) : Cont(s.substr(i, 1), last);
    }
    CHECK(Parse(wire) == Events{TextEv(s)});
  }
}

TEST_CASE("Autobahn 6.3.1-6.3.2: invalid UTF-8, whole and one octet per frame") {
  const std::string bad = Hex("cebae1bdb9cf83cebcceb5eda080656469746564");
  CheckFails(Parse(Text(bad)), {}, cc::kInvalidPayload);
  std::vector<std::string> frames;
  for (size_t i = 0; i < bad.size(); ++i) {
    bool last = i + 1 == bad.size();
    frames.push_back(i == 0 ? Text(bad.substr(0, 1), last) : Cont(bad.substr(i, 1), last));
  }
  FrameParser p;
  auto t = Drive(p, frames);
  CheckFails(t.all(), {}, cc::kInvalidPayload);
  CHECK(t.chunk_of(Type::kError) == 12);  // the frame carrying 0xA0, not the last one
}

TEST_CASE("Autobahn 6.4.1-6.4.4: fail fast on the first invalid byte") {
  const std::string payload = Hex("cebae1bdb9cf83cebcceb5f4908080656469746564");
  const std::string p1 = payload.substr(0, 11), p2 = payload.substr(11, 4), p3 = payload.substr(15);
  SUBCASE("6.4.1: three frames, the second carries F4 90 80 80") {
    FrameParser p;
    auto t = Drive(p, {Text(p1, false), Cont(p2, false), Cont(p3)});
    CHECK(t.per_chunk[0].empty());
    REQUIRE(t.per_chunk[1].size() == 1);
    CHECK(IsError(t.per_chunk[1][0], cc::kInvalidPayload));
    CHECK(t.per_chunk[2].empty());
  }
  SUBCASE("6.4.2: the second frame is just the byte 0x90") {
    FrameParser p;
    auto t = Drive(p, {Text(payload.substr(0, 12), false), Cont(payload.substr(12, 1), false),
                       Cont(payload.substr(13))});
    CHECK(t.per_chunk[0].empty());
    REQUIRE(t.per_chunk[1].size() == 1);
    CHECK(IsError(t.per_chunk[1][0], cc::kInvalidPayload));
  }
  SUBCASE("6.4.3: one frame, its payload in three chops") {
    std::string wire = Text(payload);
    size_t header = wire.size() - payload.size();
    FrameParser p;
    auto t = Drive(p, {wire.substr(0, header + 11), wire.substr(header + 11, 4), wire.substr(header + 15)});
    CHECK(t.per_chunk[0].empty());
    REQUIRE(t.per_chunk[1].size() == 1);
    CHECK(IsError(t.per_chunk[1][0], cc::kInvalidPayload));
  }
  SUBCASE("6.4.4: one frame, the middle chop is just the byte 0x90") {
    std::string wire = Text(payload);
    size_t header = wire.size() - payload.size();
    FrameParser p;
    auto t = Drive(p, {wire.substr(0, header + 12), wire.substr(header + 12, 1), wire.substr(header + 13)});
    CHECK(t.per_chunk[0].empty());
    REQUIRE(t.per_chunk[1].size() == 1);
    CHECK(IsError(t.per_chunk[1][0], cc::kInvalidPayload));
    CHECK(t.per_chunk[2].empty());
  }
}

TEST_CASE("Autobahn 6.5.x-6.23.x: the UTF-8 test vectors as text messages") {
  for (const auto& v : AutobahnUtf8Vectors()) {
    CAPTURE(v.id);
    CAPTURE(v.group);
    for (size_t chunk : {size_t{0}, size_t{1}}) {
      Events got = Parse(Text(v.bytes), chunk);
      if (v.valid) {
        CHECK(got == Events{TextEv(v.bytes)});
      } else {
        CheckFails(got, {}, cc::kInvalidPayload);
      }
    }
  }
}

// ---- 7 Close handling ----

TEST_CASE("Autobahn 7.1.1-7.1.5: nothing is read after a close") {
  CHECK(Parse(Text("Hello World") + CloseFrame(cc::kNormal)) ==
        Events{TextEv("Hello World"), CloseEv(cc::kNormal)});
  CHECK(Parse(CloseFrame(cc::kNormal) + CloseFrame(cc::kNormal)) == Events{CloseEv(cc::kNormal)});
  CHECK(Parse(CloseFrame(cc::kNormal) + Ping("Hello World")) == Events{CloseEv(cc::kNormal)});
  CHECK(Parse(CloseFrame(cc::kNormal) + Text("Hello World")) == Events{CloseEv(cc::kNormal)});
  // 7.1.5: the unfinished message is never delivered.
  CHECK(Parse(Text("fragment1", false) + CloseFrame(cc::kNormal) + Cont("fragment2")) ==
        Events{CloseEv(cc::kNormal)});
  // The server's reply echoes the code.
  auto f = DecodeServerFrame(EncodeClose(CloseReplyCode(cc::kNormal)));
  REQUIRE(f.ok);
  CHECK(f.payload == std::string("\x03\xe8", 2));
}

TEST_CASE("Autobahn 7.1.6: a 256 KiB message before a close is over our limit") {
  std::string big;
  while (big.size() < 256 * 1024) big += "BAsd7&jh23";
  big.resize(256 * 1024);
  FrameParser p;
  std::string wire = Text(big);
  auto t = Drive(p, {wire.substr(0, 14), wire.substr(14) + CloseFrame(cc::kNormal) + Ping()});
  REQUIRE(t.per_chunk[0].size() == 1);  // at the header
  CHECK(IsError(t.per_chunk[0][0], cc::kMessageTooBig));
  CHECK(t.per_chunk[1].empty());
}

TEST_CASE("Autobahn 7.3.1-7.3.6: close payload lengths") {
  Events got = Parse(Frame(0x8, ""));
  CHECK(got == Events{CloseEv(cc::kNoStatus)});
  // No code: answered with 1000 ("clean close with normal code").
  CHECK(CloseReplyCode(got[0].code) == cc::kNormal);
  CheckFails(Parse(Frame(0x8, "a")), {}, cc::kProtocolError);
  CHECK(Parse(CloseFrame(cc::kNormal)) == Events{CloseEv(cc::kNormal)});
  CHECK(Parse(CloseFrame(cc::kNormal, "Hello World!")) == Events{CloseEv(cc::kNormal, "Hello World!")});
  CHECK(Parse(CloseFrame(cc::kNormal, std::string(123, '*'))) ==
        Events{CloseEv(cc::kNormal, std::string(123, '*'))});
  CheckFails(Parse(CloseFrame(cc::kNormal, std::string(124, '*'))), {}, cc::kProtocolError);
}

TEST_CASE("Autobahn 7.5.1: a close reason that is not UTF-8") {
  CheckFails(Parse(CloseFrame(cc::kNormal, Hex("cebae1bdb9cf83cebcceb5eda080656469746564"))), {},
             cc::kInvalidPayload);
}

TEST_CASE("Autobahn 7.7.1-7.7.13: valid close codes are accepted and echoed") {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    CAPTURE(code);
    CHECK(Parse(CloseFrame(code)) == Events{CloseEv(code)});
    auto f = DecodeServerFrame(EncodeClose(CloseReplyCode(code)));
    REQUIRE(f.ok);
    CHECK(f.payload.size() == 2);
    CHECK(((static_cast<uint8_t>(f.payload[0]) << 8) | static_cast<uint8_t>(f.payload[1])) == code);
  }
}

TEST_CASE("Autobahn 7.9.1-7.9.9, 7.13.1-7.13.2: invalid close codes are protocol errors") {
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535}) {
    CAPTURE(code);
    CheckFails(Parse(CloseFrame(code)), {}, cc::kProtocolError);
  }
}

// ---- 9 Limits and performance ----

TEST_CASE("Autobahn 9.1.1, 9.2.1: a 64 KiB message is the largest accepted") {
  std::string text(65536, '\0');
  const std::string pattern = "BAsd7&jh23";
  for (size_t i = 0; i < text.size(); ++i) text[i] = pattern[i % pattern.size()];
  CHECK(Parse(Text(text)) == Events{TextEv(text)});
  std::string bin(65536, '\xfe');
  CHECK(Parse(Binary(bin)) == Events{BinaryEv(bin)});
}

TEST_CASE("Autobahn 9.1.2-9.1.6, 9.2.2-9.2.6: larger messages fail with 1009 on the header") {
  for (uint64_t n : {256ULL << 10, 1ULL << 20, 4ULL << 20, 8ULL << 20, 16ULL << 20}) {
    for (uint8_t op : {uint8_t{1}, uint8_t{2}}) {
      // Only the header is sent: the verdict must not wait for megabytes of payload.
      CheckFails(Parse(HeaderOnly(op, n, true)), {}, cc::kMessageTooBig);
    }
  }
}

TEST_CASE("Autobahn 9.3.x, 9.4.x: 4 MiB fragmented messages fail once 64 KiB is passed") {
  const uint64_t total = 4u << 20;
  for (uint64_t frag : {64ULL, 256ULL, 1ULL << 10, 4ULL << 10, 16ULL << 10, 64ULL << 10,
                        256ULL << 10, 1ULL << 20, 4ULL << 20}) {
    for (uint8_t op : {uint8_t{1}, uint8_t{2}}) {
      CAPTURE(frag);
      FrameParser p;
      Events got;
      uint64_t accepted = 0;
      for (uint64_t sent = 0; sent < total && !p.stopped(); sent += frag) {
        uint8_t opcode = sent == 0 ? op : 0;
        bool fin = sent + frag == total;
        // Fragments over the limit are sent as bare headers: that is all it takes.
        std::string wire = frag <= 65536 ? Frame(opcode, std::string(frag, '*'), fin)
                                         : HeaderOnly(opcode, frag, fin);
        p.Feed(wire, got);
        if (!p.stopped()) accepted += frag;
      }
      CHECK(accepted == (frag <= 65536 ? 65536 : 0));
      CheckFails(got, {}, cc::kMessageTooBig);
    }
  }
}

TEST_CASE("Autobahn 9.5.x, 9.6.x: a message in chops of 64..2048 octets (1 MiB fails, 64 KiB passes)") {
  for (size_t chop : {64, 128, 256, 512, 1024, 2048}) {
    std::string wire = Text(std::string(1 << 20, '*'));
    FrameParser p;
    std::vector<std::string> chunks = Chop(std::string_view(wire).substr(0, 4 * chop), chop);
    auto t = Drive(p, chunks);
    CHECK(t.chunk_of(Type::kError) == 0);  // the header is in the first chop
    std::string ok(65536, '*');
    CHECK(Parse(Binary(ok), chop) == Events{BinaryEv(ok)});
    CHECK(Parse(Text(ok), chop) == Events{TextEv(ok)});
  }
}

TEST_CASE("Autobahn 9.7.x, 9.8.x: 1000 messages of 0..4096 bytes in one stream") {
  for (size_t n : {0, 16, 64, 256, 1024, 4096}) {
    for (bool binary : {false, true}) {
      std::string payload(n, binary ? '\xfe' : '*');
      std::string one = binary ? Binary(payload) : Text(payload);
      std::string wire;
      wire.reserve(one.size() * 1000);
      for (int i = 0; i < 1000; ++i) wire += one;
      FrameParser p;
      std::string_view in = wire;
      int count = 0;
      for (FrameEvent e = p.Next(in); e.type != Type::kNone; e = p.Next(in)) {
        if (e.type == (binary ? Type::kBinary : Type::kText) && e.payload.size() == n) ++count;
      }
      CHECK(count == 1000);
      CHECK(in.empty());
    }
  }
}
