// End-to-end: the internal query artifact. Source and sink on the same PostgreSQL
// database (one connection, two schemas): the load runs on the server as
// INSERT INTO <staging> SELECT ..., and must give exactly the target the COPY path gives
// (the same stream with `internal_query: false`), for full_refresh, merge with cursor
// increments and xmin increments; plan names the path and why; the run record shows no
// row went through dpone; a row_count/typed_hash gate makes the runtime take COPY.
#include <fmt/format.h>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// Every commonly mapped type, with the awkward values (NULL vs '', tabs, newlines,
// backslashes, unicode, NaN/Infinity, extreme timestamps).
void create_source(const std::string& sc) {
  psql("CREATE TABLE " + sc + ".t (id bigint PRIMARY KEY, i2 smallint, i4 integer, name text, v varchar(20), "
       "c char(4), amount numeric(12,2), f4 real, f8 double precision, flag boolean, d date, tm time, "
       "ts timestamp(3), tz timestamptz, doc jsonb, js json, u uuid, b bytea, arr int[], iv interval);"
       "INSERT INTO " + sc + ".t VALUES "
       "(1, 1, 10, 'plain', 'v1', 'ab', 12.50, 1.5, 0.1, true, '2024-02-29', '23:59:59.5', '2024-01-01 10:00:00.123', "
       "'2024-06-01 12:00:00+02', '{\"a\": [1, 2]}', '{\"k\" : 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', "
       "'{1,2,NULL}', '1 day 02:00:00'),"
       "(2, NULL, NULL, '', '', NULL, -0.10, 'NaN', 'Infinity', false, '0001-01-01', '00:00:00', '0001-01-01 00:00:00', "
       "'9999-12-31 23:59:59.999999+00', 'null', '[]', NULL, '', '{}', '-3 mons'),"
       "(3, -32768, 2147483647, E'tab\\there\\nnew \\\\ back', 'ünï€😀', 'x', 0, '-Infinity', -1e308, NULL, NULL, NULL, NULL, "
       "NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
       "(4, 7, 7, NULL, NULL, '    ', 99999.99, 3.4e38, 5e-324, true, '2000-01-01', '12:00:00.000001', '1970-01-01 00:00:00.001', "
       "'1970-01-01 00:00:00+00', '{\"z\": \"\\u00e9\"}', '{\"dup\": 1, \"dup\": 2}', '00000000-0000-0000-0000-000000000000', "
       "'\\x5c0a09', '{-1}', '0');");
}

std::string manifest(const std::string& src, const std::string& dst, const std::string& source_extra,
                     const std::string& strategy, const std::string& sink_extra, const std::string& state_path) {
  return fmt::format(
      "kind: dpone.batch.v1\n"
      "streams:\n"
      "  - name: t\n"
      "    source: {{connector: postgres, connection: pg, schema: {}, table: t{}}}\n"
      "    sink: {{connector: postgres, connection: pg, schema: {}, table: t{}, strategy: {}}}\n"
      "    state: {{type: sqlite, path: {}}}\n",
      src, source_extra, dst, sink_extra, strategy, state_path);
}

std::string dump(const std::string& schema) {
  return psql("SELECT * FROM " + schema + ".t ORDER BY id;");
}

json last_record(const fs::path& dir, const std::string& m) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", m, "--format", "json"}, pg_env());
  EXPECT_EQ(r.exit_code, 0) << r.all();
  return r.exit_code == 0 ? json::parse(r.out)["streams"][0] : json::object();
}

