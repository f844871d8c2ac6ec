// Reconciliation SQL (core/connector/reconcile_sql) and its configuration
// (StrategySpec::for_stream): parsing and refusals, the guards' judgement, and the plans
// of snapshot_diff / scd2 / merge + key_snapshot executed on a real in-memory SQLite
// database with a minimal dialect, the resulting tables compared with literal rows.
#include "core/connector/reconcile_sql.hpp"

#include <sqlite3.h>

#include <stdexcept>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

json stream(const json& strategy, const json& extra = json::object()) {
  json cfg = {{"source", {{"connector", "files"}}},
              {"sink", {{"connector", "sqlite"}, {"strategy", strategy}}}};
  for (const auto& [k, v] : extra.items()) cfg[k] = v;
  return cfg;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(ReconcileConfig, SnapshotDiffAndScd2ImplyKeySnapshotWithSafeDefaults) {
  auto s = StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}));
  EXPECT_TRUE(s.reconciles());
  EXPECT_EQ(s.reconcile.delete_policy, DeletePolicy::SoftDelete);
  EXPECT_DOUBLE_EQ(s.reconcile.max_delete_ratio, 0.5);
  EXPECT_FALSE(s.reconcile.max_delete_rows.has_value());
  EXPECT_FALSE(s.reconcile.allow_empty_snapshot);
  EXPECT_TRUE(
      StrategySpec::for_stream(stream({{"mode", "scd2"}, {"unique_key", "id"}})).reconciles());
  // merge reconciles only when asked to.
  EXPECT_FALSE(
      StrategySpec::for_stream(stream({{"mode", "merge"}, {"unique_key", "id"}})).reconciles());
  auto m = StrategySpec::for_stream(
      stream({{"mode", "merge"}, {"unique_key", "id"}}, {{"reconciliation",
                                                          {{"mode", "key_snapshot"},
                                                           {"delete_policy", "hard_delete"},
                                                           {"max_delete_rows", 7},
                                                           {"max_delete_ratio", 0.25}}}}));
  EXPECT_TRUE(m.reconciles());
  EXPECT_EQ(m.reconcile.delete_policy, DeletePolicy::HardDelete);
  EXPECT_EQ(m.reconcile.max_delete_rows.value_or(-1), 7);
  EXPECT_DOUBLE_EQ(m.reconcile.max_delete_ratio, 0.25);
}

TEST(ReconcileConfig, RefusesWhatCannotBeReconciledSafely) {
  // An incremental read stages only its window: every other key would look deleted.
  json inc = stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}});
  inc["source"]["incremental"] = "cursor";
  EXPECT_EQ(code_of([&] { StrategySpec::for_stream(inc); }), ErrorCode::ConfigBadValue);
  EXPECT_NE(message_of([&] { StrategySpec::for_stream(inc); }).find("needs a full snapshot"),
            std::string::npos);
  json cursor = stream({{"mode", "merge"}, {"unique_key", "id"}},
                       {{"reconciliation", {{"mode", "key_snapshot"}}}});
  cursor["source"]["cursor"] = "updated_at";
  EXPECT_EQ(code_of([&] { StrategySpec::for_stream(cursor); }), ErrorCode::ConfigBadValue);
  // Without a key there is nothing to compare by.
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(stream({{"mode", "scd2"}}));
            }),
            ErrorCode::ConfigMissingKey);
  // Strategies reconciliation does not apply to.
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(
                  stream({{"mode", "append"}}, {{"reconciliation", {{"mode", "key_snapshot"}}}}));
            }),
            ErrorCode::ConfigBadValue);
  // scd2 always expires; a delete policy there would be silently meaningless.
  EXPECT_EQ(
      code_of([&] {
        StrategySpec::for_stream(stream({{"mode", "scd2"}, {"unique_key", "id"}},
                                        {{"reconciliation", {{"delete_policy", "hard_delete"}}}}));
      }),
      ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}},
                                              {{"reconciliation", {{"max_delete_ratio", 1.5}}}}));
            }),
            ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}},
                                              {{"reconciliation", {{"delete_policy", "purge"}}}}));
            }),
            ErrorCode::ConfigBadValue);
}

TEST(ReconcileConfig, SnapshotDiffTakesItsDeletePolicyInTheStrategyToo) {
  auto s = StrategySpec::for_stream(
      stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}, {"delete_policy", "hard_delete"}}));
  EXPECT_EQ(s.reconcile.delete_policy, DeletePolicy::HardDelete);
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(
                  stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}, {"delete_policy", "hard_delete"}},
                         {{"reconciliation", {{"delete_policy", "soft_delete"}}}}));
            }),
            ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(
                  stream({{"mode", "merge"}, {"unique_key", "id"}, {"delete_policy", "hard_delete"}}));
            }),
            ErrorCode::ConfigBadValue);
}

