// End-to-end tests against the real ClickHouse started by scripts/services.sh
// (DPONE_TEST_CH_URL): the failpoint matrix with a ClickHouse sink (every strategy the
// manifest can name x every failpoint, killed and re-run), PostgreSQL -> ClickHouse through
// the pg_copy_text path, `dpone plan` on a ClickHouse target, the examples, and
// `dpone connectors certify clickhouse`.
#include <csignal>
#include <cstdio>
#include <random>

#include <fmt/format.h>

#include "ch_support.hpp"
#include "core/util/failpoint.hpp"
#include "harness.hpp"

namespace {

using namespace e2e;
using namespace e2e::clickhouse;
using json = nlohmann::json;

std::string dump_ch(const std::string& db, const std::string& table) {
  return chq("SELECT * FROM " + db + "." + table + " ORDER BY id FORMAT CSV");
}

std::string csv_rows(int from, int to, const std::string& tag) {
  std::string out;
  for (int i = from; i <= to; ++i)
    out += std::to_string(i) + ",item " + std::to_string(i) + " " + tag + "," + std::to_string(i) +
           ".50\n";
  return out;
}

void setup(const fs::path& dir, const std::string& mode) {
  std::string extra = mode == "merge" ? "\n        unique_key: [id]" : "";
  // replace: the slice is every row (day 2 replaces day 1); partition_replace: the
  // target is partitioned by tens of ids, so day 2 replaces the partitions it touches.
  if (mode == "replace") extra = "\n        where: \"id > 0\"";
  const std::string sink_extra =
      mode == "partition_replace" ? "      partition_by: \"intDiv(id, 10)\"\n" : "";
  bool full = mode == "full_refresh";
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: items\n"
             "    source:\n"
             "      connector: files\n"
             "      path: landing/*.csv\n"
             "      incremental: " +
                 std::string(full ? "full" : "new_files") +
                 "\n"
                 "      primary_key: [id]\n"
                 "      columns: {amount: \"decimal(10,2)\"}\n"
                 "    sink:\n"
                 "      connector: clickhouse\n"
                 "      connection: ch\n"
                 "      table: items\n" +
                 sink_extra +
                 "      strategy:\n"
                 "        mode: " +
                 mode + extra + "\n");
  write_file(dir / "landing" / (full ? "items.csv" : "day1.csv"),
             "id,name,amount\n" + csv_rows(1, 50, "v1"));
}

void add_day2(const fs::path& dir, const std::string& mode) {
  const std::string h = "id,name,amount\n";
  if (mode == "full_refresh")
    write_file(dir / "landing" / "items.csv", h + csv_rows(1, 30, "v1") + csv_rows(31, 80, "v2"));
  else if (mode == "append")
    write_file(dir / "landing" / "day2.csv", h + csv_rows(51, 80, "v2"));
  else
    write_file(dir / "landing" / "day2.csv", h + csv_rows(40, 80, "v2"));
}

struct Scenario {
  std::string strategy;
  std::string failpoint;
};
void PrintTo(const Scenario& s, std::ostream* os) {
  *os << s.strategy << " killed at " << s.failpoint;
}

class ChFailpointKill : public ::testing::TestWithParam<Scenario> {};