// Runs the internal-query stream (iq/internal.yaml) and its COPY twin (copy/copy.yaml) and checks
// the targets are identical, that the first took the internal path and the second not.
void run_both(const fs::path& dir, const PgSchema& internal_dst, const PgSchema& copy_dst) {
  auto env = pg_env();
  Result a = run_dpone(dir / "iq", {"run", "internal.yaml"}, env);
  ASSERT_EQ(a.exit_code, 0) << a.all();
  Result b = run_dpone(dir / "copy", {"run", "copy.yaml"}, env);
  ASSERT_EQ(b.exit_code, 0) << b.all();
  json ra = last_record(dir / "iq", "internal.yaml"), rb = last_record(dir / "copy", "copy.yaml");
  EXPECT_EQ(ra["status"], rb["status"]);
  if (ra["status"] == "succeeded") {
    EXPECT_EQ(ra["artifact"]["sink_receives"], "internal_query") << ra["artifact"].dump(2);
    EXPECT_EQ(ra["stage_details"]["format"], "internal_query") << ra.dump(2);
    EXPECT_EQ(ra["stage_details"]["rows_through_client"], 0);
    EXPECT_EQ(ra.value("bytes", -1), 0);
    EXPECT_NE(rb["artifact"]["sink_receives"], "internal_query");
    EXPECT_EQ(ra["rows"]["staged"], rb["rows"]["staged"]);
    EXPECT_EQ(ra["rows"]["inserted"], rb["rows"]["inserted"]);
    EXPECT_EQ(ra["rows"]["updated"], rb["rows"]["updated"]);
  }
  EXPECT_EQ(dump(internal_dst.name()), dump(copy_dst.name()));
}

TEST(PgInternalQuery, FullRefreshGivesTheCopyPathsTarget) {
  REQUIRE_PG();
  PgSchema src, dst_iq, dst_copy;
  create_source(src.name());
  Scratch dir;
  const std::string strategy = "{mode: full_refresh, allow_shrink: true}";
  write_file(dir / "iq" / "internal.yaml", manifest(src.name(), dst_iq.name(), "", strategy, "", ".dpone/iq.db"));
  write_file(dir / "copy" / "copy.yaml", manifest(src.name(), dst_copy.name(), "", strategy, ", internal_query: false", ".dpone/copy.db"));
  run_both(dir.dir(), dst_iq, dst_copy);
  EXPECT_EQ(psql("SELECT count(*) FROM " + dst_iq.name() + ".t;"), "4\n");
  // A second full refresh (the target exists now: the exchange or truncate path).
  psql("DELETE FROM " + src.name() + ".t WHERE id = 2; UPDATE " + src.name() + ".t SET name = 'changed' WHERE id = 1;");
  // The exchanged target keeps the indexes built after the load, on both paths.
  const std::string indexes = "SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname = '";
  const std::string iq_before = psql(indexes + dst_iq.name() + "';");
  EXPECT_NE(iq_before.find("CREATE UNIQUE INDEX t_pkey ON"), std::string::npos) << iq_before;
  run_both(dir.dir(), dst_iq, dst_copy);
  EXPECT_EQ(psql("SELECT name FROM " + dst_iq.name() + ".t WHERE id = 1;"), "changed\n");
  EXPECT_EQ(psql("SELECT count(*) FROM " + dst_iq.name() + ".t;"), "3\n");
  EXPECT_EQ(psql(indexes + dst_iq.name() + "';"), iq_before);
  EXPECT_EQ(psql("SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid = '" + dst_iq.name() + ".t'::regclass;"), "1\n");
}

TEST(PgInternalQuery, MergeWithCursorIncrementsGivesTheCopyPathsTarget) {
  REQUIRE_PG();
  PgSchema src, dst_iq, dst_copy;
  create_source(src.name());
  Scratch dir;
  const std::string strategy = "{mode: merge, unique_key: [id]}";
  write_file(dir / "iq" / "internal.yaml", manifest(src.name(), dst_iq.name(), ", cursor: id", strategy, "", ".dpone/iq.db"));
  write_file(dir / "copy" / "copy.yaml",
             manifest(src.name(), dst_copy.name(), ", cursor: id", strategy, ", internal_query: false", ".dpone/copy.db"));
  run_both(dir.dir(), dst_iq, dst_copy);
  psql("INSERT INTO " + src.name() + ".t (id, name, amount, tz) VALUES (5, 'five', 5.55, now()), (6, E'six\\\\', NULL, NULL);");
  run_both(dir.dir(), dst_iq, dst_copy);
  EXPECT_EQ(last_record(dir / "iq", "internal.yaml")["rows"]["staged"], 2);
  run_both(dir.dir(), dst_iq, dst_copy);  // no new data
  EXPECT_EQ(last_record(dir / "iq", "internal.yaml")["status"], "no_new_data");
  EXPECT_EQ(psql("SELECT id, name, amount FROM " + dst_iq.name() + ".t ORDER BY id;"),
            psql("SELECT id, name, amount FROM " + src.name() + ".t ORDER BY id;"));
}

