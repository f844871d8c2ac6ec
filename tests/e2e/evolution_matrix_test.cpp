// Schema evolution matrix (issue 4, acceptance 1): every policy (strict, additive,
// widening) x every kind of change (new column, widening, narrowing, drop, rename, type
// change, nullable -> not null, not null -> nullable), on SQLite and, when
// DPONE_TEST_PG_DSN is set, PostgreSQL. Each case runs the real binary twice in a scratch
// folder: day 1 creates the target from a CSV with declared column types, day 2 changes
// the CSV's schema. Safe changes must be applied and the day-2 rows loaded (exact target
// contents and column types checked); unsafe ones must fail in the evolve phase naming the
// exact change, with the target (rows and column types) and the state unchanged. Also:
// on_type_change: new_column, apply: plan_only, and the decision + DDL in `plan` and in
// the run record.
#include <random>
#include <set>

#include <fmt/format.h>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// --- the matrix ----------------------------------------------------------------------

// One day's input: CSV text, declared column types, primary key.
struct Day {
  std::string csv;
  std::string columns;  // YAML flow map for source.columns
  std::string primary_key = "[id]";
};

// Day 1 is the same for every change but the narrowing and nullability ones.
const Day kDay1{"id,name,qty\n1,a,10\n2,b,20\n", "{qty: int32}"};

struct Change {
  std::string name;
  Day day1, day2;
  std::string text;  // the change exactly as the run names it
  // Policies under which it is applied (the others must refuse it).
  std::set<std::string> applied_under;
  // Target rows after a successful day 2 (ordered by id; NULL as \N), and its columns.
  std::string header;
  std::vector<std::string> rows;
};

const std::vector<Change>& changes() {
  static const std::vector<Change> all = {
      {"new_column",
       kDay1,
       {"id,name,qty,note\n3,c,30,hello\n4,d,40,\n", "{qty: int32}"},
       "add column note (string, nullable)",
       {"additive", "widening"},
       "id,name,qty,note",
       {"1,a,10,\\N", "2,b,20,\\N", "3,c,30,hello", "4,d,40,\\N"}},
      {"widening",
       kDay1,
       {"id,name,qty\n3,c,3000000000\n", "{qty: int64}"},
       "widen_type of column qty: int32 -> int64",
       {"widening"},
       "id,name,qty",
       {"1,a,10", "2,b,20", "3,c,3000000000"}},
      {"narrowing",
       {"id,name,qty\n1,a,10\n2,b,20\n", "{qty: int64}"},
       {"id,name,qty\n3,c,30\n", "{qty: int32}"},
       "narrow_type of column qty: int64 -> int32",
       {},
       "",
       {}},
      {"drop",
       kDay1,
       {"id,name\n3,c\n", "{}"},
       "column qty (int32, nullable) is in the target but not at the source",
       {},
       "",
       {}},
      {"rename",
       kDay1,
       {"id,name,quantity\n3,c,30\n", "{quantity: int32}"},
       "possible rename: qty -> quantity",
       {},
       "",
       {}},
      {"type_change",
       kDay1,
       {"id,name,qty\n3,c,lots\n", "{qty: string}"},
       "change_type of column qty: int32 -> string",
       {},
       "",
       {}},
      {"nullable_to_not_null",
       kDay1,
       {"id,name,qty\n3,c,30\n", "{qty: int32}", "[id, name]"},
       "make_not_null of column name: source is NOT NULL, target allows NULL",
       {},
       "",
       {}},
      {"not_null_to_nullable",
       {"id,name,qty\n1,a,10\n2,b,20\n", "{qty: int32}", "[id, name]"},
       {"id,name,qty\n3,c,30\n", "{qty: int32}"},
       "make_nullable of column name: source allows NULL, target column is NOT NULL",
       {},
       "",
       {}},
  };
  return all;
}

const std::vector<std::string> kPolicies = {"strict", "additive", "widening"};

