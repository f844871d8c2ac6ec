// End-to-end: the postgres state store (`state: {type: postgres, ...}`) through the real
// binary, against the PostgreSQL of scripts/services.sh (DPONE_TEST_PG_DSN).
//   - three incremental runs, `dpone state show|list|history|set|reset`, plan and doctor
//     naming the store;
//   - the store is the sink's own database, so state commits in the promotion
//     transaction: a kill at every failpoint leaves target and state consistent (both
//     or neither) and a re-run ends exact, with no `recover` in the history.
#include <csignal>

#include <fmt/format.h>

#include "core/util/failpoint.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

struct Schemas {
  PgSchema src{"dpone_pgs_src_"}, dst{"dpone_pgs_dst_"}, state{"dpone_pgs_st_"};
};

// orders(id, name, amount) in the source schema, merge by id into the target schema,
// cursor on id; `sink_extra` is added to the sink map (e.g. internal_query: false).
void write_manifest(const fs::path& dir, const Schemas& s, const std::string& sink_extra = "") {
  write_file(dir / "manifest.yaml",
             fmt::format("kind: dpone.batch.v1\n"
                         "streams:\n"
                         "  - name: orders\n"
                         "    source: {{connector: postgres, connection: pg, schema: {}, table: orders, cursor: id}}\n"
                         "    sink: {{connector: postgres, connection: pg, schema: {}, table: orders{},\n"
                         "           strategy: {{mode: merge, unique_key: [id]}}}}\n"
                         "    state: {{type: postgres, connection: pg, schema: {}}}\n",
                         s.src.name(), s.dst.name(), sink_extra, s.state.name()));
}

void add_rows(const Schemas& s, int from, int to) {
  psql(fmt::format("INSERT INTO {}.orders SELECT g, 'order ' || g || E'\\t€', g * 1.25 FROM "
                   "generate_series({}, {}) g;",
                   s.src.name(), from, to));
}

std::string rows_of(const std::string& schema) {
  return psql("SELECT * FROM " + schema + ".orders ORDER BY id;");
}

// "<revision>,<cursor>" of the stream in the state table, or "" when none.
std::string stored_state(const Schemas& s) {
  return psql("SELECT revision || ',' || coalesce(position->>'cursor', 'null') FROM " + s.state.name() +
              ".state WHERE stream = 'orders';");
}

json state_history(const fs::path& dir) {
  Result r = run_dpone(dir, {"state", "history", "orders", "-m", "manifest.yaml", "--format", "json"}, pg_env());
  EXPECT_EQ(r.exit_code, 0) << r.all();
  return r.exit_code == 0 ? json::parse(r.out) : json::array();
}

json last_record(const fs::path& dir) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"}, pg_env());
  EXPECT_EQ(r.exit_code, 0) << r.all();
  return r.exit_code == 0 ? json::parse(r.out) : json::object();
}

void setup_source(const Schemas& s) {
  psql("CREATE TABLE " + s.src.name() + ".orders (id bigint PRIMARY KEY, name text, amount numeric(12,2));");
}

class PgState : public ::testing::TestWithParam<bool> {};  // param: internal query allowed

