#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ws/frame.h"
#include "ws_test_util.h"

using namespace reactor::ws;
using namespace reactor::ws::testing;
namespace cc = reactor::ws::close_code;

TEST_CASE("frame: ApplyMask matches a byte-wise XOR at every offset and length") {
  std::array<uint8_t, 4> mask{{0x12, 0x34, 0x56, 0x78}};
  std::vector<uint8_t> src(67);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 31 + 7);
  for (uint64_t offset = 0; offset < 9; ++offset) {
    for (size_t len = 0; len <= src.size(); ++len) {
      std::vector<uint8_t> out(len);
      ApplyMask(src.data(), out.data(), len, mask, offset);
      for (size_t i = 0; i < len; ++i) {
        if (out[i] != (src[i] ^ mask[(offset + i) % 4])) FAIL("offset " << offset << " len " << len);
      }
      std::vector<uint8_t> in_place(src.begin(), src.begin() + static_cast<long>(len));
      ApplyMask(in_place.data(), in_place.data(), len, mask, offset);
      CHECK(in_place == out);
    }
  }
}

TEST_CASE("frame: server header sizes and bytes at the length boundaries") {
  CHECK(HeaderSize(0) == 2);
  CHECK(HeaderSize(125) == 2);
  CHECK(HeaderSize(126) == 4);
  CHECK(HeaderSize(65535) == 4);
  CHECK(HeaderSize(65536) == 10);
  CHECK(FrameSize(65536) == 65546);

  auto h = EncodeHeader(Opcode::kText, 125);
  CHECK(h.view() == std::string("\x81\x7d", 2));
  h = EncodeHeader(Opcode::kBinary, 126, false);
  CHECK(h.view() == std::string("\x02\x7e\x00\x7e", 4));
  h = EncodeHeader(Opcode::kText, 65536);
  CHECK(h.view() == std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  h = EncodeHeader(Opcode::kContinuation, 0x0102030405ULL);
  CHECK(h.view() == std::string("\x80\x7f\x00\x00\x00\x01\x02\x03\x04\x05", 10));
}

TEST_CASE("frame: one shared buffer holds header and payload") {
  std::string payload(300, 'e');
  std::vector<char> buf(FrameSize(payload.size()));
  size_t n = EncodeFrameInto(buf.data(), Opcode::kText, payload);
  CHECK(n == buf.size());
  auto f = DecodeServerFrame(std::string_view(buf.data(), n));
  REQUIRE(f.ok);
  CHECK(f.fin);
  CHECK_FALSE(f.masked);
  CHECK(f.opcode == 1);
  CHECK(f.header_size == 4);
  CHECK(f.payload == payload);
  CHECK(EncodeFrame(Opcode::kText, payload) == std::string(buf.data(), n));
}

TEST_CASE("frame: EncodeClose") {
  auto f = DecodeServerFrame(EncodeClose(cc::kMessageTooBig, "too big"));
  REQUIRE(f.ok);
  CHECK(f.opcode == 8);
  CHECK(f.payload == std::string("\x03\xf1too big", 9));
  // A codeless close is answered with a codeless close.
  CHECK(EncodeClose(cc::kNoStatus) == std::string("\x88\x00", 2));
  // A long reason is cut to 123 bytes, never inside a character.
  std::string reason(122, 'x');
  reason += "\xce\xba";  // 124 bytes, the last character straddles byte 123
  f = DecodeServerFrame(EncodeClose(cc::kNormal, reason));
  REQUIRE(f.ok);
  CHECK(f.payload.size() == 2 + 122);
  CHECK(IsValidUtf8(f.payload.substr(2)));
  f = DecodeServerFrame(EncodeClose(cc::kNormal, std::string(200, 'y')));
  CHECK(f.payload.size() == 125);
}

TEST_CASE("frame: close codes a peer may send") {
  for (uint32_t c : {1000u, 1001u, 1002u, 1003u, 1007u, 1008u, 1009u, 1010u, 1011u, 1012u, 1013u,
                     1014u, 3000u, 3999u, 4000u, 4999u}) {
    CHECK_MESSAGE(IsValidCloseCode(c), c);
  }
  for (uint32_t c : {0u, 999u, 1004u, 1005u, 1006u, 1015u, 1016u, 1100u, 2000u, 2999u, 5000u,
                     65535u}) {
    CHECK_FALSE_MESSAGE(IsValidCloseCode(c), c);
  }
}

TEST_CASE("frame: client encoder round trip through the parser, every split point") {
  std::string msg = "{\"op\":\"subscribe\",\"id\":\"s1\",\"filter\":{\"status\":[\"failed\"]}}";
  std::string wire = Text(msg) + Ping("p") + Binary(std::string(200, '\x01')) + Pong() +
                     CloseFrame(cc::kNormal, "bye");
  const std::vector<OwnedFrameEvent> expect = {TextEv(msg), PingEv("p"),
                                               BinaryEv(std::string(200, '\x01')), PongEv(),
                                               CloseEv(cc::kNormal, "bye")};
  CHECK(Parse(wire) == expect);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    FrameParser p;
    auto t = Drive(p, {wire.substr(0, cut), wire.substr(cut)});
    if (t.all() != expect) FAIL("split at " << cut);
  }
  for (size_t chunk : {1, 2, 3, 5, 7, 13}) CHECK(Parse(wire, chunk) == expect);
}

