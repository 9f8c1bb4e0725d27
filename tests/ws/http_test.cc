#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ws/http.h"

using namespace reactor::ws;
using State = ParseStatus::State;

namespace {

const std::string kGet =
    "GET /ws?job_id=job_42&status=failed,running&user_id=u%201&q=a+b HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "User-Agent: test\r\n"
    "Accept: text/plain\r\n"
    "Accept: application/json\r\n"
    "X-Padded:   value with spaces  \r\n"
    "\r\n";

void CheckGet(const Request& r) {
  CHECK(r.method == "GET");
  CHECK(r.path == "/ws");
  CHECK(r.target == "/ws?job_id=job_42&status=failed,running&user_id=u%201&q=a+b");
  REQUIRE(r.query.size() == 4);
  CHECK(r.query[0] == std::pair<std::string, std::string>("job_id", "job_42"));
  CHECK(*r.Query("status") == "failed,running");
  CHECK(*r.Query("user_id") == "u 1");
  CHECK(*r.Query("q") == "a b");
  CHECK(r.Query("since") == nullptr);
  CHECK(*r.Header("host") == "localhost:8080");
  CHECK(*r.Header("user-agent") == "test");
  CHECK(*r.Header("accept") == "text/plain, application/json");
  CHECK(*r.Header("x-padded") == "value with spaces");
  CHECK(r.http_major == 1);
  CHECK(r.http_minor == 1);
  CHECK(r.keep_alive);
  CHECK_FALSE(r.upgrade);
}

}  // namespace

TEST_CASE("http: a request in one piece") {
  RequestParser p;
  auto st = p.Feed(kGet);
  REQUIRE(st.state == State::kComplete);
  CHECK(st.consumed == kGet.size());
  CheckGet(p.request());
}

TEST_CASE("http: split at every byte offset, and fed byte by byte") {
  for (size_t cut = 0; cut <= kGet.size(); ++cut) {
    RequestParser p;
    std::string_view a = std::string_view(kGet).substr(0, cut), b = std::string_view(kGet).substr(cut);
    auto st = p.Feed(a);
    if (cut < kGet.size()) {
      REQUIRE(st.state == State::kNeedMore);
      CHECK(st.consumed == a.size());
      st = p.Feed(b);
    }
    REQUIRE(st.state == State::kComplete);
    CheckGet(p.request());
  }
  RequestParser p;
  ParseStatus st;
  for (char c : kGet) st = p.Feed(std::string_view(&c, 1));
  REQUIRE(st.state == State::kComplete);
  CheckGet(p.request());
}

TEST_CASE("http: pipelined requests are handed out one at a time") {
  std::string a = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string b = "GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string c = "GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  std::string all = a + b + c;
  RequestParser p;
  std::string_view in = all;
  std::vector<std::string> paths;
  std::vector<bool> keep;
  while (!in.empty()) {
    auto st = p.Feed(in);
    REQUIRE(st.state == State::kComplete);
    in.remove_prefix(st.consumed);
    paths.push_back(p.request().path);
    keep.push_back(p.request().keep_alive);
    // Until Reset, the parser takes nothing more.
    CHECK(p.Feed(in).consumed == 0);
    p.Reset();
  }
  CHECK(paths == std::vector<std::string>{"/healthz", "/readyz", "/metrics"});
  CHECK(keep == std::vector<bool>{true, true, false});
}

TEST_CASE("http: keep-alive rules of HTTP/1.0 and 1.1") {
  struct Case {
    const char* text;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    RequestParser p;
    auto st = p.Feed(c.text);
    REQUIRE(st.state == State::kComplete);
    CHECK(p.request().keep_alive == c.keep_alive);
  }
}

TEST_CASE("http: the header limit answers 431 without buffering past it") {
  RequestParser p(RequestLimits{256, 1024});
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  auto st = p.Feed(head);
  CHECK(st.state == State::kError);
  CHECK(st.http_status == 431);
  CHECK(st.consumed == 256);
  // Byte by byte it fails at the same place.
  RequestParser q(RequestLimits{256, 1024});
  size_t fed = 0;
  for (char c : head) {
    st = q.Feed(std::string_view(&c, 1));
    ++fed;
    if (st.state != State::kNeedMore) break;
  }
  CHECK(st.http_status == 431);
  CHECK(fed == 256);
  // A request of exactly the limit passes.
  std::string exact = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  exact += std::string(256 - exact.size() - 4, 'b') + "\r\n\r\n";
  REQUIRE(exact.size() == 256);
  RequestParser r(RequestLimits{256, 1024});
  CHECK(r.Feed(exact).state == State::kComplete);
  // The default limit is 8 KiB.
  RequestParser d;
  std::string long_url = "GET /" + std::string(9000, 'x') + " HTTP/1.1\r\n";
  CHECK(d.Feed(long_url).http_status == 431);
  CHECK(ErrorResponse(d.Feed("")).Serialize().rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0) == 0);
}

