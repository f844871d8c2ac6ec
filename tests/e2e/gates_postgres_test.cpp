// Quality gates against the real PostgreSQL started by scripts/services.sh
// (DPONE_TEST_PG_DSN): every gate type passes on a load that satisfies it, and fails on
// one that does not, leaving the target table, its load receipts and the state exactly as
// they were. typed_hash is checked across every logical type the PostgreSQL dialect
// renders (the hash definition of docs/quality-gates.md, computed by PostgreSQL's md5),
// and fails closed on a PostgreSQL -> PostgreSQL pass-through load.
#include <cstdio>
#include <random>

#include <fmt/format.h>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

const char* kHeader = "id,status,amount,qty,created_at,ratio,small,flag,day,at,ts,uid,label\n";
// typed_hash's failure on PostgreSQL is TypedHashFailsClosedOnPassThrough below (files ->
// PostgreSQL keeps every value, so there is no honest mismatch to provoke here).
// Every logical type the gates render in PostgreSQL but bytes/json (CSV has neither).
const char* kGoodRows =
    "1,new,10.50,1,2026-11-01T10:00:00Z,1.5,0.1,true,2026-11-01,10:00:00,2026-11-01T10:00:00,"
    "0f8fad5b-d9cb-469f-a165-70867728950e,ann\n"
    "2,paid,0.99,2,2026-11-02T11:30:00.25Z,-0,3.25,false,2026-11-02,23:59:59.5,2026-11-02T11:30:00."
    "000001,"
    "7c9e6679-7425-40de-944b-e07fc1f90ae7,\"b,o \"\"b\"\"\"\n"
    "3,shipped,120.00,3,2026-11-03T09:15:00Z,1e-07,,,,,,,\n";

std::string manifest(const std::string& schema, const std::string& gates) {
  return "kind: dpone.batch.v1\n"
         "streams:\n"
         "  - name: orders\n"
         "    source:\n"
         "      connector: files\n"
         "      path: landing/orders.csv\n"
         "      columns: {id: int64, status: string, amount: \"decimal(10,2)\", qty: int32, "
         "created_at: timestamptz,\n"
         "                ratio: float64, small: float32, flag: bool, day: date, at: time, ts: "
         "timestamp, uid: uuid,\n"
         "                label: string}\n"
         "    sink:\n"
         "      connector: postgres\n"
         "      connection: pg\n"
         "      schema: " +
         schema +
         "\n"
         "      table: orders\n"
         "      strategy: {mode: full_refresh}\n"
         "    quality:\n" +
         gates;
}

// The rows below are dated November 2026: "now" is pinned a week after them (DPONE_NOW),
// so the freshness gates judge them the same way whatever the calendar says.
std::map<std::string, std::string> dated_env(std::map<std::string, std::string> more = {}) {
  more.emplace("DPONE_NOW", "2026-11-10T00:00:00Z");
  return pg_env(std::move(more));
}

json last_gates(const fs::path& dir) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  json rec = json::parse(r.out, nullptr, false);
  if (rec.is_discarded() || !rec.contains("streams") || rec["streams"].empty())
    return json::array();
  return rec["streams"][0].value("gates", json::array());
}

TEST(GatesPostgres, EveryGateTypePassesIncludingTypedHashOverEveryType) {
  REQUIRE_PG();
  Scratch s;
  PgSchema schema("dpone_gates_");
  write_file(
      s / "manifest.yaml",
      manifest(schema.name(),
               "      - {type: row_count}\n"
               "      - {type: min_rows, min: 3}\n"
               "      - {type: not_null, columns: [id, status]}\n"
               "      - {type: unique, columns: id}\n"
               "      - {type: accepted_values, columns: status, values: [new, paid, shipped]}\n"
               "      - {type: range, columns: amount, min: 0, max: 1000}\n"
               "      - {type: range, columns: created_at, min: \"2026-01-01T00:00:00Z\"}\n"
               "      - {type: freshness, columns: created_at, max_age: 3650d}\n"
               "      - {type: freshness, columns: ts, max_age: 3650d}\n"
               "      - {type: custom_sql, sql: \"SELECT id FROM {staging} WHERE qty > 100\"}\n"
               "      - {name: content_hash, type: typed_hash}\n"));
  write_file(s / "landing" / "orders.csv", std::string(kHeader) + kGoodRows);
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"}, dated_env());
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json gates = last_gates(s.dir());
  ASSERT_EQ(gates.size(), 11u) << gates.dump(1);
  for (const auto& g : gates) EXPECT_TRUE(g.value("passed", false)) << g.dump(1);
  EXPECT_EQ(psql("SELECT count(*) FROM " + schema.name() + ".orders;"), "3\n");
  // The negative zero survived PostgreSQL (float8send keeps the sign), which the hash saw.
  EXPECT_EQ(psql("SELECT ratio::text FROM " + schema.name() + ".orders WHERE id = 2;"), "-0\n");
}