TEST_CASE("frame: Next consumes exactly up to the end of each event") {
  std::string a = Text("one");
  std::string b = Text("two");
  std::string wire = a + b + "\x81";  // and the first byte of a third frame
  FrameParser p;
  std::string_view in = wire;
  auto e = p.Next(in);
  CHECK(e.type == Type::kText);
  CHECK(e.payload == "one");
  CHECK(in.size() == wire.size() - a.size());
  e = p.Next(in);
  CHECK(e.payload == "two");
  CHECK(in.size() == 1);
  e = p.Next(in);
  CHECK(e.type == Type::kNone);
  CHECK(in.empty());
}

TEST_CASE("frame: payloads of every length class, unmasked correctly") {
  for (size_t n : {0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536}) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    auto ev = Parse(Binary(payload));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0] == BinaryEv(payload));
  }
}

TEST_CASE("frame: the client must mask") {
  ClientFrame f;
  f.payload = "hi";
  f.masked = false;
  auto ev = Parse(EncodeClientFrame(f));
  REQUIRE(ev.size() == 1);
  CHECK(IsError(ev[0], cc::kProtocolError));
  // Fails on the second byte, before the payload arrives.
  FrameParser p;
  auto t = Drive(p, Chop(EncodeClientFrame(f), 1));
  CHECK(t.chunk_of(Type::kError) == 1);
}

TEST_CASE("frame: lengths must use their shortest form") {
  // 5 bytes announced with the 16-bit form.
  std::string wire = std::string("\x82\xfe\x00\x05", 4) + std::string("\0\0\0\0", 4) + "hello";
  auto ev = Parse(wire);
  REQUIRE(ev.size() == 1);
  CHECK(IsError(ev[0], cc::kProtocolError));
  // 200 bytes announced with the 64-bit form.
  wire = std::string("\x82\xff\0\0\0\0\0\0\0\xc8", 10) + std::string(4, '\0') + std::string(200, 'x');
  ev = Parse(wire);
  REQUIRE(ev.size() == 1);
  CHECK(IsError(ev[0], cc::kProtocolError));
}

TEST_CASE("frame: a 64-bit length with the top bit set is a protocol error") {
  std::string wire = std::string("\x82\xff\x80\0\0\0\0\0\0\x01", 10) + std::string(4, '\0');
  auto ev = Parse(wire, 0, 1ULL << 62);
  REQUIRE(ev.size() == 1);
  CHECK(IsError(ev[0], cc::kProtocolError));
}