TEST(ReconcileConfig, LineagePresets) {
  auto all = StrategySpec::for_stream(stream({{"mode", "append"}}, {{"lineage", true}}));
  EXPECT_TRUE(all.lineage.run_id && all.lineage.loaded_at && all.lineage.row_hash);
  auto some = StrategySpec::for_stream(stream({{"mode", "append"}}, {{"lineage", {"run_id"}}}));
  EXPECT_TRUE(some.lineage.run_id);
  EXPECT_FALSE(some.lineage.loaded_at || some.lineage.row_hash);
  EXPECT_FALSE(StrategySpec::for_stream(stream({{"mode", "append"}})).lineage.any());
  EXPECT_EQ(code_of([&] {
              StrategySpec::for_stream(stream({{"mode", "append"}}, {{"lineage", {"offset"}}}));
            }),
            ErrorCode::ConfigBadValue);
}

TEST(ReconcileSql, SystemColumns) {
  EXPECT_TRUE(is_system_column("__dpone__deleted_at"));
  EXPECT_TRUE(is_system_column("__dpone__valid_from"));
  EXPECT_FALSE(is_system_column("__dpone__nc__qty"));  // holds source values
  EXPECT_FALSE(is_system_column("deleted_at"));
}

TEST(ReconcileGuards, JudgesRatioRowsAndEmptySnapshots) {
  auto spec = StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}));
  ReconcileCounts c;
  c.staged = 10;
  c.target_rows = 10;
  c.deleted = 5;  // exactly 50%: allowed
  EXPECT_TRUE(check_delete_guards(spec, c, "w", "t").value("passed", false));
  c.deleted = 6;
  EXPECT_EQ(code_of([&] { check_delete_guards(spec, c, "w", "t"); }), ErrorCode::GateFailed);
  spec.reconcile.max_delete_ratio = 1.0;
  spec.reconcile.max_delete_rows = 5;
  EXPECT_NE(message_of([&] { check_delete_guards(spec, c, "w", "t"); }).find("max_delete_rows (5)"),
            std::string::npos);
  spec.reconcile.max_delete_rows.reset();
  c.staged = 0;
  c.deleted = 10;
  EXPECT_NE(message_of([&] { check_delete_guards(spec, c, "w", "t"); }).find("empty"),
            std::string::npos);
  spec.reconcile.allow_empty_snapshot = true;
  EXPECT_TRUE(check_delete_guards(spec, c, "w", "t").value("passed", false));
  // Nothing to delete never trips a guard, even on an empty snapshot.
  spec.reconcile.allow_empty_snapshot = false;
  c.deleted = 0;
  EXPECT_TRUE(check_delete_guards(spec, c, "w", "t").value("passed", false));
}

// --- plans executed on SQLite ---------------------------------------------------------

