// PostgreSQL -> ClickHouse through pg_copy_binary (the sink renders the binary COPY
// stream as the server's text, src/connectors/clickhouse/ch_pg_copy.hpp) against the
// pg_copy_text path (sink option `pg_copy_format: text`): a table with every PostgreSQL
// type the clickhouse sink loads, edge values included, must land byte-identical, and
// each run record (and `dpone run-report`) must name the artifact path it took.
// Needs DPONE_TEST_PG_DSN and DPONE_TEST_CH_URL (scripts/services.sh start postgres
// clickhouse); fails without them when CI=true or DPONE_REQUIRE_SERVICES=1.
#include <cstdio>

#include "ch_support.hpp"
#include "harness.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;
using namespace e2e::clickhouse;
using json = nlohmann::json;

// The artifact the run took, from its run record.
std::string artifact_of(const fs::path& dir) {
  std::string taken;
  for (const auto& e : fs::recursive_directory_iterator(dir / ".dpone" / "runs")) {
    if (e.path().filename() != "run.json") continue;
    json rec = json::parse(read_file(e.path()));
    for (const auto& s : rec.value("streams", json::array()))
      if (s.contains("artifact")) taken = s["artifact"].value("sink_receives", "");
  }
  return taken;
}

TEST(PgClickHouseBinary, BinaryPathLoadsExactlyWhatTheTextPathLoads) {
  REQUIRE_PG();
  REQUIRE_CH();
  PgSchema schema("dpone_e2e_chbin_");
  const std::string t = schema.name() + ".src";
  std::string setup = psql(
      "CREATE TABLE " + t +
      " (id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real, "
      "f8 double precision, n numeric(12,2), nu numeric, t text, vc varchar(20), ch char(5), "
      "d date, tm time, tmz timetz, ts0 timestamp(0), ts6 timestamp(6), tz0 timestamptz(0), "
      "tz3 timestamptz(3), u uuid, j json, jb jsonb, by bytea, iv interval, mo money, "
      "ip inet, cd cidr, mac macaddr);"
      "INSERT INTO " +
      t +
      " VALUES "
      "(1, true, -32768, -2147483648, -9223372036854775808, 1.1, 0.1, -9999999999.99, "
      "'NaN', E'tab\\there\\nnew \\\\ Zoë 日本 \\r', 'varchar', 'ab', '1970-01-01', "
      "'00:00:00', '12:34:56.789-05:30', '1970-01-01 00:00:00', '1999-12-31 23:59:59.999999', "
      "'2026-11-01 10:00:00+02', '2105-12-31 23:59:59.999+00', "
      "'00000000-0000-0000-0000-000000000000', '{\"a\": [1, \"x\\ty\"]}', "
      "'{\"k\": \"v\\\\n\", \"n\": 1.50}', '\\x00ff5c090a'::bytea, "
      "'1 year 2 mons -3 days 04:05:06.7', '-1234567.89', '192.168.1.2/24', '10.0.0.0/8', "
      "'08:00:2b:01:02:03'),"
      "(2, false, 32767, 2147483647, 9223372036854775807, -3.4028235e38, 1.7976931348623157e308, "
      "0, '123456789012345678901234567890.000000000001', '', '', '', '2105-12-31', '24:00:00', "
      "'00:00+00', '2105-12-31 23:59:59', '1970-01-01 00:00:00.000001', "
      "'1970-01-01 00:00:00+00', '2000-01-01 00:00:00.5+00', "
      "'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"\\u00e9\"', 'null', '', '0', '0', '::1', "
      "'2001:db8::/32', 'ff:ff:ff:ff:ff:ff'),"
      "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
      "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
      "(4, true, 0, 0, 0, 'Infinity', '-Infinity', 0.01, '-0.5', E'back\\\\slash', 'x', 'abcde', "
      "'2000-02-29', '23:59:59.999999', '23:59:59+14', '2000-02-29 12:00:00', "
      "'2038-01-19 03:14:08', '2038-01-19 03:14:08+00', '1984-06-07 08:09:10.123+00', "
      "'12345678-9abc-def0-1234-56789abcdef0', '[]', '[1, 2.5, {\"z\": null}]', "
      "'\\x'::bytea, '-178000000 years', '92233720368547758.07', '::ffff:1.2.3.4', "
      "'0.0.0.0/0', '00:00:00:00:00:00');"
      "INSERT INTO " +
      t +
      " SELECT i, i % 2 = 0, (i % 30000)::smallint, i * 7, i::bigint * 1000000007, (i * "
      "1.37)::real, "
      "i / 7.0, (i * 1.01)::numeric(12,2), i::numeric / 3, md5(i::text), left(md5(i::text), 20), "
      "left(md5(i::text), 3), date '1970-01-01' + i % 40000, time '00:00' + i * interval '1.1 s', "
      "(time '00:00' + i * interval '1 s')::timetz, timestamp '1970-01-01' + i * interval '1 h', "
      "timestamp '1970-01-01' + i * interval '1.000001 s', "
      "timestamptz '1970-01-01' + i * interval '1 h', timestamptz '1970-01-01' + i * interval "
      "'1.001 s', md5(i::text)::uuid, json_build_object('i', i), jsonb_build_object('i', i, "
      "'s', md5(i::text)), decode(md5(i::text), 'hex'), i * interval '1.5 min', "
      "(i * 1.25)::numeric::money, ('10.0.' || (i % 256) || '.1')::inet, "
      "('10.' || (i % 256) || '.0.0/16')::cidr, '08:00:2b:01:02:03'::macaddr "
      "FROM generate_series(5, 3000) i;");
  ASSERT_EQ(setup, "") << setup;

  std::random_device rd;
  const std::string db = "dpone_e2e_chbin_" + std::to_string(rd() % 1000000000);
  ASSERT_EQ(chq("CREATE DATABASE " + db), "");
  auto env = pg_env({{"DPONE_CONN_CH_TYPE", "clickhouse"},
                     {"DPONE_CONN_CH_URL", ch_url()},
                     {"DPONE_CONN_CH_DATABASE", db}});
  auto manifest = [&](const std::string& table, const std::string& extra) {
    return "kind: dpone.batch.v1\nstreams:\n  - name: pgch\n"
           "    source: {connector: postgres, connection: pg, schema: " +
           schema.name() +
           ", table: src}\n"
           "    sink: {connector: clickhouse, connection: ch, table: " +
           table + extra + ", subsecond_timestamps: string, strategy: {mode: full_refresh}}\n";
  };
  Scratch scratch;  // one directory per test: a project each for the two runs
  const fs::path bin = scratch / "bin", text = scratch / "text";
  fs::create_directories(bin);
  fs::create_directories(text);
  write_file(bin / "dpone.yaml", manifest("dst_bin", ""));
  write_file(text / "dpone.yaml", manifest("dst_text", ", pg_copy_format: text"));
  Result rb = run_dpone(bin, {"run", "dpone.yaml"}, env);
  Result rt = run_dpone(text, {"run", "dpone.yaml"}, env);
  EXPECT_EQ(rb.exit_code, 0) << rb.all();
  EXPECT_EQ(rt.exit_code, 0) << rt.all();
  if (rb.exit_code == 0 && rt.exit_code == 0) {
    EXPECT_EQ(artifact_of(bin), "streaming_rows/pg_copy_binary");
    EXPECT_EQ(artifact_of(text), "streaming_rows/pg_copy_text");
    Result report = run_dpone(bin, {"run-report", "--last", "-m", "dpone.yaml"}, env);
    EXPECT_NE(report.out.find("pg_copy_binary"), std::string::npos) << report.all();

    auto dump = [&](const std::string& table) {
      return chq("SELECT * FROM " + db + "." + table + " ORDER BY id FORMAT TabSeparated");
    };
    auto columns = [&](const std::string& table) {
      return chq("SELECT name, type, comment FROM system.columns WHERE database = '" + db +
                 "' AND table = '" + table + "' ORDER BY position FORMAT TabSeparated");
    };
    const std::string want = dump("dst_text");
    EXPECT_EQ(chq("SELECT count() FROM " + db + ".dst_text"), "3000\n");
    EXPECT_NE(want.find("tab\\there\\nnew \\\\ Zoë 日本 \\r"), std::string::npos)
        << want.substr(0, 2000);
    EXPECT_EQ(columns("dst_bin"), columns("dst_text"));
    std::string got = dump("dst_bin");
    if (got != want) {
      size_t at = 0;
      while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
      size_t line = want.rfind('\n', at);
      line = line == std::string::npos ? 0 : line + 1;
      ADD_FAILURE() << "first difference at byte " << at
                    << "\n text:   " << want.substr(line, want.find('\n', at) - line)
                    << "\n binary: " << got.substr(line, got.find('\n', at) - line);
    }
  }
  chq("DROP DATABASE IF EXISTS " + db);
}

}  // namespace
