// HTTP/1.1 requests in and responses out, for the reactor's one listener (CONTRACT
// section 5). Pure: bytes in, bytes out; no I/O, no clock (a Date is passed in).
//
// RequestParser wraps Debian's http-parser (C) and stops after each complete request, so
// that pipelined requests are answered one at a time and the bytes after an Upgrade
// request are left for the WebSocket frame parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/defaults.h"

struct http_parser;  // <http_parser.h>, kept out of this header

namespace reactor::ws {

struct Request {
  std::string method;  // as http-parser names it: "GET", "HEAD", "POST", ...
  std::string target;  // the request-target exactly as sent
  std::string path;    // the target's path, not percent-decoded; "/" when absent
  // The query string split at '&', keys and values decoded ('+' and %XX), in order.
  // A parameter without '=' has an empty value.
  std::vector<std::pair<std::string, std::string>> query;
  // Header names lowercased; a repeated header's values joined with ", " in order;
  // values without surrounding whitespace.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int http_major = 1;
  int http_minor = 1;
  bool keep_alive = false;  // the connection may carry another request after this one
  bool upgrade = false;     // Upgrade (with Connection: upgrade) or CONNECT

  // The header's value, or nullptr. REQUIRES: `name` in lower case.
  const std::string* Header(std::string_view name) const;
  // The first value of the query parameter, or nullptr.
  const std::string* Query(std::string_view key) const;
};

struct RequestLimits {
  size_t max_header_bytes = defaults::kMaxHeaderBytes;  // request line + headers; beyond: 431
  size_t max_body_bytes = 1024;    // no endpoint takes a body; beyond: 413
};

// Result of RequestParser::Feed.
struct ParseStatus {
  enum class State : uint8_t {
    kNeedMore,  // all input consumed, the request is not complete yet
    kComplete,  // a request is complete: see request(); `consumed` may be < input size
    kError,     // answer `http_status` with `error` as the reason, then close
  };
  State state = State::kNeedMore;
  size_t consumed = 0;   // bytes of this call's input that were used
  int http_status = 0;   // kError: 400, 413, 431 or 505
  std::string_view error;  // kError: why (static text, or owned by the parser)
};

// Parses one request at a time from bytes fed in chunks of any size.
//
// After kComplete the parser holds the request and consumes nothing more until Reset();
// the unconsumed bytes are the next pipelined request or, after an Upgrade, the first
// WebSocket bytes. After kError it stays failed. Memory is bounded by the limits.
// Not thread-safe; one parser per connection.
class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {});
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  ParseStatus Feed(std::string_view data);

  // REQUIRES: the last Feed returned kComplete. Valid until Reset().
  const Request& request() const { return request_; }
  Request& request() { return request_; }

  // Forgets the request (and any error): ready for the next one on the connection.
  void Reset();

  // Bytes of a request have been fed since the last Reset (a connection closed now
  // would cut a request short).
  bool started() const { return bytes_seen_ > 0; }

 private:
  struct Callbacks;
  ParseStatus Error(int status, std::string_view why, size_t consumed);
  // Callback-side failure: remembered, reported by Feed. Returns http-parser's "stop".
  int CallbackError(int status, std::string_view why);
  // Moves the assembled header into the request; false (with CallbackError) on a bad one.
  bool FinishHeader();
  // Splits the target into path and query; false on a malformed target.
  bool FinishRequest();

  RequestLimits limits_;
  std::unique_ptr<::http_parser> parser_;
  Request request_;
  size_t bytes_seen_ = 0;       // since Reset, including header bytes
  bool headers_done_ = false;
  bool complete_ = false;
  bool failed_ = false;
  // An error found by a callback (http-parser only learns that the callback said no).
  int cb_status_ = 0;
  std::string cb_error_;
  int error_status_ = 0;
  std::string error_;  // the error reported by the last failed Feed, kept for its view

  // Header being assembled: http-parser may hand a name or value over in pieces.
  std::string field_;
  std::string value_;
  bool in_value_ = false;
};

// Decodes a URL query component: '+' is a space, %XX a byte. False on a malformed escape.
bool DecodeQueryComponent(std::string_view in, std::string& out);

// Splits and decodes a query string ("a=1&b=x+y"). False on a malformed escape.
bool ParseQuery(std::string_view query,
                std::vector<std::pair<std::string, std::string>>& out);

// True when the comma-separated header value contains `token` (ASCII case-insensitive,
// surrounding whitespace ignored): HasToken("keep-alive, Upgrade", "upgrade").
bool HasToken(std::string_view list, std::string_view token);

// ---- Responses ----

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";  // "" = no Content-Type
  std::string body;
  // Extra headers, written as given after the status line.
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = true;   // Connection: keep-alive, or close
  std::string connection;   // when set, the Connection value instead (e.g. "Upgrade, close")
  bool head = false;        // answer to HEAD: Content-Length of the body, no body bytes
  std::string date;         // preformatted HTTP-date (HttpDate); "" = no Date header

  std::string Serialize() const;
  void AppendTo(std::string& out) const;
};

// "OK", "Not Found", ...; "Unknown" for a status it does not know.
std::string_view StatusReason(int status);

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for seconds since the Unix epoch.
std::string HttpDate(int64_t unix_seconds);

// A plain-text response: body "<status> <reason>[: detail]\n". Error helpers below set
// keep_alive = false when the connection cannot be trusted afterwards (400, 413, 431, 426
// and 505: the request stream itself was bad); for the others the caller keeps the
// connection when the request allows it (response.keep_alive &= request.keep_alive).
Response TextResponse(int status, std::string_view detail = {});
Response BadRequest(std::string_view detail);
// WWW-Authenticate: Bearer (RFC 6750).
Response Unauthorized(std::string_view detail);
Response NotFound();
// Allow: `allow` (e.g. "GET, HEAD").
Response MethodNotAllowed(std::string_view allow);
Response PayloadTooLarge();
// For a request to the WebSocket endpoint that is no (version 13) upgrade:
// Upgrade: websocket, Sec-WebSocket-Version: 13.
Response UpgradeRequired(std::string_view detail);
Response HeadersTooLarge();
Response ServiceUnavailable(std::string_view detail);
// The response to a ParseStatus::kError.
Response ErrorResponse(const ParseStatus& status);

}  // namespace reactor::ws
