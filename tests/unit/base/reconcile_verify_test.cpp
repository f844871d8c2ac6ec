// Post-load verification of a reconciliation (reconciliation.verify) and the structured
// record a failed reconciliation carries (ReconcileError), executed on an in-memory SQLite
// database with the SQLite sink's checksum aggregate (dpone_hash_sum).
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "core/connector/reconcile_sql.hpp"
#include "core/errors.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

json stream(const json& strategy, const json& reconciliation = json()) {
  json cfg = {{"source", {{"connector", "files"}}},
              {"sink", {{"connector", "sqlite"}, {"strategy", strategy}}}};
  if (!reconciliation.is_null()) cfg["reconciliation"] = reconciliation;
  return cfg;
}

class Db {
 public:
  Db() {
    sqlite3_open(":memory:", &db_);
    register_sqlite_reconcile_functions(db_);
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg + " in: " + sql);
    }
  }
  std::string one(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    std::string out = "<no row>";
    if (sqlite3_step(st) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(st, 0);
      out = t ? reinterpret_cast<const char*>(t) : "\\N";
    }
    sqlite3_finalize(st);
    return out;
  }
  std::set<std::string> columns(const std::string& table) {
    std::set<std::string> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, ("SELECT name FROM pragma_table_info('" + table + "')").c_str(), -1,
                       &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW)
      out.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

ReconcileDialect dialect(bool with_checksum) {
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
  if (with_checksum) d.hash_sum = [](const std::string& h) { return "dpone_hash_sum(" + h + ")"; };
  return d;
}

struct Runner : ReconcileRunner {
  Db& db;
  explicit Runner(Db& d) : db(d) {}
  void exec(const std::string& sql) override { db.exec(sql); }
  int64_t count(const std::string& sql) override { return std::stoll(db.one(sql)); }
};

// Stages `snapshot` and reconciles it into t in one transaction (rolled back on a throw);
// returns the run record's `reconciliation`.
json load(Db& db, const StrategySpec& spec, const std::string& snapshot,
          bool with_checksum = true) {
  db.exec("DROP TABLE IF EXISTS stg; CREATE TABLE stg (id INTEGER, name TEXT)");
  if (!snapshot.empty()) db.exec("INSERT INTO stg VALUES " + snapshot);
  ReconcileTables t{"\"t\"",
                    "\"stg\"",
                    {Column{"id", LogicalType::of(TypeId::Int64), false},
                     Column{"name", LogicalType::of(TypeId::String), true}},
                    db.columns("t"),
                    {}};
  ReconcilePlan plan = plan_reconcile(spec, t, dialect(with_checksum), "'T'");
  Runner runner(db);
  PromoteResult result;
  db.exec("BEGIN");
  try {
    run_reconcile(plan, spec, runner, {}, "test", "t", "T", result);
    db.exec("COMMIT");
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
  return result.reconciliation;
}

const StrategySpec kSoftDiff =
    StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}));

TEST(ReconcileVerify, ChecksumAggregateIsTheSumOfSixtyBitsModuloTwoToTheSixty) {
  Db db;
  EXPECT_EQ(db.one("SELECT dpone_hash_sum(h) FROM (SELECT 'ffffffffffffffff' AS h UNION ALL "
                   "SELECT 'fffffffffffffff0' UNION ALL SELECT NULL)"),
            std::to_string((uint64_t{1} << 60) - 2));
  EXPECT_EQ(db.one("SELECT dpone_hash_sum(h) FROM (SELECT '0000000000000010' AS h)"), "1");
  EXPECT_EQ(db.one("SELECT dpone_hash_sum(h) FROM (SELECT 'x' AS h WHERE 0)"), "0");
}

TEST(ReconcileVerify, NormalRunsMatch) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  json r1 = load(db, kSoftDiff, "(1,'a'),(2,'b'),(3,'c')");
  json r2 = load(db, kSoftDiff, "(1,'a'),(2,'B')");  // 2 updated, 3 soft-deleted
  for (const json& r : {r1, r2}) {
    ASSERT_TRUE(r.contains("post_load")) << r.dump();
    const json& p = r["post_load"];
    EXPECT_EQ(p["staged_rows"], p["target_live_rows"]) << p.dump();
    EXPECT_TRUE(p.value("checksum_match", false)) << p.dump();
    EXPECT_TRUE(p.value("passed", false)) << p.dump();
    EXPECT_EQ(p["staged_checksum"], p["target_checksum"]);
    EXPECT_TRUE(r.value("applied", false));
  }
  EXPECT_EQ(r2["post_load"].value("target_live_rows", -1), 2);
  // delete_policy ignore keeps target-only keys: only the snapshot's keys are compared.
  auto ignore = StrategySpec::for_stream(
      stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}, {{"delete_policy", "ignore"}}));
  json r3 = load(db, ignore, "(1,'a')");
  EXPECT_EQ(r3["post_load"].value("target_live_rows", -1), 1) << r3.dump();
  EXPECT_TRUE(r3["post_load"].value("passed", false)) << r3.dump();
}

