#include <doctest/doctest.h>

#include "pg/conninfo.h"
#include "pg/migrate.h"

using namespace reactor::pg;

TEST_CASE("DescribeConnInfo never shows a password") {
  auto d = DescribeConnInfo("postgresql://alice:s3cret@db.example:5433/jobs");
  CHECK(d == "alice@db.example:5433/jobs");
  CHECK(d.find("s3cret") == std::string::npos);
  auto kv = DescribeConnInfo("host=h port=1 user=u password=hunter2 dbname=d");
  CHECK(kv.find("hunter2") == std::string::npos);
  CHECK(DescribeConnInfo("postgresql://[bad") == "(invalid conninfo)");
}

TEST_CASE("MakeConnParams puts the reactor's defaults before the user's string") {
  auto p = MakeConnParams("postgresql://u@h/d?connect_timeout=9", ConnPurpose::kServe);
  REQUIRE(p);
  REQUIRE(p->keywords.back() == "dbname");
  CHECK(p->values.back() == "postgresql://u@h/d?connect_timeout=9");
  bool keepalives = false;
  for (const auto& k : p->keywords) keepalives |= k == "tcp_user_timeout";
  CHECK(keepalives);
  auto bad = MakeConnParams("host=h password=oops extra", ConnPurpose::kMigrate);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("oops") == std::string::npos);
}

TEST_CASE("migration versions and checksums") {
  CHECK(MigrationVersion("001_schema.sql") == 1);
  CHECK(MigrationVersion("042_x.sql") == 42);
  CHECK(MigrationVersion("schema.sql") == -1);
  CHECK(MigrationVersion("001") == -1);
  CHECK(Sha256Hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