TEST_CASE("frame: the message limit counts all fragments and fails on the header") {
  FrameParser p(100);
  auto t = Drive(p, {Text(std::string(60, 'a'), false), Cont(std::string(40, 'b'), false),
                     Cont("", true)});
  CHECK(t.all() == std::vector<OwnedFrameEvent>{TextEv(std::string(60, 'a') + std::string(40, 'b'))});

  CHECK(p.buffer_capacity() <= 100);  // growth stops at the limit

  FrameParser q(100);
  std::string third = Cont("c", true);
  t = Drive(q, {Text(std::string(60, 'a'), false), Cont(std::string(40, 'b'), false),
                third.substr(0, 6), third.substr(6)});
  REQUIRE(t.per_chunk[2].size() == 1);
  CHECK(IsError(t.per_chunk[2][0], cc::kMessageTooBig));  // on the header, payload unsent
  CHECK(t.per_chunk[3].empty());
  CHECK(q.stopped());

  // A single frame announcing more than the limit fails before its payload.
  std::string big = Binary(std::string(101, 'x'));
  FrameParser r(100);
  t = Drive(r, {big.substr(0, 6)});
  REQUIRE(t.all().size() == 1);
  CHECK(IsError(t.all()[0], cc::kMessageTooBig));
  // Control frames do not count against the message.
  FrameParser s(4);
  t = Drive(s, {Text("ab", false) + Ping(std::string(100, 'p')) + Cont("cd")});
  CHECK(t.all() == std::vector<OwnedFrameEvent>{PingEv(std::string(100, 'p')), TextEv("abcd")});
}

TEST_CASE("frame: after a close or an error nothing more is consumed") {
  FrameParser p;
  std::string wire = CloseFrame(cc::kGoingAway) + Text("late");
  std::vector<OwnedFrameEvent> out;
  size_t used = p.Feed(wire, out);
  CHECK(used == wire.size() - Text("late").size());
  CHECK(out == std::vector<OwnedFrameEvent>{CloseEv(cc::kGoingAway)});
  CHECK(p.stopped());
  out.clear();
  CHECK(p.Feed(Text("more"), out) == 0);
  CHECK(out.empty());

  FrameParser q;
  out.clear();
  used = q.Feed(std::string("\xf1") + "rest", out);
  CHECK(used == 1);
  REQUIRE(out.size() == 1);
  CHECK(IsError(out[0], cc::kProtocolError));
}

TEST_CASE("frame: the message buffer is released after a large message") {
  FrameParser p;
  std::string big(40000, 'x');
  std::string wire = Binary(big) + Binary("small");
  std::string_view in = wire;
  auto e = p.Next(in);
  CHECK(e.payload.size() == big.size());
  CHECK(p.buffer_capacity() >= big.size());
  e = p.Next(in);
  CHECK(e.payload == "small");
  CHECK(p.buffer_capacity() < 8192);
  e = p.Next(in);
  CHECK(e.type == Type::kNone);
}

TEST_CASE("frame: a ping inside a fragmented message leaves the message intact") {
  auto ev = Parse(Text("Hello, ", false) + Ping("are you there") + Cont("World", false) +
                  Pong("late pong") + Cont("!", true), 1);
  CHECK(ev == std::vector<OwnedFrameEvent>{PingEv("are you there"), PongEv("late pong"),
                                           TextEv("Hello, World!")});
}

TEST_CASE("frame: a text message cut inside a character is invalid at its end") {
  auto ev = Parse(Text("\xe2\x82", false) + Cont("\xac"));
  CHECK(ev == std::vector<OwnedFrameEvent>{TextEv("\xe2\x82\xac")});
  ev = Parse(Text("abc\xe2\x82"));
  REQUIRE(ev.size() == 1);
  CHECK(IsError(ev[0], cc::kInvalidPayload));
  // Binary messages are not checked.
  ev = Parse(Binary("\xff\xfe"));
  CHECK(ev == std::vector<OwnedFrameEvent>{BinaryEv("\xff\xfe")});
}