TEST_P(PgState, ThreeIncrementalRunsKeepTheirStateInPostgres) {
  REQUIRE_PG();
  const bool internal = GetParam();
  auto env = pg_env();
  Schemas s;
  setup_source(s);
  Scratch dir;
  write_manifest(dir.dir(), s, internal ? "" : ", internal_query: false");
  const std::string store = "postgres:pg/" + s.state.name() + ".state";

  // Read commands never create the store.
  Result show0 = run_dpone(dir.dir(), {"state", "show", "orders", "-m", "manifest.yaml", "--format", "json"}, env);
  ASSERT_EQ(show0.exit_code, 0) << show0.all();
  EXPECT_EQ(json::parse(show0.out)["revision"], 0);
  EXPECT_EQ(psql("SELECT to_regclass('" + s.state.name() + ".state') IS NULL;"), "t\n");
  Result plan = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, env);
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  EXPECT_NE(plan.out.find(store), std::string::npos) << plan.out;

  add_rows(s, 1, 10);
  Result r1 = run_dpone(dir.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(r1.exit_code, 0) << r1.all();
  EXPECT_EQ(stored_state(s), "1,10\n");
  json rec = last_record(dir.dir())["streams"][0];
  EXPECT_EQ(rec["state_store"], store);
  EXPECT_EQ(rec["promotion"]["state_committed"], true) << rec.dump(2);
  EXPECT_NE(rec.value("state_commit", "").find("with the data"), std::string::npos) << rec.dump(2);
  EXPECT_EQ(rec["artifact"]["sink_receives"], internal ? "internal_query" : "streaming_rows/pg_copy_binary");

  add_rows(s, 11, 15);
  Result r2 = run_dpone(dir.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  Result r3 = run_dpone(dir.dir(), {"run", "manifest.yaml"}, env);  // nothing new
  ASSERT_EQ(r3.exit_code, 0) << r3.all();
  EXPECT_EQ(last_record(dir.dir())["streams"][0]["status"], "no_new_data");
  EXPECT_EQ(rows_of(s.dst.name()), rows_of(s.src.name()));
  EXPECT_EQ(stored_state(s), "2,15\n");

  Result show = run_dpone(dir.dir(), {"state", "show", "orders", "-m", "manifest.yaml"}, env);
  ASSERT_EQ(show.exit_code, 0) << show.all();
  EXPECT_NE(show.out.find("store:      " + store), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("revision:   2"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("\"cursor\": 15"), std::string::npos) << show.out;
  Result list = run_dpone(dir.dir(), {"state", "list", "-m", "manifest.yaml", "--format", "json"}, env);
  ASSERT_EQ(list.exit_code, 0) << list.all();
  json l = json::parse(list.out);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["store"], store);
  EXPECT_EQ(l[0]["position"]["cursor"], json(15));
  EXPECT_TRUE(l[0]["position"]["snapshot"].is_string()) << l[0].dump();  // late commits (issue 27)

  // set: the next run re-reads (12, 15]; merge keeps the target exact.
  Result set = run_dpone(dir.dir(), {"state", "set", "orders", "-m", "manifest.yaml", "--position", "{\"cursor\": 12}", "--yes"}, env);
  ASSERT_EQ(set.exit_code, 0) << set.all();
  EXPECT_EQ(stored_state(s), "3,12\n");
  ASSERT_EQ(run_dpone(dir.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  EXPECT_EQ(last_record(dir.dir())["streams"][0]["rows"]["staged"], 3);
  Result reset = run_dpone(dir.dir(), {"state", "reset", "orders", "-m", "manifest.yaml", "--yes"}, env);
  ASSERT_EQ(reset.exit_code, 0) << reset.all();
  EXPECT_EQ(stored_state(s), "5,null\n");
  ASSERT_EQ(run_dpone(dir.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  EXPECT_EQ(last_record(dir.dir())["streams"][0]["rows"]["staged"], 15);
  EXPECT_EQ(rows_of(s.dst.name()), rows_of(s.src.name()));
  std::vector<std::string> actions;
  for (const auto& h : state_history(dir.dir())) actions.push_back(h["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"commit", "commit", "set", "commit", "reset", "commit"}));

  Result doctor = run_dpone(dir.dir(), {"doctor", "manifest.yaml"}, env);
  EXPECT_NE(doctor.all().find(store), std::string::npos) << doctor.all();
}

INSTANTIATE_TEST_SUITE_P(CopyAndInternalQuery, PgState, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "internal_query" : "copy"; });

// Kill at each failpoint, then re-run: with state committed in the promotion transaction
// the target and the state always agree (day 1 and revision 1, or day 2 and revision 2),
// and the re-run ends with the exact target and the state at its last row.
struct Kill {
  std::string failpoint;
  bool internal;
};
void PrintTo(const Kill& k, std::ostream* os) { *os << k.failpoint << (k.internal ? " internal" : " copy"); }
class PgStateKill : public ::testing::TestWithParam<Kill> {};

TEST_P(PgStateKill, TargetAndStateStayTogether) {
  REQUIRE_PG();
  const auto& [point, internal] = GetParam();
  auto env = pg_env();
  Schemas s;
  setup_source(s);
  Scratch dir;
  write_manifest(dir.dir(), s, internal ? "" : ", internal_query: false");
  add_rows(s, 1, 20);
  ASSERT_EQ(run_dpone(dir.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  const std::string day1 = rows_of(s.dst.name());
  add_rows(s, 21, 30);
  const std::string day2 = rows_of(s.src.name());
  Result crash = run_dpone(dir.dir(), {"run", "manifest.yaml", "--batch-rows", "4"},
                           with(env, {{"DPONE_FAILPOINTS", point + "=kill"}}));
  ASSERT_EQ(crash.signal, SIGKILL) << "not killed at " << point << ":\n" << crash.all();
  const std::string target = rows_of(s.dst.name());
  const std::string state = stored_state(s);
  EXPECT_TRUE((target == day1 && state == "1,20\n") || (target == day2 && state == "2,30\n"))
      << "target and state disagree after a kill at " << point << ": state " << state << "target:\n" << target;
  Result rerun = run_dpone(dir.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_EQ(rows_of(s.dst.name()), day2);
  EXPECT_EQ(stored_state(s), "2,30\n");
  for (const auto& h : state_history(dir.dir())) EXPECT_EQ(h["action"], "commit") << h.dump();
  EXPECT_EQ(psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" + s.dst.name() +
                 "' AND tablename LIKE '%dpone_stg%';"),
            "0\n");
}

std::vector<Kill> kills() {
  std::vector<Kill> out;
  for (bool internal : {true, false})
    for (auto fp : dpone::kFailpoints) out.push_back({std::string(fp), internal});
  return out;
}

INSTANTIATE_TEST_SUITE_P(EveryFailpoint, PgStateKill, ::testing::ValuesIn(kills()), [](const auto& info) {
  return info.param.failpoint + (info.param.internal ? "_internal_query" : "_copy");
});

}  // namespace