// A target: SQLite file in the scratch folder, or a table in a private PostgreSQL schema.
class Target {
 public:
  Target(std::string sink, const Scratch& dir) : sink_(std::move(sink)), dir_(dir) {
    if (sink_ == "postgres") pg_.emplace("dpone_evo_");
  }
  std::string sink_yaml() const {
    if (sink_ == "sqlite")
      return "{connector: sqlite, path: target.db, table: t, strategy: {mode: append}}";
    return "{connector: postgres, connection: pg, schema: " + pg_->name() +
           ", table: t, strategy: {mode: append}}";
  }
  std::map<std::string, std::string> env() const {
    return sink_ == "postgres" ? pg_env() : std::map<std::string, std::string>{};
  }
  // Header line (column names) then rows ordered by id, NULL as \N.
  std::string rows() const {
    if (sink_ == "sqlite") return dump_table(dir_ / "target.db", "t", "id");
    std::string cols = psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
        "information_schema.columns "
        "WHERE table_schema = '" +
        pg_->name() + "' AND table_name = 't';");
    return cols + psql("SELECT * FROM " + pg_->name() + ".t ORDER BY id;");
  }
  // Column names, declared types and NOT NULL flags: a failed run must not change them.
  std::string shape() const {
    if (sink_ == "sqlite") {
      sqlite3* h = nullptr;
      std::string out;
      if (sqlite3_open_v2((dir_ / "target.db").c_str(), &h, SQLITE_OPEN_READONLY, nullptr) ==
          SQLITE_OK) {
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(
            h, "SELECT name, type, \"notnull\", pk FROM pragma_table_info('t') ORDER BY cid", -1,
            &st, nullptr);
        while (st && sqlite3_step(st) == SQLITE_ROW)
          out += fmt::format("{} {} {} {}\n",
                             reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                             reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                             sqlite3_column_int(st, 2), sqlite3_column_int(st, 3));
        sqlite3_finalize(st);
      }
      sqlite3_close(h);
      return out;
    }
    return psql(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE "
        "table_schema = '" +
        pg_->name() + "' AND table_name = 't' ORDER BY ordinal_position;");
  }
  // The declared type of one column as the catalog shows it.
  std::string type_of(const std::string& column) const {
    std::string s = shape();
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
      if (sink_ == "sqlite" && line.rfind(column + " ", 0) == 0)
        return line.substr(column.size() + 1,
                           line.find(' ', column.size() + 1) - column.size() - 1);
      if (sink_ == "postgres" && line.rfind(column + ",", 0) == 0)
        return line.substr(column.size() + 1,
                           line.find(',', column.size() + 1) - column.size() - 1);
    }
    return "<no column " + column + ">";
  }

 private:
  std::string sink_;
  const Scratch& dir_;
  std::optional<PgSchema> pg_;
};

void write_manifest(const Scratch& dir, const Target& target, const Day& day,
                    const std::string& evolution) {
  write_file(dir / "landing/data.csv", day.csv);
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: t\n"
             "    source: {connector: files, path: landing/data.csv, primary_key: " +
                 day.primary_key + ", columns: " + day.columns +
                 "}\n"
                 "    sink: " +
                 target.sink_yaml() +
                 "\n"
                 "    schema_evolution: " +
                 evolution + "\n");
}

std::string rows_text(const std::string& header, const std::vector<std::string>& rows) {
  std::string out = header + "\n";
  for (const auto& r : rows) out += r + "\n";
  return out;
}

// The stream's record of the last run.
json last_stream_record(const Scratch& dir, const Target& target) {
  Result r = run_dpone(
      dir.dir(), {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"}, target.env());
  if (r.exit_code != 0) return json{{"error", r.all()}};
  json rec = json::parse(r.out, nullptr, false);
  if (rec.is_discarded() || !rec.contains("streams") || rec["streams"].empty())
    return json{{"error", r.out}};
  return rec["streams"][0];
}

// `dpone state show` (with the target's connection variables).
json state_json(const Scratch& dir, const Target& target) {
  Result r = run_dpone(dir.dir(), {"state", "show", "t", "-m", "manifest.yaml", "--format", "json"},
                       target.env());
  if (r.exit_code != 0) return json{{"error", r.all()}};
  return json::parse(r.out, nullptr, false);
}

bool skip_sink(const std::string& sink) {
  return sink == "postgres" && pg_dsn().empty();
}

#define SKIP_OR_FAIL_WITHOUT_PG(sink)                                                             \
  do {                                                                                            \
    if (skip_sink(sink)) {                                                                        \
      if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))                             \
        FAIL() << "DPONE_TEST_PG_DSN is not set: start the services (scripts/services.sh start)"; \
      GTEST_SKIP() << "no PostgreSQL: set DPONE_TEST_PG_DSN (scripts/services.sh start)";         \
    }                                                                                             \
  } while (0)