struct FailCase {
  std::string name;
  std::string gate;  // the quality list entry
  std::string rows;  // the CSV rows of the failing run
  std::vector<std::string> expected;
  std::map<std::string, std::string> env;
};

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

class GateFailsOnPostgres : public ::testing::TestWithParam<FailCase> {};

TEST_P(GateFailsOnPostgres, TargetAndStateUnchanged) {
  REQUIRE_PG();
  const FailCase& c = GetParam();
  Scratch s;
  PgSchema schema("dpone_gates_");
  write_file(s / "manifest.yaml", manifest(schema.name(), "      - " + c.gate + "\n"));
  write_file(s / "landing" / "orders.csv", std::string(kHeader) + kGoodRows);
  Result first = run_dpone(s.dir(), {"run", "manifest.yaml"}, dated_env());
  ASSERT_EQ(first.exit_code, 0) << first.all();
  ASSERT_TRUE(last_gates(s.dir()).at(0).value("passed", false)) << last_gates(s.dir()).dump(1);
  auto snapshot = [&] {
    return psql("SELECT * FROM " + schema.name() + ".orders ORDER BY 1;") +
           psql(
               "SELECT stream, run_id, base_revision, \"window\", new_position, rows, loaded_at "
               "FROM " +
               schema.name() + ".__dpone__loads ORDER BY run_id;") +
           run_dpone(s.dir(),
                     {"state", "history", "orders", "-m", "manifest.yaml", "--format", "json"})
               .out;
  };
  const std::string before = snapshot();
  write_file(s / "landing" / "orders.csv", std::string(kHeader) + c.rows);
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"}, dated_env(c.env));
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find("GATE_FAILED"), std::string::npos) << r.all();
  for (const auto& e : c.expected)
    EXPECT_NE(r.all().find(e), std::string::npos) << "missing '" << e << "' in\n" << r.all();
  EXPECT_FALSE(last_gates(s.dir()).at(0).value("passed", true));
  EXPECT_EQ(snapshot(), before);
  // No staging table is left behind.
  EXPECT_EQ(psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema.name() +
                 "' AND tablename LIKE '%dpone_stg%';"),
            "0\n");
}

std::vector<FailCase> fail_cases() {
  const std::string good = kGoodRows;
  return {
      {"not_null",
       "{type: not_null, columns: [id, status]}",
       replace_once(good, "2,paid,", "2,,"),
       {"gate not_null_id_status (not_null on id, status) failed: 1 rows", "id='2', status=NULL"},
       {}},
      {"unique",
       "{type: unique, columns: status}",
       replace_once(good, "2,paid,", "2,new,"),
       {"gate unique_status (unique on status) failed: 2 rows", "status='new' (2 rows)"},
       {}},
      {"accepted_values",
       "{type: accepted_values, columns: status, values: [new, paid, shipped]}",
       replace_once(good, "3,shipped,", "3,lost,"),
       {"status='lost' (1 rows)"},
       {}},
      {"range",
       "{type: range, columns: amount, min: 0, max: 1000}",
       replace_once(good, "1,new,10.50", "1,new,-5.00"),
       {"1 rows outside amount >= 0 and <= 1000", "amount='-5.00'"},
       {}},
      {"min_rows",
       "{type: min_rows, min: 3}",
       good.substr(0, good.find("3,shipped")),
       {"staged 2 rows, at least 3 required"},
       {}},
      {"row_count",
       "{type: row_count, tolerance: \"10%\"}",
       good,
       {"source 4 rows, staged 3 rows, difference 1, tolerance 10% = 0.40 rows exceeded"},
       {{"DPONE_TEST_FAULTS", "gate_source_rows_offset=1"}}},
      {"freshness",
       "{type: freshness, columns: created_at, max_age: 30d}",
       replace_once(replace_once(replace_once(good, "2026-11-01T10:00:00Z", "2001-01-01T00:00:00Z"),
                                 "2026-11-02T11:30:00.25Z", "2001-01-02T00:00:00Z"),
                    "2026-11-03T09:15:00Z", "2001-01-03T00:00:00Z"),
       {"newest created_at is 2001-01-03"},
       {}},
      {"custom_sql",
       "{type: custom_sql, sql: \"SELECT id, qty FROM {staging} WHERE qty > 100\"}",
       replace_once(good, "0.99,2,", "0.99,500,"),
       {"gate custom_sql (custom_sql) failed: 1 rows", "id='2', qty='500'"},
       {}},
  };
}

