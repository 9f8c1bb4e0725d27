#include <doctest/doctest.h>

#include <string>

#include "core/embedded.h"
#include "web/assets.h"

using reactor::EmbeddedFile;
using namespace reactor::web;

namespace {

reactor::ws::Request Get(std::string path, std::string method = "GET") {
  reactor::ws::Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.target = r.path;
  return r;
}

const std::string* HeaderOf(const reactor::ws::Response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("web: content types by extension") {
  CHECK(ContentTypeFor("index.html") == "text/html; charset=utf-8");
  CHECK(ContentTypeFor("app.js") == "text/javascript; charset=utf-8");
  CHECK(ContentTypeFor("style.css") == "text/css; charset=utf-8");
  CHECK(ContentTypeFor("icon.svg") == "image/svg+xml");
  CHECK(ContentTypeFor("data.bin") == "application/octet-stream");
  CHECK(ContentTypeFor("js") == "application/octet-stream");
}

TEST_CASE("web: a table maps / to index.html and each file to /name") {
  const EmbeddedFile files[] = {{"index.html", "<!doctype html>"}, {"app.js", "export {};"},
                                {"style.css", "body{}"}};
  Assets t(files);
  const Asset* root = t.Find("/");
  REQUIRE(root != nullptr);
  CHECK(root->body == "<!doctype html>");
  CHECK(root->content_type == "text/html; charset=utf-8");
  REQUIRE(t.Find("/index.html") != nullptr);
  CHECK(t.Find("/index.html")->etag == root->etag);
  REQUIRE(t.Find("/app.js") != nullptr);
  CHECK(t.Find("/app.js")->body == "export {};");
  CHECK(t.Find("/style.css")->content_type == "text/css; charset=utf-8");
  CHECK(t.Find("/missing.js") == nullptr);
  CHECK(t.Find("/app.js/") == nullptr);
  CHECK(t.Find("app.js") == nullptr);
  CHECK(t.Find("/APP.JS") == nullptr);
  CHECK(t.Find("/%61pp.js") == nullptr);  // not decoded: exact names only
  CHECK(t.Find("") == nullptr);
  // Different bytes, different validators.
  CHECK(t.Find("/app.js")->etag != t.Find("/style.css")->etag);
  CHECK(root->etag.front() == '"');
  CHECK(root->etag.back() == '"');
}

TEST_CASE("web: a table without index.html serves nothing at /") {
  const EmbeddedFile files[] = {{"app.js", "x"}};
  Assets t(files);
  CHECK(t.Find("/") == nullptr);
  CHECK(t.Find("/app.js") != nullptr);
}

TEST_CASE("web: GET answers 200 with the bytes, no-cache and the ETag") {
  const EmbeddedFile files[] = {{"index.html", "<p>hi</p>"}, {"app.js", "let a = 1;"}};
  Assets t(files);
  auto r = Serve(*t.Find("/"), Get("/"));
  CHECK(r.status == 200);
  CHECK(r.body == "<p>hi</p>");
  CHECK(r.content_type == "text/html; charset=utf-8");
  REQUIRE(HeaderOf(r, "Cache-Control") != nullptr);
  CHECK(*HeaderOf(r, "Cache-Control") == "no-cache");
  REQUIRE(HeaderOf(r, "ETag") != nullptr);
  CHECK(*HeaderOf(r, "ETag") == t.Find("/")->etag);
  REQUIRE(HeaderOf(r, "Content-Security-Policy") != nullptr);
  CHECK(HeaderOf(r, "Content-Security-Policy")->find("default-src 'self'") != std::string::npos);

  auto js = Serve(*t.Find("/app.js"), Get("/app.js"));
  CHECK(js.content_type == "text/javascript; charset=utf-8");
  CHECK(HeaderOf(js, "Content-Security-Policy") == nullptr);
  std::string wire = js.Serialize();
  CHECK(wire.find("Content-Length: 10\r\n") != std::string::npos);
  CHECK(wire.substr(wire.size() - 10) == "let a = 1;");
}

TEST_CASE("web: HEAD has the same headers; other methods get 405") {
  const EmbeddedFile files[] = {{"index.html", "<p>hi</p>"}};
  Assets t(files);
  auto head = Serve(*t.Find("/"), Get("/", "HEAD"));
  CHECK(head.status == 200);
  CHECK(head.body == "<p>hi</p>");  // the server leaves the body out of a HEAD answer
  auto post = Serve(*t.Find("/"), Get("/", "POST"));
  CHECK(post.status == 405);
  REQUIRE(HeaderOf(post, "Allow") != nullptr);
  CHECK(*HeaderOf(post, "Allow") == "GET, HEAD");
}

TEST_CASE("web: If-None-Match with the ETag answers 304 without a body") {
  const EmbeddedFile files[] = {{"style.css", "body { color: red }"}};
  Assets t(files);
  const Asset& a = *t.Find("/style.css");
  auto req = Get("/style.css");

  req.headers = {{"if-none-match", a.etag}};
  auto r = Serve(a, req);
  CHECK(r.status == 304);
  CHECK(r.body.empty());
  std::string wire = r.Serialize();
  CHECK(wire.find("Content-Length") == std::string::npos);
  CHECK(wire.find("ETag: " + a.etag) != std::string::npos);

  req.headers = {{"if-none-match", "\"other\", W/" + a.etag}};
  CHECK(Serve(a, req).status == 304);
  req.headers = {{"if-none-match", "*"}};
  CHECK(Serve(a, req).status == 304);
  req.headers = {{"if-none-match", "\"other\""}};
  CHECK(Serve(a, req).status == 200);
  req.headers = {{"if-none-match", a.etag.substr(0, a.etag.size() - 2) + "\""}};
  CHECK(Serve(a, req).status == 200);
}

TEST_CASE("web: the embedded dashboard is complete") {
  const Assets& t = Assets::Embedded();
  const Asset* root = t.Find("/");
  REQUIRE(root != nullptr);
  CHECK(root->body.find("<!doctype html>") == 0);
  CHECK(root->body.find("type=\"module\"") != std::string_view::npos);
  CHECK(root->body.find("app.js") != std::string_view::npos);
  CHECK(root->body.find("style.css") != std::string_view::npos);
  // Nothing from elsewhere: every file is the binary's own.
  for (const auto& a : t.all()) {
    INFO(a.path);
    CHECK(a.body.find("http://") == std::string_view::npos);
    CHECK(a.body.find("https://") == std::string_view::npos);
    CHECK(a.content_type != "application/octet-stream");
  }
  for (const char* p : {"/app.js", "/client.js", "/store.js", "/view.js", "/sparkline.js", "/timeline.js",
                        "/travel.js", "/panel.js", "/jobhistory.js", "/style.css"}) {
    INFO(p);
    CHECK(t.Find(p) != nullptr);
  }
}