// Day 1 loads two rows into a new target; returns false (after recording failures) if not.
void load_day1(const Scratch& dir, const Target& target, const Day& day,
               const std::string& evolution) {
  write_manifest(dir, target, day, evolution);
  Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
  ASSERT_EQ(r.exit_code, 0) << r.all();
  ASSERT_NE(r.all().find("t: loaded 2 rows"), std::string::npos) << r.all();
}

// The DDL (or, where the sink has none, the advice) the refusal of `change` must show
// (SPEC: unsafe changes fail "with the exact change and the DDL that would resolve it").
std::string expected_resolution(const std::string& change, const std::string& sink) {
  const bool pg = sink == "postgres";
  if (change == "new_column") return "ADD COLUMN \"note\"";
  if (change == "widening") return pg ? "ALTER COLUMN \"qty\" TYPE bigint" : "\"qty\" BIGINT";
  if (change == "narrowing") return pg ? "ALTER COLUMN \"qty\" TYPE integer" : "\"qty\" INTEGER";
  if (change == "drop") return "DROP COLUMN \"qty\"";
  if (change == "rename") return "RENAME COLUMN \"qty\" TO \"quantity\"";
  if (change == "type_change") return pg ? "ALTER COLUMN \"qty\" TYPE text" : "\"qty\" TEXT";
  if (change == "nullable_to_not_null")
    return pg ? "ALTER COLUMN \"name\" SET NOT NULL" : "rebuild the table";
  if (change == "not_null_to_nullable")
    return pg ? "ALTER COLUMN \"name\" DROP NOT NULL" : "rebuild the table";
  return "<no expectation for " + change + ">";
}

struct MatrixParam {
  std::string sink, change, policy;
  friend void PrintTo(const MatrixParam& p, std::ostream* os) {
    *os << p.sink << "/" << p.change << "/" << p.policy;
  }
};

class EvolutionMatrix : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(EvolutionMatrix, AppliesSafeRefusesUnsafe) {
  const auto& p = GetParam();
  SKIP_OR_FAIL_WITHOUT_PG(p.sink);
  const Change& change = *std::find_if(changes().begin(), changes().end(),
                                       [&](const Change& c) { return c.name == p.change; });
  Scratch dir;
  Target target(p.sink, dir);
  const std::string evolution = "{policy: " + p.policy + "}";
  ASSERT_NO_FATAL_FAILURE(load_day1(dir, target, change.day1, evolution));
  const std::string rows_before = target.rows();
  const std::string shape_before = target.shape();
  const json state_before = state_json(dir, target);
  ASSERT_EQ(state_before.value("revision", -1), 1) << state_before.dump();