TEST_P(ChFailpointKill, RerunLeavesTargetExactlyRight) {
  REQUIRE_CH();
  const auto& [strategy, point] = GetParam();
  ChDatabase ref_db;
  Scratch ref;
  setup(ref.dir(), strategy);
  ASSERT_EQ(run_dpone(ref.dir(), {"run", "manifest.yaml"}, ch_env(ref_db.name())).exit_code, 0);
  add_day2(ref.dir(), strategy);
  Result r2 = run_dpone(ref.dir(), {"run", "manifest.yaml"}, ch_env(ref_db.name()));
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  std::string expected = dump_ch(ref_db.name(), "items");
  ASSERT_NE(expected.find("80,\"item 80 v2\",80.5"), std::string::npos) << expected;

  ChDatabase db;
  auto env = ch_env(db.name());
  Scratch s;
  setup(s.dir(), strategy);
  Result first = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(first.exit_code, 0) << first.all();
  std::string after_day1 = dump_ch(db.name(), "items");
  add_day2(s.dir(), strategy);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"},
                           with(env, {{"DPONE_FAILPOINTS", point + "=kill"}}));
  ASSERT_EQ(crash.signal, SIGKILL) << "not killed at " << point << ":\n" << crash.all();
  std::string after_crash = dump_ch(db.name(), "items");
  EXPECT_TRUE(after_crash == after_day1 || after_crash == expected)
      << "neither old nor new after kill at " << point << ":\n"
      << after_crash;
  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_EQ(dump_ch(db.name(), "items"), expected);
  std::string leftovers = chq("SELECT name FROM system.tables WHERE database = '" + db.name() +
                              "' AND name != 'items' AND name != 'items__dpone__loads' FORMAT TSV");
  EXPECT_EQ(leftovers, "") << "dpone tables left behind: " << leftovers;
  ASSERT_EQ(run_dpone(s.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  EXPECT_EQ(dump_ch(db.name(), "items"), expected);
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  for (std::string strategy : {"full_refresh", "append", "merge", "replace", "partition_replace"})
    for (auto fp : dpone::kFailpoints) out.push_back({strategy, std::string(fp)});
  return out;
}

INSTANTIATE_TEST_SUITE_P(ChAllStrategiesAllFailpoints, ChFailpointKill,
                         ::testing::ValuesIn(scenarios()), [](const auto& info) {
                           return info.param.strategy + "_" + info.param.failpoint;
                         });

// `dpone plan` shows the server version, the capabilities used and the SQL steps, and
// changes nothing.
TEST(ClickHouse, PlanShowsServerCapabilitiesAndSteps) {
  REQUIRE_CH();
  ChDatabase db;
  Scratch s;
  setup(s.dir(), "merge");
  auto env = ch_env(db.name());
  ASSERT_EQ(run_dpone(s.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  add_day2(s.dir(), "merge");
  std::string before = chq("SELECT name FROM system.tables WHERE database = '" + db.name() +
                           "' ORDER BY name FORMAT TSV") +
                       dump_ch(db.name(), "items");
  Result plan = run_dpone(s.dir(), {"plan", "manifest.yaml", "--format", "json"}, env);
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  std::string after = chq("SELECT name FROM system.tables WHERE database = '" + db.name() +
                          "' ORDER BY name FORMAT TSV") +
                      dump_ch(db.name(), "items");
  EXPECT_EQ(before, after) << "plan changed something";
  json p = json::parse(plan.out)["streams"][0];
  EXPECT_EQ(p["target"]["server"].get<std::string>().rfind("ClickHouse ", 0), 0u) << p.dump(2);
  EXPECT_NE(p["target"]["capabilities"].dump().find("RENAME"), std::string::npos) << p.dump(2);
  std::string steps = p["steps"].dump();
  EXPECT_NE(steps.find("ALTER TABLE"), std::string::npos) << steps;
  EXPECT_NE(steps.find("DELETE WHERE"), std::string::npos) << steps;
  // merge changes the live target: the intent, the DELETE, the INSERT ... SELECT.
  EXPECT_NE(steps.find("items__dpone_pending_"), std::string::npos) << steps;
  EXPECT_NE(steps.find("INSERT INTO `" + db.name() + "`.`items` (`id`, `name`, `amount`) SELECT"),
            std::string::npos)
      << steps;
  EXPECT_EQ(steps.find("RENAME TABLE `" + db.name() + "`.`items`"), std::string::npos) << steps;
}

// A sub-second timestamp fails the plan on 18.16 unless a policy is chosen.
TEST(ClickHouse, SubsecondTimestampsNeedAPolicy) {
  REQUIRE_CH();
  ChDatabase db;
  Scratch s;
  write_file(s / "in" / "a.csv", "id,at\n1,2026-11-01T10:00:00.25Z\n2,2026-11-01T10:00:01Z\n");
  auto manifest = [](const std::string& extra) {
    return "kind: dpone.batch.v1\nstreams:\n  - name: ts\n"
           "    source: {connector: files, path: in/*.csv, columns: {id: int64, at: "
           "\"timestamptz(6)\"}}\n"
           "    sink: {connector: clickhouse, connection: ch, table: ts, strategy: {mode: "
           "full_refresh}" +
           extra + "}\n";
  };
  write_file(s / "m.yaml", manifest(""));
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, ch_env(db.name()));
  if (std::stoi(chq("SELECT version()")) >= 20) {  // DateTime64: no policy needed
    ASSERT_EQ(r.exit_code, 0) << r.all();
    EXPECT_EQ(chq("SELECT id, at FROM " + db.name() + ".ts ORDER BY id FORMAT TSV"),
              "1\t2026-11-01 10:00:00.250000\n2\t2026-11-01 10:00:01.000000\n");
    return;
  }
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.all().find("subsecond_timestamps"), std::string::npos) << r.all();
  write_file(s / "m.yaml", manifest(", subsecond_timestamps: int64_micros"));
  r = run_dpone(s.dir(), {"run", "m.yaml"}, ch_env(db.name()));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(chq("SELECT id, at FROM " + db.name() + ".ts ORDER BY id FORMAT TSV"),
            "1\t1793527200250000\n2\t1793527201000000\n");
}

// PostgreSQL -> ClickHouse over a COPY stream transcoded on the fly: `path` is what the
// sink must receive (pg_copy_binary by default, pg_copy_text with `pg_copy_format: text`);
// both load the same values. (tests/e2e/pg_clickhouse_binary_test.cpp compares the two
// paths over every type.)
void postgres_to_clickhouse(const std::string& sink_extra, const std::string& path) {
  const char* dsn = std::getenv("DPONE_TEST_PG_DSN");
  if (!dsn) GTEST_SKIP() << "no PostgreSQL (DPONE_TEST_PG_DSN)";
  std::random_device rd;
  std::string schema = "dpone_e2e_ch_" + std::to_string(rd() % 1000000);
  auto psql = [&](const std::string& sql) {
    fs::path f =
        fs::temp_directory_path() / ("dpone_e2e_pgch_" + std::to_string(getpid()) + ".sql");
    write_file(f, sql);
    std::string out = shell("psql '" + std::string(dsn) + "' -X -q -v ON_ERROR_STOP=1 -f " +
                            f.string() + " 2>&1");
    fs::remove(f);
    return out;
  };
  ASSERT_EQ(psql("CREATE SCHEMA " + schema + "; CREATE TABLE " + schema +
                 ".src (id bigint PRIMARY KEY, flag boolean, raw bytea, at timestamptz(0), amount "
                 "numeric(12,2), "
                 "note text, doc jsonb);"
                 "INSERT INTO " +
                 schema +
                 ".src VALUES "
                 "(1, true, '\\x00ff'::bytea, '2026-11-01 10:00:00+02', 12.50, E'tab\\there\\nnew "
                 "\\\\ Zoë', '{\"a\": 1}'),"
                 "(2, false, '', '1970-01-02 00:00:00+00', -0.01, '', 'null'),"
                 "(3, NULL, NULL, NULL, NULL, NULL, NULL);"),
            "");
  std::map<std::string, std::string> env = ch_env("default");
  ChDatabase db;
  env["DPONE_CONN_CH_DATABASE"] = db.name();
  env["DPONE_CONN_PG_TYPE"] = "postgres";
  std::istringstream in(dsn);
  std::string kv;
  while (in >> kv) {
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    for (auto& c : k) c = static_cast<char>(toupper(c));
    env["DPONE_CONN_PG_" + k] = kv.substr(eq + 1);
  }
  Scratch s;
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\nstreams:\n  - name: pgch\n"
             "    source: {connector: postgres, connection: pg, schema: " +
                 schema +
                 ", table: src}\n"
                 "    sink: {connector: clickhouse, connection: ch, table: dst, strategy: {mode: "
                 "full_refresh}" +
                 sink_extra + "}\n");
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  psql("DROP SCHEMA " + schema + " CASCADE;");
  ASSERT_EQ(r.exit_code, 0) << r.all();
  std::string records;
  for (const auto& e : fs::recursive_directory_iterator(s / ".dpone" / "runs"))
    if (e.path().filename() == "run.json") records += read_file(e.path());
  EXPECT_NE(records.find("\"sink_receives\": \"streaming_rows/" + path + "\""), std::string::npos)
      << "not the " << path << " path: " << records;
  // amount in cents: servers from 21.9 print a Decimal without its trailing zeros
  EXPECT_EQ(chq("SELECT id, flag, hex(raw), at, toInt64(amount * 100), note, doc FROM " +
                db.name() + ".dst ORDER BY id FORMAT TSV"),
            "1\ttrue\t00FF\t2026-11-01 08:00:00\t1250\ttab\\there\\nnew \\\\ Zoë\t{\"a\": 1}\n"
            "2\tfalse\t\t1970-01-02 00:00:00\t-1\t\tnull\n"
            "3\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n");
}

TEST(ClickHouse, PostgresToClickHouseThroughCopyBinary) {
  REQUIRE_CH();
  postgres_to_clickhouse("", "pg_copy_binary");
}

TEST(ClickHouse, PostgresToClickHouseThroughCopyText) {
  REQUIRE_CH();
  postgres_to_clickhouse(", pg_copy_format: text", "pg_copy_text");
}

TEST(ClickHouse, CertifyPasses) {
  REQUIRE_CH();
  ChDatabase db;
  Scratch s;
  write_file(s / "connections.yaml",
             "connections:\n  cert_ch:\n    type: clickhouse\n    url: " + ch_url() +
                 "\n    database: " + db.name() +
                 "\n    subsecond_timestamps: string\n    date_storage: string\n");
  Result r = run_dpone(s.dir(), {"connectors", "certify", "clickhouse", "--connection", "cert_ch"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json cert = json::parse(read_file(s / "certification" / "clickhouse" / "certification.json"));
  EXPECT_EQ(cert["counts"]["fail"], 0) << cert.dump(2);
  EXPECT_GE(cert["counts"]["pass"], 7) << cert.dump(2);
}

}  // namespace