TEST(PgInternalQuery, XminIncrementsReadTheWindowsSnapshot) {
  REQUIRE_PG();
  PgSchema src, dst_iq, dst_copy;
  create_source(src.name());
  Scratch dir;
  const std::string strategy = "{mode: merge, unique_key: [id]}";
  write_file(dir / "iq" / "internal.yaml", manifest(src.name(), dst_iq.name(), ", incremental: xmin", strategy, "", ".dpone/iq.db"));
  write_file(dir / "copy" / "copy.yaml",
             manifest(src.name(), dst_copy.name(), ", incremental: xmin", strategy, ", internal_query: false", ".dpone/copy.db"));
  run_both(dir.dir(), dst_iq, dst_copy);
  EXPECT_EQ(last_record(dir / "iq", "internal.yaml")["stage_details"]["snapshot"], true);
  psql("UPDATE " + src.name() + ".t SET name = 'upd' WHERE id = 3; INSERT INTO " + src.name() +
       ".t (id, name) VALUES (7, 'seven');");
  run_both(dir.dir(), dst_iq, dst_copy);
  EXPECT_EQ(last_record(dir / "iq", "internal.yaml")["rows"]["staged"], 2);
  EXPECT_EQ(psql("SELECT id, name, amount FROM " + dst_iq.name() + ".t ORDER BY id;"),
            psql("SELECT id, name, amount FROM " + src.name() + ".t ORDER BY id;"));
}

TEST(PgInternalQuery, PlanNamesThePathAndWhy) {
  REQUIRE_PG();
  PgSchema src, dst;
  create_source(src.name());
  Scratch dir;
  write_file(dir / "m.yaml", manifest(src.name(), dst.name(), "", "{mode: full_refresh}", "", ".dpone/s.db"));
  Result plan = run_dpone(dir.dir(), {"plan", "m.yaml"}, pg_env());
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  EXPECT_NE(plan.out.find("artifact: internal_query (source and sink are the same "
                          "PostgreSQL database "),
            std::string::npos)
      << plan.out;
  // Opted out on the source side: COPY, and the plan says why.
  write_file(dir / "m.yaml", manifest(src.name(), dst.name(), ", internal_query: false", "{mode: full_refresh}", "",
                                      ".dpone/s.db"));
  Result plan2 = run_dpone(dir.dir(), {"plan", "m.yaml", "--format", "json"}, pg_env());
  ASSERT_EQ(plan2.exit_code, 0) << plan2.all();
  json a = json::parse(plan2.out)["streams"][0]["artifact"];
  EXPECT_NE(a["sink_receives"], "internal_query") << a.dump(2);
}

// row_count (and typed_hash) gates count the rows as they pass through dpone; with the
// internal query none would pass, so the runtime takes the COPY path and says why.
TEST(PgInternalQuery, RowCountGateTakesTheCopyPath) {
  REQUIRE_PG();
  PgSchema src, dst;
  create_source(src.name());
  Scratch dir;
  write_file(dir / "m.yaml",
             manifest(src.name(), dst.name(), "", "{mode: full_refresh}", "", ".dpone/s.db") +
                 "    quality:\n      - {type: row_count}\n");
  Result plan = run_dpone(dir.dir(), {"plan", "m.yaml", "--format", "json"}, pg_env());
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  json a = json::parse(plan.out)["streams"][0]["artifact"];
  EXPECT_NE(a["sink_receives"], "internal_query");
  EXPECT_NE(a["reason"].get<std::string>().find("internal_query not used: gate row_count"), std::string::npos)
      << a.dump(2);
  Result run = run_dpone(dir.dir(), {"run", "m.yaml"}, pg_env());
  ASSERT_EQ(run.exit_code, 0) << run.all();
  json rec = last_record(dir.dir(), "m.yaml");
  ASSERT_EQ(rec["gates"].size(), 1u) << rec.dump(2);
  EXPECT_TRUE(rec["gates"][0]["passed"].get<bool>()) << rec["gates"].dump(2);
  EXPECT_NE(rec["artifact"]["sink_receives"], "internal_query");
  EXPECT_EQ(psql("SELECT count(*) FROM " + dst.name() + ".t;"), "4\n");
}

}  // namespace