TEST(ReconcileVerify, AlteredTargetIsReportedAndWithVerifyErrorRolledBack) {
  for (bool with_checksum : {true, false}) {
    SCOPED_TRACE(with_checksum ? "checksum" : "row by row");
    Db db;
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
    load(db, kSoftDiff, "(1,'a')", with_checksum);
    db.exec(
        "CREATE TRIGGER shout AFTER INSERT ON t BEGIN UPDATE t SET name = upper(name) WHERE id = "
        "NEW.id; END");
    json r = load(db, kSoftDiff, "(1,'a'),(2,'b')", with_checksum);
    const json& p = r["post_load"];
    EXPECT_EQ(p.value("staged_rows", -1), 2);
    EXPECT_EQ(p.value("target_live_rows", -1), 2);
    EXPECT_FALSE(p.value("checksum_match", true)) << p.dump();
    EXPECT_FALSE(p.value("passed", true));
    EXPECT_EQ(p.value("staged_rows_not_in_target", -1), 1);
    EXPECT_EQ(p.value("target_rows_not_in_staging", -1), 1);
    EXPECT_NE(p.value("message", "").find("post-load verification: t does not match"),
              std::string::npos)
        << p.dump();
    EXPECT_TRUE(r.value("applied", false));  // warn: committed
    EXPECT_EQ(db.one("SELECT name FROM t WHERE id = 2"), "B");

    auto strict = StrategySpec::for_stream(
        stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}, {{"verify", "error"}}));
    try {
      load(db, strict, "(1,'a'),(2,'b'),(3,'c')", with_checksum);
      ADD_FAILURE() << "verify: error accepted a target that differs from the snapshot";
    } catch (const ReconcileError& e) {
      EXPECT_EQ(e.code(), ErrorCode::GateFailed);
      EXPECT_FALSE(e.reconciliation().value("applied", true));
      EXPECT_FALSE(e.reconciliation()["post_load"].value("passed", true));
      EXPECT_EQ(e.reconciliation().value("inserted", -1), 1);
    }
    EXPECT_EQ(db.one("SELECT count(*) FROM t"), "2");  // rolled back: 3 not inserted
  }
}

TEST(ReconcileVerify, OffSkipsTheComparison) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  auto off = StrategySpec::for_stream(
      stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}, {{"verify", "off"}}));
  json r = load(db, off, "(1,'a')");
  EXPECT_FALSE(r.contains("post_load")) << r.dump();
  EXPECT_THROW(StrategySpec::for_stream(
                   stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}}, {{"verify", "loud"}})),
               Error);
}

TEST(ReconcileVerify, GuardBreachCarriesTheCounters) {
  Db db;
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  auto hard = StrategySpec::for_stream(stream({{"mode", "snapshot_diff"}, {"unique_key", "id"}},
                                              {{"delete_policy", "hard_delete"}}));
  load(db, hard, "(1,'a'),(2,'b'),(3,'c')");
  try {
    load(db, hard, "(1,'z')");
    ADD_FAILURE() << "the delete guard did not fire";
  } catch (const ReconcileError& e) {
    EXPECT_EQ(e.code(), ErrorCode::GateFailed);
    const json& r = e.reconciliation();
    EXPECT_FALSE(r.value("applied", true));
    EXPECT_EQ(r.value("deleted", -1), 2);
    EXPECT_EQ(r.value("updated", -1), 1);
    EXPECT_FALSE(r["guards"].value("passed", true));
    EXPECT_EQ(r["guards"].value("breached", ""), "max_delete_ratio");
    EXPECT_NE(std::string(e.what()).find("more than max_delete_ratio 0.5"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(db.one("SELECT group_concat(name) FROM (SELECT name FROM t ORDER BY id)"), "a,b,c");
}

}  // namespace
}  // namespace dpone
