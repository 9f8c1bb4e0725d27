#include "pg/conninfo.h"

#include <libpq-fe.h>

#include <memory>

namespace reactor::pg {
namespace {

struct OptionsFree {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using Options = std::unique_ptr<PQconninfoOption, OptionsFree>;

Result<Options> Parse(const std::string& conninfo) {
  char* err = nullptr;
  Options opts(PQconninfoParse(conninfo.c_str(), &err));
  if (!opts) {
    std::string msg = err ? err : "out of memory";
    if (err) PQfreemem(err);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // libpq's message may quote the offending text; a password could be in it.
    return Status::Error("invalid database URL: " +
                         (msg.find("password") != std::string::npos ? std::string("syntax error")
                                                                    : msg));
  }
  return opts;
}

}  // namespace

std::vector<const char*> ConnParams::keyword_ptrs() const {
  std::vector<const char*> out;
  for (const auto& k : keywords) out.push_back(k.c_str());
  out.push_back(nullptr);
  return out;
}

std::vector<const char*> ConnParams::value_ptrs() const {
  std::vector<const char*> out;
  for (const auto& v : values) out.push_back(v.c_str());
  out.push_back(nullptr);
  return out;
}

Result<ConnParams> MakeConnParams(const std::string& conninfo, ConnPurpose purpose) {
  auto parsed = Parse(conninfo);
  if (!parsed) return parsed.status();
  ConnParams p;
  auto add = [&p](const char* k, const char* v) {
    p.keywords.emplace_back(k);
    p.values.emplace_back(v);
  };
  add("application_name", "reactor");
  add("connect_timeout", "5");
  if (purpose == ConnPurpose::kServe) {
    add("keepalives", "1");
    add("keepalives_idle", "10");
    add("keepalives_interval", "5");
    add("keepalives_count", "3");
    add("tcp_user_timeout", "20000");
  }
  add("dbname", conninfo.c_str());  // expanded by libpq; its settings win over the above
  return p;
}

std::string DescribeConnInfo(const std::string& conninfo) {
  auto parsed = Parse(conninfo);
  if (!parsed) return "(invalid conninfo)";
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = parsed.value().get(); o->keyword; ++o) {
    if (!o->val) continue;
    std::string k = o->keyword;
    if (k == "user") user = o->val;
    else if (k == "host") host = o->val;
    else if (k == "hostaddr" && host.empty()) host = o->val;
    else if (k == "port") port = o->val;
    else if (k == "dbname") dbname = o->val;
  }
  std::string out;
  if (!user.empty()) out += user + "@";
  out += host.empty() ? "(default host)" : host;
  if (!port.empty()) out += ":" + port;
  out += "/" + (dbname.empty() ? std::string("(default db)") : dbname);
  return out;
}

}  // namespace reactor::pg
