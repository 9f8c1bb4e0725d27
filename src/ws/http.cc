#include "ws/http.h"

#include <http_parser.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <ctime>

namespace reactor::ws {
namespace {

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 9110 section 5.6.2. http-parser lets spaces into field names unless built strict,
// and "Host : x" or "Bad Header: x" are smuggling material, so names are checked here.
bool IsTokenText(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool HasNoBody(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

}  // namespace

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

const std::string* Request::Query(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool DecodeQueryComponent(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key, value;
    if (!DecodeQueryComponent(part.substr(0, eq), key)) return false;
    if (eq != std::string_view::npos && !DecodeQueryComponent(part.substr(eq + 1), value)) {
      return false;
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return true;
}

bool HasToken(std::string_view list, std::string_view token) {
  while (true) {
    size_t comma = list.find(',');
    if (EqualsIgnoreCase(TrimOws(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// ---- RequestParser ----

// http-parser calls back through plain C function pointers; each one finds its parser
// through http_parser::data. Nothing here may throw into the C code, hence noexcept
// (an allocation failure ends the process, as everywhere else in the reactor).
struct RequestParser::Callbacks {
  static RequestParser& Self(http_parser* p) { return *static_cast<RequestParser*>(p->data); }

  static int OnUrl(http_parser* p, const char* at, size_t n) noexcept {
    Self(p).request_.target.append(at, n);
    return 0;
  }

  static int OnHeaderField(http_parser* p, const char* at, size_t n) noexcept {
    RequestParser& s = Self(p);
    if (s.in_value_ && !s.FinishHeader()) return 1;
    if (!IsTokenText(std::string_view(at, n))) return s.CallbackError(400, "invalid header name");
    s.field_.append(at, n);
    return 0;
  }

  static int OnHeaderValue(http_parser* p, const char* at, size_t n) noexcept {
    RequestParser& s = Self(p);
    s.in_value_ = true;
    s.value_.append(at, n);
    return 0;
  }

  static int OnHeadersComplete(http_parser* p) noexcept {
    RequestParser& s = Self(p);
    // Any value other than 0, 1 and 2 is an error for http-parser.
    constexpr int kStop = 3;
    if (s.in_value_ && !s.FinishHeader()) return kStop;
    s.headers_done_ = true;
    Request& r = s.request_;
    r.method = http_method_str(static_cast<http_method>(p->method));
    r.http_major = p->http_major;
    r.http_minor = p->http_minor;
    r.upgrade = p->upgrade != 0;
    if (p->http_major != 1) {
      s.CallbackError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here");
      return kStop;
    }
    if (p->http_minor >= 1 && r.Header("host") == nullptr) {
      s.CallbackError(400, "HTTP/1.1 request without a Host header");
      return kStop;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s.limits_.max_body_bytes) {
      s.CallbackError(413, "request body too large");
      return kStop;
    }
    return 0;
  }

  static int OnBody(http_parser* p, const char* at, size_t n) noexcept {
    RequestParser& s = Self(p);
    if (s.request_.body.size() + n > s.limits_.max_body_bytes) {
      return s.CallbackError(413, "request body too large");
    }
    s.request_.body.append(at, n);
    return 0;
  }

  static int OnMessageComplete(http_parser* p) noexcept {
    RequestParser& s = Self(p);
    s.complete_ = true;
    s.request_.keep_alive = http_should_keep_alive(p) != 0;
    // Pausing makes http_parser_execute return right after this request, telling how
    // many bytes it used; the rest belongs to the next request or to the WebSocket.
    http_parser_pause(p, 1);
    return 0;
  }

  static const http_parser_settings& Settings() {
    static const http_parser_settings settings = [] {
      http_parser_settings st;
      http_parser_settings_init(&st);
      st.on_url = OnUrl;
      st.on_header_field = OnHeaderField;
      st.on_header_value = OnHeaderValue;
      st.on_headers_complete = OnHeadersComplete;
      st.on_body = OnBody;
      st.on_message_complete = OnMessageComplete;
      return st;
    }();
    return settings;
  }
};

RequestParser::RequestParser(RequestLimits limits)
    : limits_(limits), parser_(std::make_unique<http_parser>()) {
  Reset();
}

RequestParser::~RequestParser() = default;

void RequestParser::Reset() {
  http_parser_init(parser_.get(), HTTP_REQUEST);
  parser_->data = this;
  request_ = Request();
  bytes_seen_ = 0;
  headers_done_ = complete_ = failed_ = false;
  cb_status_ = 0;
  cb_error_.clear();
  error_status_ = 0;
  error_.clear();
  field_.clear();
  value_.clear();
  in_value_ = false;
}

int RequestParser::CallbackError(int status, std::string_view why) {
  cb_status_ = status;
  cb_error_.assign(why);
  return 1;
}

ParseStatus RequestParser::Error(int status, std::string_view why, size_t consumed) {
  failed_ = true;
  error_status_ = status;
  error_.assign(why);
  return {ParseStatus::State::kError, consumed, status, error_};
}

bool RequestParser::FinishHeader() {
  std::string name = std::move(field_);
  std::transform(name.begin(), name.end(), name.begin(), LowerAscii);
  std::string_view value = TrimOws(value_);
  field_.clear();
  in_value_ = false;
  bool ok = true;
  auto existing_it = std::find_if(request_.headers.begin(), request_.headers.end(),
                                  [&name](const auto& h) { return h.first == name; });
  if (existing_it != request_.headers.end()) {
    std::string* existing = &existing_it->second;
    // Two Hosts make the request ambiguous (RFC 9112 section 3.2).
    if (name == "host") {
      CallbackError(400, "repeated Host header");
      ok = false;
    } else {
      existing->append(", ");
      existing->append(value);
    }
  } else {
    request_.headers.emplace_back(std::move(name), std::string(value));
  }
  value_.clear();
  return ok;
}

bool RequestParser::FinishRequest() {
  Request& r = request_;
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(r.target.data(), r.target.size(), r.method == "CONNECT", &url) != 0) {
    CallbackError(400, "malformed request target");
    return false;
  }
  if (url.field_set & (1 << UF_PATH)) {
    r.path = r.target.substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
  } else {
    r.path = "/";
  }
  if (url.field_set & (1 << UF_QUERY)) {
    std::string_view q(r.target.data() + url.field_data[UF_QUERY].off, url.field_data[UF_QUERY].len);
    if (!ParseQuery(q, r.query)) {
      CallbackError(400, "malformed query string");
      return false;
    }
  }
  return true;
}

ParseStatus RequestParser::Feed(std::string_view data) {
  if (failed_) return {ParseStatus::State::kError, 0, error_status_, error_};
  if (complete_) return {ParseStatus::State::kComplete, 0, 0, {}};
  size_t used = 0;
  while (used < data.size()) {
    size_t chunk = data.size() - used;
    // Headers are fed no further than the limit, so an oversized head is cut off there
    // rather than buffered; room is never 0 here (checked below), and a 0-byte execute
    // would mean end of stream to http-parser.
    if (!headers_done_) chunk = std::min(chunk, limits_.max_header_bytes - bytes_seen_);
    size_t n = http_parser_execute(parser_.get(), &Callbacks::Settings(), data.data() + used, chunk);
    used += n;
    bytes_seen_ += n;
    if (complete_) {
      if (!FinishRequest()) return Error(cb_status_, cb_error_, used);
      return {ParseStatus::State::kComplete, used, 0, {}};
    }
    http_errno err = HTTP_PARSER_ERRNO(parser_.get());
    if (err != HPE_OK) {
      if (cb_status_ != 0) return Error(cb_status_, cb_error_, used);
      return Error(400, http_errno_description(err), used);
    }
    if (!headers_done_ && bytes_seen_ >= limits_.max_header_bytes) {
      return Error(431, "request header section too large", used);
    }
    if (n < chunk) return Error(400, "request parsing stopped", used);
  }
  return {ParseStatus::State::kNeedMore, used, 0, {}};
}

// ---- Responses ----

std::string_view StatusReason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 421: return "Misdirected Request";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string HttpDate(int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                        tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                        tm.tm_sec);
  return std::string(buf, static_cast<size_t>(n));
}

void Response::AppendTo(std::string& out) const {
  auto header = [&out](std::string_view name, std::string_view value) {
    assert(value.find_first_of("\r\n") == std::string_view::npos);
    out.append(name).append(": ").append(value).append("\r\n");
  };
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(StatusReason(status));
  out.append("\r\n");
  if (!date.empty()) header("Date", date);
  for (const auto& [k, v] : headers) header(k, v);
  bool bodyless = HasNoBody(status);
  if (!bodyless) {
    if (!content_type.empty()) header("Content-Type", content_type);
    header("Content-Length", std::to_string(body.size()));
  }
  header("Connection", !connection.empty() ? std::string_view(connection)
                       : keep_alive       ? std::string_view("keep-alive")
                                          : std::string_view("close"));
  out.append("\r\n");
  if (!bodyless && !head) out.append(body);
}

std::string Response::Serialize() const {
  std::string out;
  out.reserve(160 + body.size());
  AppendTo(out);
  return out;
}

Response TextResponse(int status, std::string_view detail) {
  Response r;
  r.status = status;
  r.body.append(std::to_string(status)).append(" ").append(StatusReason(status));
  if (!detail.empty()) r.body.append(": ").append(detail);
  r.body.push_back('\n');
  return r;
}

Response BadRequest(std::string_view detail) {
  Response r = TextResponse(400, detail);
  r.keep_alive = false;
  return r;
}

Response Unauthorized(std::string_view detail) {
  Response r = TextResponse(401, detail);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"reactor\"");
  return r;
}

Response NotFound() { return TextResponse(404); }

Response MethodNotAllowed(std::string_view allow) {
  Response r = TextResponse(405);
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

Response PayloadTooLarge() {
  Response r = TextResponse(413);
  r.keep_alive = false;
  return r;
}

Response UpgradeRequired(std::string_view detail) {
  Response r = TextResponse(426, detail);
  r.headers.emplace_back("Upgrade", "websocket");
  r.headers.emplace_back("Sec-WebSocket-Version", "13");
  // RFC 9110 section 7.8: whoever sends Upgrade names it in Connection too.
  r.keep_alive = false;
  r.connection = "Upgrade, close";
  return r;
}

Response HeadersTooLarge() {
  Response r = TextResponse(431);
  r.keep_alive = false;
  return r;
}

Response ServiceUnavailable(std::string_view detail) { return TextResponse(503, detail); }

Response ErrorResponse(const ParseStatus& status) {
  switch (status.http_status) {
    case 413: return PayloadTooLarge();
    case 431: return HeadersTooLarge();
    case 505: {
      Response r = TextResponse(505, status.error);
      r.keep_alive = false;
      return r;
    }
    default: return BadRequest(status.error);
  }
}

}  // namespace reactor::ws