TEST_CASE("http: bodies beyond the small limit are 413") {
  RequestParser p(RequestLimits{8192, 16});
  auto st = p.Feed("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n");
  CHECK(st.state == State::kError);
  CHECK(st.http_status == 413);
  RequestParser q(RequestLimits{8192, 16});
  st = q.Feed("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n0123456789abcdef");
  REQUIRE(st.state == State::kComplete);
  CHECK(q.request().body == "0123456789abcdef");
  // Chunked bodies are counted as they arrive.
  RequestParser r(RequestLimits{8192, 16});
  st = r.Feed("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
  CHECK(st.state == State::kError);
  CHECK(st.http_status == 413);
  Response resp = ErrorResponse(st);
  CHECK(resp.status == 413);
  CHECK_FALSE(resp.keep_alive);
}

TEST_CASE("http: malformed requests are 400 (or 505), with a reason") {
  const char* bad[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",                                   // no Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",             // two Hosts
      "GET /?a=%zz HTTP/1.1\r\nHost: h\r\n\r\n",                  // bad escape
      "GET /?a=%4 HTTP/1.1\r\nHost: h\r\n\r\n",                   // truncated escape
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
  };
  for (const char* text : bad) {
    std::string shown = text;
    CAPTURE(shown);
    RequestParser p;
    auto st = p.Feed(text);
    CHECK(st.state == State::kError);
    CHECK(st.http_status == 400);
    CHECK_FALSE(st.error.empty());
    // It stays failed.
    CHECK(p.Feed("GET / HTTP/1.1\r\n").state == State::kError);
  }
  RequestParser p;
  auto st = p.Feed("GET / HTTP/2.0\r\nHost: h\r\n\r\n");
  CHECK(st.state == State::kError);
  CHECK(st.http_status == 505);
}

TEST_CASE("http: query decoding") {
  std::vector<std::pair<std::string, std::string>> q;
  REQUIRE(ParseQuery("a=1&b=x+y&c=%2B%26%3d&&flag&=v&d=%C3%A9", q));
  REQUIRE(q.size() == 6);
  CHECK(q[0] == std::pair<std::string, std::string>("a", "1"));
  CHECK(q[1].second == "x y");
  CHECK(q[2].second == "+&=");
  CHECK(q[3] == std::pair<std::string, std::string>("flag", ""));
  CHECK(q[4] == std::pair<std::string, std::string>("", "v"));
  CHECK(q[5].second == "\xc3\xa9");
  std::string out;
  CHECK_FALSE(DecodeQueryComponent("%", out));
  CHECK_FALSE(DecodeQueryComponent("%a", out));
  CHECK_FALSE(DecodeQueryComponent("%g0", out));
  CHECK(DecodeQueryComponent("%00", out));
  CHECK(out == std::string(1, '\0'));
}

TEST_CASE("http: Upgrade requests leave the following bytes unconsumed") {
  std::string req =
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  RequestParser p;
  auto st = p.Feed(req + "\x81\x80rest");
  REQUIRE(st.state == State::kComplete);
  CHECK(st.consumed == req.size());
  CHECK(p.request().upgrade);
  // Without "Connection: upgrade" it is an ordinary request.
  RequestParser q;
  st = q.Feed("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  REQUIRE(st.state == State::kComplete);
  CHECK_FALSE(q.request().upgrade);
}

TEST_CASE("http: absolute-form targets and paths") {
  RequestParser p;
  auto st = p.Feed("GET http://example.com:8080/metrics?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
  REQUIRE(st.state == State::kComplete);
  CHECK(p.request().path == "/metrics");
  CHECK(*p.request().Query("x") == "1");
  p.Reset();
  st = p.Feed("GET /a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(st.state == State::kComplete);
  CHECK(p.request().path == "/a%2Fb");  // not decoded: routing sees what was sent
  CHECK(p.started());
  p.Reset();
  CHECK_FALSE(p.started());
}

TEST_CASE("http: HasToken") {
  CHECK(HasToken("Upgrade", "upgrade"));
  CHECK(HasToken("keep-alive, Upgrade", "upgrade"));
  CHECK(HasToken(" keep-alive ,\tUPGRADE\t", "upgrade"));
  CHECK_FALSE(HasToken("upgrades", "upgrade"));
  CHECK_FALSE(HasToken("", "upgrade"));
  CHECK_FALSE(HasToken("keep-alive", "upgrade"));
}

TEST_CASE("http: response serialization") {
  Response r = TextResponse(200, "ok");
  r.content_type = "text/plain; version=0.0.4";
  r.body = "reactor_up 1\n";
  r.date = HttpDate(784111777);
  CHECK(r.Serialize() ==
        "HTTP/1.1 200 OK\r\n"
        "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Content-Type: text/plain; version=0.0.4\r\n"
        "Content-Length: 13\r\n"
        "Connection: keep-alive\r\n"
        "\r\n"
        "reactor_up 1\n");
  r.head = true;
  r.keep_alive = false;
  r.date.clear();
  CHECK(r.Serialize() ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; version=0.0.4\r\n"
        "Content-Length: 13\r\n"
        "Connection: close\r\n"
        "\r\n");
  Response nc;
  nc.status = 204;
  CHECK(nc.Serialize() == "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("http: error helpers") {
  auto has = [](const Response& r, const std::string& line) {
    return r.Serialize().find("\r\n" + line + "\r\n") != std::string::npos;
  };
  Response r = BadRequest("why");
  CHECK(r.status == 400);
  CHECK(r.body == "400 Bad Request: why\n");
  CHECK_FALSE(r.keep_alive);
  r = Unauthorized("token expired");
  CHECK(r.status == 401);
  CHECK(has(r, "WWW-Authenticate: Bearer realm=\"reactor\""));
  CHECK(r.keep_alive);
  r = NotFound();
  CHECK(r.Serialize().rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  CHECK(r.body == "404 Not Found\n");
  r = MethodNotAllowed("GET, HEAD");
  CHECK(has(r, "Allow: GET, HEAD"));
  CHECK(PayloadTooLarge().status == 413);
  r = UpgradeRequired("speak WebSocket");
  CHECK(has(r, "Upgrade: websocket"));
  CHECK(has(r, "Sec-WebSocket-Version: 13"));
  CHECK(HeadersTooLarge().status == 431);
  r = ServiceUnavailable("LISTEN is not active");
  CHECK(r.status == 503);
  CHECK(r.body == "503 Service Unavailable: LISTEN is not active\n");
  CHECK(HttpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(HttpDate(1795240800) == "Sat, 21 Nov 2026 06:00:00 GMT");
}