  write_manifest(dir, target, change.day2, evolution);
  // The plan names the change and the decision before anything runs.
  Result plan = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, target.env());
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  EXPECT_NE(plan.out.find(change.text), std::string::npos) << plan.out;
  Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
  const bool applied = change.applied_under.count(p.policy) > 0;
  json rec = last_stream_record(dir, target);
  ASSERT_TRUE(rec.contains("schema")) << rec.dump(2);
  bool named = false;
  for (const auto& c : rec["schema"]["changes"]) {
    if (c.value("text", "") != change.text) continue;
    named = true;
    EXPECT_EQ(c.value("safe", !applied), applied) << c.dump();
  }
  EXPECT_TRUE(named) << "change '" << change.text
                     << "' not in the run record: " << rec["schema"].dump(2);
  if (applied) {
    EXPECT_NE(plan.out.find("policy " + p.policy + " -> apply"), std::string::npos) << plan.out;
    EXPECT_EQ(plan.out.find("[UNSAFE]"), std::string::npos) << plan.out;
    ASSERT_EQ(r.exit_code, 0) << r.all();
    EXPECT_EQ(rec.value("status", ""), "succeeded");
    EXPECT_EQ(rec["schema"].value("decision", ""), "apply");
    EXPECT_FALSE(rec["schema"]["ddl"].empty()) << rec["schema"].dump(2);
    EXPECT_EQ(target.rows(), rows_text(change.header, change.rows));
    EXPECT_EQ(state_json(dir, target).value("revision", -1), 2);
    if (p.change == "widening") {
      EXPECT_EQ(target.type_of("qty"), p.sink == "sqlite" ? "BIGINT" : "bigint");
    }
    // Day 2 again: the target now matches the source, nothing left to change.
    Result again = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, target.env());
    EXPECT_NE(again.out.find("policy " + p.policy + " -> no change"), std::string::npos)
        << again.out;
  } else {
    EXPECT_NE(plan.out.find(change.text + "  [UNSAFE]"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("policy " + p.policy + " -> fail"), std::string::npos) << plan.out;
    EXPECT_EQ(r.exit_code, 1) << r.all();
    EXPECT_NE(r.all().find("SCHEMA_UNSAFE_CHANGE"), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("policy '" + p.policy + "'"), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("  - " + change.text), std::string::npos) << r.all();
    EXPECT_NE(r.all().find("in phase evolve"), std::string::npos) << r.all();
    // The change is followed by what resolves it: the DDL, in the sink's dialect.
    const std::string all = r.all();
    const size_t at = all.find("  - " + change.text);
    const std::string after_change = at == std::string::npos ? std::string() : all.substr(at);
    EXPECT_NE(after_change.find("\n    resolve"), std::string::npos) << r.all();
    EXPECT_NE(after_change.find(expected_resolution(p.change, p.sink)), std::string::npos)
        << r.all();
    ASSERT_TRUE(rec["schema"].contains("resolutions")) << rec["schema"].dump(2);
    EXPECT_NE(rec["schema"]["resolutions"].dump().find(
                  json(expected_resolution(p.change, p.sink)).dump().substr(
                      1, json(expected_resolution(p.change, p.sink)).dump().size() - 2)),
              std::string::npos)
        << rec["schema"]["resolutions"].dump(2);
    EXPECT_EQ(rec["schema"].value("decision", ""), "fail");
    EXPECT_EQ(target.rows(), rows_before);
    EXPECT_EQ(target.shape(), shape_before);
    EXPECT_EQ(state_json(dir, target), state_before);
  }
}

std::vector<MatrixParam> matrix() {
  std::vector<MatrixParam> out;
  for (const char* sink : {"sqlite", "postgres"})
    for (const auto& c : changes())
      for (const auto& policy : kPolicies) out.push_back({sink, c.name, policy});
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, EvolutionMatrix, ::testing::ValuesIn(matrix()),
                         [](const ::testing::TestParamInfo<MatrixParam>& info) {
                           return info.param.sink + "_" + info.param.change + "_" +
                                  info.param.policy;
                         });

// --- on_type_change: new_column and apply: plan_only ----------------------------------

class EvolutionSink : public ::testing::TestWithParam<std::string> {};