class Db {
 public:
  Db() {
    sqlite3_open(":memory:", &db_);
    register_sqlite_reconcile_functions(db_);
  }
  ~Db() { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg + " in: " + sql);
    }
  }
  std::vector<std::string> rows(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    std::vector<std::string> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string line;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const auto* t = sqlite3_column_text(st, i);
        line += (i ? "," : "") + std::string(t ? reinterpret_cast<const char*>(t) : "\\N");
      }
      out.push_back(line);
    }
    sqlite3_finalize(st);
    return out;
  }
  std::set<std::string> columns(const std::string& table) {
    std::set<std::string> out;
    for (const auto& r : rows("SELECT name FROM pragma_table_info('" + table + "')")) out.insert(r);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

ReconcileDialect sqlite_dialect() {
  ReconcileDialect d;
  d.quote_ident = [](const std::string& n) { return "\"" + n + "\""; };
  d.value_text = [](const std::string& c, const LogicalType&) { return "quote(" + c + ")"; };
  d.hash_text = [](const std::string& t) { return "dpone_row_hash(" + t + ")"; };
  d.timestamp_literal = [](const std::string& iso) { return "'" + iso + "'"; };
  d.timestamp_type = "TEXT";
  d.bool_type = "INTEGER";
  d.text_type = "TEXT";
  d.true_literal = "1";
  d.false_literal = "0";
  return d;
}

struct Runner : ReconcileRunner {
  Db& db;
  explicit Runner(Db& d) : db(d) {}
  void exec(const std::string& sql) override { db.exec(sql); }
  int64_t count(const std::string& sql) override { return std::stoll(db.rows(sql).at(0)); }
};

// Loads `snapshot` ("(1,'a'),(2,'b')" or "" for none) as staging and reconciles it.
json load(Db& db, const StrategySpec& spec, const std::string& snapshot, const std::string& as_of) {
  db.exec("DROP TABLE IF EXISTS stg; CREATE TABLE stg (id INTEGER, name TEXT)");
  if (!snapshot.empty()) db.exec("INSERT INTO stg VALUES " + snapshot);
  ReconcileTables t{"\"t\"",
                    "\"stg\"",
                    {Column{"id", LogicalType::of(TypeId::Int64), false},
                     Column{"name", LogicalType::of(TypeId::String), true}},
                    db.columns("t"),
                    {}};
  ReconcilePlan plan = plan_reconcile(spec, t, sqlite_dialect(), "'" + as_of + "'");
  Runner runner(db);
  PromoteResult result;
  db.exec("BEGIN");
  try {
    std::function<void()> merge;
    if (spec.mode == StrategyMode::Merge)
      merge = [&] {
        db.exec(
            "INSERT INTO t (id, name) SELECT id, name FROM stg WHERE true ON CONFLICT (id) DO "
            "UPDATE "
            "SET name = excluded.name");
      };
    run_reconcile(plan, spec, runner, merge, "test", "t", as_of, result);
    db.exec("COMMIT");
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
  const auto& r = result.reconciliation;
  return json::array({r["inserted"], r["updated"], r["unchanged"], r["deleted"], r["reactivated"]});
}

TEST(ReconcileSql, Scd2OnSqliteKeepsHistory) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER, name TEXT)");
  auto spec = StrategySpec::for_stream(stream({{"mode", "scd2"}, {"unique_key", "id"}}));
  EXPECT_EQ(load(db, spec, "(1,'a'),(2,'b')", "T1"), json::parse("[2,0,0,0,0]"));
  EXPECT_EQ(load(db, spec, "(1,'a2')", "T2"), json::parse("[0,1,0,1,0]"));
  EXPECT_EQ(load(db, spec, "(1,'a2'),(2,'b')", "T3"), json::parse("[0,0,1,0,1]"));
  EXPECT_EQ(
      db.rows("SELECT id, name, __dpone__valid_from, __dpone__valid_to, __dpone__is_current FROM t "
              "ORDER BY "
              "id, __dpone__valid_from"),
      (std::vector<std::string>{"1,a,T1,T2,0", "1,a2,T2,\\N,1", "2,b,T1,T2,0", "2,b,T3,\\N,1"}));
}

TEST(ReconcileSql, SnapshotDiffSoftDeleteOnSqlite) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  auto spec = StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}},
                                              {{"reconciliation", {{"is_deleted_column", true}}}}));
  EXPECT_EQ(load(db, spec, "(1,'a'),(2,'b'),(3,'c')", "T1"), json::parse("[3,0,0,0,0]"));
  EXPECT_EQ(load(db, spec, "(1,'a'),(2,NULL)", "T2"),
            json::parse("[0,1,1,1,0]"));  // NULL is a change
  EXPECT_EQ(load(db, spec, "(1,'a'),(2,NULL),(3,'c')", "T3"), json::parse("[0,0,2,0,1]"));
  EXPECT_EQ(db.rows("SELECT id, name, __dpone__deleted_at, __dpone__is_deleted FROM t ORDER BY id"),
            (std::vector<std::string>{"1,a,\\N,0", "2,\\N,\\N,0", "3,c,\\N,0"}));
}

TEST(ReconcileSql, GuardBreachChangesNothing) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  auto spec =
      StrategySpec::for_stream(stream({{"mode", "merge"}, {"unique_key", "id"}},
                                      {{"reconciliation", {{"delete_policy", "hard_delete"}}}}));
  load(db, spec, "(1,'a'),(2,'b'),(3,'c')", "T1");
  EXPECT_EQ(code_of([&] { load(db, spec, "(1,'changed')", "T2"); }), ErrorCode::GateFailed);
  EXPECT_EQ(db.rows("SELECT id, name FROM t ORDER BY id"),
            (std::vector<std::string>{"1,a", "2,b", "3,c"}));
  EXPECT_EQ(code_of([&] { load(db, spec, "", "T3"); }), ErrorCode::GateFailed);
  EXPECT_EQ(db.rows("SELECT count(*) FROM t"), (std::vector<std::string>{"3"}));
}

}  // namespace
}  // namespace dpone