INSTANTIATE_TEST_SUITE_P(Types, GateFailsOnPostgres, ::testing::ValuesIn(fail_cases()),
                         [](const auto& info) { return info.param.name; });

// Gates run in a read-only transaction: a custom_sql calling something that writes (here
// nextval; a data-modifying CTE is refused inside the wrapping subquery anyway) fails the
// run naming the gate, and changes nothing.
TEST(GatesPostgres, CustomSqlCannotModify) {
  REQUIRE_PG();
  Scratch s;
  PgSchema schema("dpone_gates_");
  psql("CREATE SEQUENCE " + schema.name() + ".seq;");
  write_file(s / "manifest.yaml",
             manifest(schema.name(), "      - {type: custom_sql, sql: \"SELECT id FROM {staging} WHERE nextval('" +
                                         schema.name() + ".seq') < 0\"}\n"));
  write_file(s / "landing" / "orders.csv", std::string(kHeader) + kGoodRows);
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"}, dated_env());
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find("read-only transaction"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("gate 'custom_sql' (custom_sql) could not run"), std::string::npos) << r.all();
  EXPECT_EQ(psql("SELECT is_called FROM " + schema.name() + ".seq;"), "f\n");
  EXPECT_NE(psql("SELECT count(*) FROM " + schema.name() + ".orders;").find("does not exist"), std::string::npos);
}

// PostgreSQL -> PostgreSQL travels as COPY bytes (text or binary) dpone does not decode:
// row_count still counts the rows, typed_hash cannot hash the source and fails closed.
TEST(GatesPostgres, TypedHashFailsClosedOnPassThrough) {
  REQUIRE_PG();
  Scratch s;
  PgSchema schema("dpone_gates_");
  psql("CREATE TABLE " + schema.name() + ".src (id bigint PRIMARY KEY, note text); INSERT INTO " +
       schema.name() + ".src VALUES (1, 'a'), (2, E'two\\nlines'), (3, NULL);");
  write_file(s / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: copy\n"
             "    source: {connector: postgres, connection: pg, schema: " +
                 schema.name() +
                 ", table: src}\n"
                 "    sink: {connector: postgres, connection: pg, schema: " +
                 schema.name() +
                 ", table: dst, strategy: {mode: full_refresh}}\n"
                 "    quality:\n"
                 "      - {type: row_count}\n"
                 "      - {type: typed_hash}\n");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"}, dated_env());
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find("GATE_FAILED"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("fails closed"), std::string::npos) << r.all();
  json gates = last_gates(s.dir());
  ASSERT_EQ(gates.size(), 2u) << gates.dump(1);
  EXPECT_TRUE(gates[0].value("passed", false)) << gates[0].dump(1);  // 3 COPY lines = 3 staged rows
  EXPECT_NE(gates[0].value("detail", "").find("source 3 rows, staged 3 rows"), std::string::npos)
      << gates[0].dump(1);
  EXPECT_FALSE(gates[1].value("passed", true));
  EXPECT_NE(gates[1].value("detail", "").find("a pass-through byte stream dpone does not decode"),
            std::string::npos)
      << gates[1].dump(1);
  EXPECT_NE(psql("SELECT count(*) FROM " + schema.name() + ".dst;").find("does not exist"),
            std::string::npos);
}

}  // namespace