TEST_P(EvolutionSink, TypeChangeRoutedToNewColumn) {
  SKIP_OR_FAIL_WITHOUT_PG(GetParam());
  for (const auto& policy : kPolicies) {
    SCOPED_TRACE(policy);
    Scratch dir;
    Target target(GetParam(), dir);
    const std::string evolution = "{policy: " + policy + ", on_type_change: new_column}";
    ASSERT_NO_FATAL_FAILURE(load_day1(dir, target, kDay1, evolution));
    const std::string rows_before = target.rows();
    write_manifest(dir, target, {"id,name,qty\n3,c,lots\n4,d,\n", "{qty: string}"}, evolution);
    Result plan = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, target.env());
    const std::string text =
        "add column __dpone__nc__qty (string, nullable) for the values of qty (on_type_change: "
        "new_column)";
    EXPECT_NE(plan.out.find(text), std::string::npos) << plan.out;
    Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
    json rec = last_stream_record(dir, target);
    if (policy == "strict") {
      // Strict: any drift fails, the new column included.
      EXPECT_EQ(r.exit_code, 1) << r.all();
      EXPECT_NE(r.all().find("  - " + text), std::string::npos) << r.all();
      EXPECT_EQ(target.rows(), rows_before);
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.all();
    EXPECT_EQ(
        rec["schema"]["routed"],
        json::parse(R"([{"column":"qty","to":"__dpone__nc__qty","detail":"int32 -> string"}])"))
        << rec["schema"].dump(2);
    // The target keeps qty (int32) for the old rows; the new values land in __dpone__nc__qty.
    EXPECT_EQ(target.rows(),
              rows_text("id,name,qty,__dpone__nc__qty",
                        {"1,a,10,\\N", "2,b,20,\\N", "3,c,\\N,lots", "4,d,\\N,\\N"}));
    EXPECT_EQ(target.type_of("qty"), GetParam() == "sqlite" ? "INTEGER" : "integer");
    // The next day keeps routing into the existing column, without DDL.
    write_manifest(dir, target, {"id,name,qty\n5,e,more\n", "{qty: string}"}, evolution);
    plan = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, target.env());
    EXPECT_EQ(plan.out.find("DDL:"), std::string::npos) << plan.out;
    r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
    ASSERT_EQ(r.exit_code, 0) << r.all();
    EXPECT_EQ(target.rows(),
              rows_text("id,name,qty,__dpone__nc__qty", {"1,a,10,\\N", "2,b,20,\\N", "3,c,\\N,lots",
                                                         "4,d,\\N,\\N", "5,e,\\N,more"}));
  }
}

TEST_P(EvolutionSink, PlanOnlyReportsWithoutChanging) {
  SKIP_OR_FAIL_WITHOUT_PG(GetParam());
  Scratch dir;
  Target target(GetParam(), dir);
  ASSERT_NO_FATAL_FAILURE(load_day1(dir, target, kDay1, "{policy: widening}"));
  const std::string rows_before = target.rows(), shape_before = target.shape();
  const json state_before = state_json(dir, target);
  write_manifest(dir, target, {"id,name,qty,note\n3,c,3000000000,x\n", "{qty: int64}"},
                 "{policy: widening, apply: plan_only}");
  Result plan = run_dpone(dir.dir(), {"plan", "manifest.yaml"}, target.env());
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  EXPECT_NE(plan.out.find("policy widening -> plan_only: not applied"), std::string::npos)
      << plan.out;
  EXPECT_NE(plan.out.find("widen_type of column qty: int32 -> int64"), std::string::npos)
      << plan.out;
  EXPECT_NE(plan.out.find("add column note (string, nullable)"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("DDL:      ALTER TABLE"), std::string::npos) << plan.out;
  Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find("plan_only"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("ADD COLUMN \"note\""), std::string::npos) << r.all();
  json rec = last_stream_record(dir, target);
  EXPECT_EQ(rec["schema"].value("decision", ""), "plan_only: not applied") << rec["schema"].dump(2);
  EXPECT_EQ(rec["schema"].value("apply", ""), "plan_only");
  EXPECT_GE(rec["schema"]["ddl"].size(), 2u) << rec["schema"].dump(2);
  EXPECT_EQ(target.rows(), rows_before);
  EXPECT_EQ(target.shape(), shape_before);
  EXPECT_EQ(state_json(dir, target), state_before);
  // The same DDL, applied: the widened and the new column, then the row.
  write_manifest(dir, target, {"id,name,qty,note\n3,c,3000000000,x\n", "{qty: int64}"},
                 "{policy: widening}");
  r = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target.env());
  ASSERT_EQ(r.exit_code, 0) << r.all();
  rec = last_stream_record(dir, target);
  EXPECT_EQ(rec["schema"].value("decision", ""), "apply");
  std::string ddl = rec["schema"]["ddl"].dump();
  EXPECT_NE(ddl.find("ADD COLUMN \\\"note\\\""), std::string::npos) << ddl;
  EXPECT_EQ(target.rows(),
            rows_text("id,name,qty,note", {"1,a,10,\\N", "2,b,20,\\N", "3,c,3000000000,x"}));
  EXPECT_EQ(target.type_of("qty"), GetParam() == "sqlite" ? "BIGINT" : "bigint");
}

INSTANTIATE_TEST_SUITE_P(Sinks, EvolutionSink, ::testing::Values("sqlite", "postgres"));

}  // namespace
