// Key-snapshot reconciliation, snapshot_diff and scd2 (issue 4, acceptance 3, 4 and 5),
// on SQLite and, when DPONE_TEST_PG_DSN is set, PostgreSQL. Each test runs the real binary
// several times over a CSV "source snapshot" that changes between runs (inserts, updates,
// deletes, re-inserts) and compares the target with the expected table written out
// literally below. Timestamps written by the run (valid_from, valid_to, deleted_at) are the
// run's as-of time recorded in run.json (`reconciliation.as_of`); the comparison replaces
// each run's as-of time by the token R1..R4, so the expected rows stay literal.
// The delete guards (max_delete_ratio, max_delete_rows, empty snapshot) must fail the run
// with GATE_FAILED and leave target, load receipts and state exactly as they were.
#include <sqlite3.h>

#include <optional>

#include <fmt/format.h>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// The four source snapshots every multi-run test loads, in order:
//   run 1: 1,2,3 new
//   run 2: 1 updated, 2 unchanged, 3 deleted, 4 new
//   run 3: 1,2 unchanged, 3 back (changed), 4 deleted
//   run 4: 1 updated, 2 deleted, 3 unchanged, 4 back (changed), 5 new
const std::vector<std::string> kSnapshots = {
    "id,name,qty\n1,ann,10\n2,bob,20\n3,cid,30\n",
    "id,name,qty\n1,ann,11\n2,bob,20\n4,dan,40\n",
    "id,name,qty\n1,ann,11\n2,bob,20\n3,cid,33\n",
    "id,name,qty\n1,ann,12\n3,cid,33\n4,dan,44\n5,eve,50\n",
};

class Target {
 public:
  Target(std::string sink, const Scratch& dir) : sink_(std::move(sink)), dir_(dir) {
    if (sink_ == "postgres") pg_.emplace("dpone_rec_");
  }
  bool pg() const { return sink_ == "postgres"; }
  std::string sink_yaml(const std::string& strategy) const {
    if (!pg())
      return "{connector: sqlite, path: target.db, table: items, strategy: " + strategy + "}";
    return "{connector: postgres, connection: pg, schema: " + pg_->name() +
           ", table: items, strategy: " + strategy + "}";
  }
  std::map<std::string, std::string> env() const {
    return pg() ? pg_env() : std::map<std::string, std::string>{};
  }
  std::string table() const { return pg() ? pg_->name() + ".items" : "items"; }
  // A timestamp column as "YYYY-MM-DDTHH:MM:SS.mmmZ" (run.json's as-of form) or \N.
  std::string ts(const std::string& col) const {
    if (!pg()) return col;
    return fmt::format("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", col);
  }
  std::string boolean(const std::string& col) const {
    if (pg()) return col + "::text";
    return fmt::format("CASE {} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END", col);
  }
  // Rows of `sql`, one line each, cells joined by ',', NULL as \N.
  std::vector<std::string> query(const std::string& sql) const {
    std::vector<std::string> out;
    if (pg()) {
      std::istringstream in(psql(sql + ";"));
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) out.push_back(line);
      return out;
    }
    sqlite3* h = nullptr;
    if (sqlite3_open_v2((dir_ / "target.db").c_str(), &h, SQLITE_OPEN_READONLY, nullptr) !=
        SQLITE_OK) {
      sqlite3_close(h);
      return {"<cannot open target.db>"};
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      out.push_back(std::string("<") + sqlite3_errmsg(h) + ">");
      sqlite3_close(h);
      return out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string line;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i) line += ",";
        const auto* t = sqlite3_column_text(st, i);
        line += t ? reinterpret_cast<const char*>(t) : "\\N";
      }
      out.push_back(line);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
  }
  // Runs SQL on the target's database (test setup: triggers); "" when it worked.
  std::string exec(const std::string& sql) const {
    if (pg()) return psql(sql);
    sqlite3* h = nullptr;
    std::string out;
    if (sqlite3_open((dir_ / "target.db").c_str(), &h) != SQLITE_OK ||
        sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
      out = sqlite3_errmsg(h);
    sqlite3_close(h);
    return out;
  }
  // A trigger that adds 1 to qty of every row inserted into the target: the target then
  // differs from the snapshot the run staged.
  std::string install_qty_trigger() const {
    if (!pg())
      return exec(
          "CREATE TRIGGER bump_qty AFTER INSERT ON items BEGIN UPDATE items SET qty = qty + 1 "
          "WHERE id = NEW.id; END;");
    const std::string s = pg_->name();
    return exec("CREATE FUNCTION " + s +
                ".bump_qty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.qty := NEW.qty + 1; "
                "RETURN NEW; END $$; CREATE TRIGGER bump_qty BEFORE INSERT ON " +
                s + ".items FOR EACH ROW EXECUTE FUNCTION " + s + ".bump_qty();");
  }
  // Everything in the target, receipts included: equal before and after a refused run.
  std::vector<std::string> fingerprint() const {
    auto rows = query("SELECT * FROM " + table() + " ORDER BY 1, 2, 3");
    auto receipts = query("SELECT run_id FROM " + (pg() ? pg_->name() + "." : std::string()) +
                          "__dpone__loads ORDER BY 1");
    rows.insert(rows.end(), receipts.begin(), receipts.end());
    return rows;
  }

 private:
  std::string sink_;
  const Scratch& dir_;
  std::optional<PgSchema> pg_;
};

class Reconcile : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") REQUIRE_PG();
    target_.emplace(GetParam(), dir_);
  }

  void write_manifest(const std::string& strategy, const std::string& reconciliation = "") {
    write_file(
        dir_ / "manifest.yaml",
        "kind: dpone.batch.v1\n"
        "streams:\n"
        "  - name: items\n"
        "    source: {connector: files, path: landing/items.csv, primary_key: [id], columns: "
        "{id: int64, name: string, qty: int32}}\n"
        "    sink: " +
            target_->sink_yaml(strategy) + "\n" +
            (reconciliation.empty() ? "" : "    reconciliation: " + reconciliation + "\n"));
  }

  // Loads `csv`; returns the run's stream record (empty on a missing record).
  json run(const std::string& csv, int expect_exit = 0) {
    write_file(dir_ / "landing/items.csv", csv);
    Result r = run_dpone(dir_.dir(), {"run", "manifest.yaml"}, target_->env());
    EXPECT_EQ(r.exit_code, expect_exit) << r.all();
    last_output_ = r.all();
    Result rep =
        run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
    json rec = json::parse(rep.out, nullptr, false);
    if (rec.is_discarded() || !rec.contains("streams") || rec["streams"].empty())
      return json::object();
    json s = rec["streams"][0];
    if (expect_exit == 0 && s.contains("reconciliation"))
      as_of_.push_back(s["reconciliation"].value("as_of", "?"));
    if (expect_exit == 0) run_ids_.push_back(rec.value("run_id", "?"));
    return s;
  }

  // Rows with every recorded as-of time replaced by R<n> (n = run number, from 1).
  std::vector<std::string> rows(const std::string& sql) const {
    auto out = target_->query(sql);
    for (auto& line : out) {
      for (size_t i = 0; i < run_ids_.size(); ++i) {
        for (size_t p = line.find(run_ids_[i]); p != std::string::npos; p = line.find(run_ids_[i]))
          line.replace(p, run_ids_[i].size(), "RUN" + std::to_string(i + 1));
      }
      for (size_t i = 0; i < as_of_.size(); ++i) {
        for (size_t p = line.find(as_of_[i]); p != std::string::npos; p = line.find(as_of_[i]))
          line.replace(p, as_of_[i].size(), "R" + std::to_string(i + 1));
      }
    }
    return out;
  }

  // The stream's committed state revision, as `dpone state show` prints it.
  std::string state_revision() const {
    Result st =
        run_dpone(dir_.dir(), {"state", "show", "items", "-m", "manifest.yaml"}, target_->env());
    std::istringstream in(st.out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("revision:", 0) == 0) {
        std::string v = line.substr(9);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      }
    }
    return "<no revision in: " + st.all() + ">";
  }

  static std::string counters(const json& s) {
    if (!s.contains("reconciliation")) return "<no reconciliation in the run record>";
    const auto& r = s["reconciliation"];
    return fmt::format("inserted {} updated {} unchanged {} deleted {} reactivated {}",
                       r.value("inserted", -1), r.value("updated", -1), r.value("unchanged", -1),
                       r.value("deleted", -1), r.value("reactivated", -1));
  }

  std::string soft_rows_sql() const {
    return fmt::format("SELECT id, name, qty, {}, {} FROM {} ORDER BY id",
                       target_->ts("__dpone__deleted_at"), target_->boolean("__dpone__is_deleted"),
                       target_->table());
  }
  std::string plain_rows_sql() const {
    return fmt::format("SELECT id, name, qty FROM {} ORDER BY id", target_->table());
  }

  Scratch dir_;
  std::optional<Target> target_;
  std::vector<std::string> as_of_;
  std::vector<std::string> run_ids_;
  std::string last_output_;
};

using Rows = std::vector<std::string>;

// --- acceptance 4: snapshot_diff and scd2 over four runs ------------------------------

TEST_P(Reconcile, SnapshotDiffSoftDeleteFourRuns) {
  write_manifest("{mode: snapshot_diff, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: soft_delete, is_deleted_column: true}");
  auto s1 = run(kSnapshots[0]);
  EXPECT_EQ(counters(s1), "inserted 3 updated 0 unchanged 0 deleted 0 reactivated 0");
  EXPECT_EQ(rows(soft_rows_sql()),
            (Rows{"1,ann,10,\\N,false", "2,bob,20,\\N,false", "3,cid,30,\\N,false"}));
  auto s2 = run(kSnapshots[1]);
  EXPECT_EQ(counters(s2), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 0");
  EXPECT_EQ(rows(soft_rows_sql()), (Rows{"1,ann,11,\\N,false", "2,bob,20,\\N,false",
                                         "3,cid,30,R2,true", "4,dan,40,\\N,false"}));
  auto s3 = run(kSnapshots[2]);
  EXPECT_EQ(counters(s3), "inserted 0 updated 0 unchanged 2 deleted 1 reactivated 1");
  EXPECT_EQ(rows(soft_rows_sql()), (Rows{"1,ann,11,\\N,false", "2,bob,20,\\N,false",
                                         "3,cid,33,\\N,false", "4,dan,40,R3,true"}));
  auto s4 = run(kSnapshots[3]);
  EXPECT_EQ(counters(s4), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 1");
  EXPECT_EQ(rows(soft_rows_sql()),
            (Rows{"1,ann,12,\\N,false", "2,bob,20,R4,true", "3,cid,33,\\N,false",
                  "4,dan,44,\\N,false", "5,eve,50,\\N,false"}));
  // The row counters of the record agree with the reconciliation's.
  EXPECT_EQ(s4["rows"].value("inserted", -1), 1);
  EXPECT_EQ(s4["rows"].value("updated", -1), 1);
  EXPECT_EQ(s4["rows"].value("deleted", -1), 1);
}

TEST_P(Reconcile, SnapshotDiffHardDeleteFourRuns) {
  // SPEC's spelling: the delete policy in the strategy (no reconciliation block).
  write_manifest("{mode: snapshot_diff, unique_key: [id], delete_policy: hard_delete}");
  auto s1 = run(kSnapshots[0]);
  EXPECT_EQ(counters(s1), "inserted 3 updated 0 unchanged 0 deleted 0 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,10", "2,bob,20", "3,cid,30"}));
  auto s2 = run(kSnapshots[1]);
  EXPECT_EQ(counters(s2), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,11", "2,bob,20", "4,dan,40"}));
  auto s3 = run(kSnapshots[2]);
  EXPECT_EQ(counters(s3), "inserted 1 updated 0 unchanged 2 deleted 1 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,11", "2,bob,20", "3,cid,33"}));
  auto s4 = run(kSnapshots[3]);
  EXPECT_EQ(counters(s4), "inserted 2 updated 1 unchanged 1 deleted 1 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,12", "3,cid,33", "4,dan,44", "5,eve,50"}));
  // hard_delete adds no system columns.
  auto cols = target_->query(
      target_->pg()
          ? "SELECT count(*) FROM information_schema.columns WHERE table_schema || '.' || "
            "table_name = '" +
                target_->table() + "' AND column_name LIKE '\\_\\_dpone%'"
          : "SELECT count(*) FROM pragma_table_info('items') WHERE name LIKE '\\_\\_dpone%' "
            "ESCAPE '\\'");
  EXPECT_EQ(cols, (Rows{"0"}));
}

TEST_P(Reconcile, Scd2FourRunsKeepsExactHistory) {
  write_manifest("{mode: scd2, unique_key: [id]}");
  const std::string sql = fmt::format(
      "SELECT id, name, qty, {}, {}, {}, CASE WHEN length(__dpone__row_hash) = 16 THEN 'h' END "
      "FROM {} "
      "ORDER BY id, __dpone__valid_from",
      target_->ts("__dpone__valid_from"), target_->ts("__dpone__valid_to"),
      target_->boolean("__dpone__is_current"), target_->table());
  auto s1 = run(kSnapshots[0]);
  EXPECT_EQ(counters(s1), "inserted 3 updated 0 unchanged 0 deleted 0 reactivated 0");
  EXPECT_EQ(rows(sql),
            (Rows{"1,ann,10,R1,\\N,true,h", "2,bob,20,R1,\\N,true,h", "3,cid,30,R1,\\N,true,h"}));
  auto s2 = run(kSnapshots[1]);
  EXPECT_EQ(counters(s2), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 0");
  EXPECT_EQ(rows(sql),
            (Rows{"1,ann,10,R1,R2,false,h", "1,ann,11,R2,\\N,true,h", "2,bob,20,R1,\\N,true,h",
                  "3,cid,30,R1,R2,false,h", "4,dan,40,R2,\\N,true,h"}));
  auto s3 = run(kSnapshots[2]);
  EXPECT_EQ(counters(s3), "inserted 0 updated 0 unchanged 2 deleted 1 reactivated 1");
  EXPECT_EQ(rows(sql),
            (Rows{"1,ann,10,R1,R2,false,h", "1,ann,11,R2,\\N,true,h", "2,bob,20,R1,\\N,true,h",
                  "3,cid,30,R1,R2,false,h", "3,cid,33,R3,\\N,true,h", "4,dan,40,R2,R3,false,h"}));
  auto s4 = run(kSnapshots[3]);
  EXPECT_EQ(counters(s4), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 1");
  EXPECT_EQ(rows(sql),
            (Rows{"1,ann,10,R1,R2,false,h", "1,ann,11,R2,R4,false,h", "1,ann,12,R4,\\N,true,h",
                  "2,bob,20,R1,R4,false,h", "3,cid,30,R1,R2,false,h", "3,cid,33,R3,\\N,true,h",
                  "4,dan,40,R2,R3,false,h", "4,dan,44,R4,\\N,true,h", "5,eve,50,R4,\\N,true,h"}));
  ASSERT_EQ(as_of_.size(), 4u);
  // A re-run of the same snapshot changes nothing.
  auto s5 = run(kSnapshots[3]);
  EXPECT_EQ(counters(s5), "inserted 0 updated 0 unchanged 4 deleted 0 reactivated 0");
  EXPECT_EQ(target_->query("SELECT count(*) FROM " + target_->table()), (Rows{"9"}));
}

// --- acceptance 3: merge + key_snapshot reconciliation and the guards ----------------

TEST_P(Reconcile, MergeWithKeySnapshotSoftDeletesAndReactivates) {
  write_manifest("{mode: merge, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: soft_delete}");
  run(kSnapshots[0]);
  auto s2 = run(kSnapshots[1]);
  EXPECT_EQ(counters(s2), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 0");
  const std::string sql = fmt::format("SELECT id, name, qty, {} FROM {} ORDER BY id",
                                      target_->ts("__dpone__deleted_at"), target_->table());
  EXPECT_EQ(rows(sql), (Rows{"1,ann,11,\\N", "2,bob,20,\\N", "3,cid,30,R2", "4,dan,40,\\N"}));
  auto s3 = run(kSnapshots[2]);
  EXPECT_EQ(counters(s3), "inserted 0 updated 0 unchanged 2 deleted 1 reactivated 1");
  EXPECT_EQ(rows(sql), (Rows{"1,ann,11,\\N", "2,bob,20,\\N", "3,cid,33,\\N", "4,dan,40,R3"}));
  // run-report shows the counters (acceptance 5).
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(
      rep.out.find(
          "reconciliation: key_snapshot merge (delete policy soft_delete): inserted 0, updated 0, "
          "unchanged 2, deleted 1, reactivated 1"),
      std::string::npos)
      << rep.out;
}

TEST_P(Reconcile, MergeWithKeySnapshotHardDeletes) {
  write_manifest("{mode: merge, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: hard_delete}");
  run(kSnapshots[0]);
  auto s2 = run(kSnapshots[1]);
  EXPECT_EQ(counters(s2), "inserted 1 updated 1 unchanged 1 deleted 1 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,11", "2,bob,20", "4,dan,40"}));
  auto s3 = run(kSnapshots[2]);
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,11", "2,bob,20", "3,cid,33"}));
}

TEST_P(Reconcile, DeleteRatioGuardFailsAndAppliesNothing) {
  write_manifest("{mode: merge, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: hard_delete}");
  run("id,name,qty\n1,ann,10\n2,bob,20\n3,cid,30\n4,dan,40\n");
  const auto before = target_->fingerprint();
  // 3 of 4 rows would go (75% > the default 50%); the update of 1 must not happen either.
  auto s = run("id,name,qty\n1,ann,99\n", 1);
  ASSERT_TRUE(s.contains("error")) << last_output_;
  EXPECT_EQ(s["error"].value("code", ""), "GATE_FAILED");
  EXPECT_NE(s["error"].value("message", "").find("max_delete_ratio"), std::string::npos)
      << s["error"].dump();
  EXPECT_EQ(target_->fingerprint(), before);
  EXPECT_EQ(s["state_before"].value("revision", -1), 1);
  EXPECT_FALSE(s.contains("state_after") && s["state_after"].value("revision", -1) == 2);
  EXPECT_EQ(state_revision(), "1");
  // Raising the guard lets the same snapshot through.
  write_manifest("{mode: merge, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: hard_delete, max_delete_ratio: 0.8}");
  auto ok = run("id,name,qty\n1,ann,99\n");
  EXPECT_EQ(counters(ok), "inserted 0 updated 1 unchanged 0 deleted 3 reactivated 0");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,99"}));
}

TEST_P(Reconcile, DeleteRowsGuardFailsAndAppliesNothing) {
  write_manifest("{mode: snapshot_diff, unique_key: [id]}",
                 "{delete_policy: soft_delete, max_delete_rows: 1, max_delete_ratio: 1}");
  run("id,name,qty\n1,ann,10\n2,bob,20\n3,cid,30\n");
  const auto before = target_->fingerprint();
  auto s = run("id,name,qty\n1,ann,10\n9,zed,90\n", 1);
  EXPECT_EQ(s["error"].value("code", ""), "GATE_FAILED") << last_output_;
  EXPECT_NE(s["error"].value("message", "").find("max_delete_rows (1)"), std::string::npos)
      << s["error"].dump();
  EXPECT_EQ(target_->fingerprint(), before);
  EXPECT_EQ(state_revision(), "1");
}

TEST_P(Reconcile, EmptySnapshotNeverDeletesEverythingByDefault) {
  write_manifest("{mode: snapshot_diff, unique_key: [id]}",
                 "{delete_policy: hard_delete, max_delete_ratio: 1}");
  run("id,name,qty\n1,ann,10\n2,bob,20\n");
  const auto before = target_->fingerprint();
  auto s = run("id,name,qty\n", 1);
  EXPECT_EQ(s["error"].value("code", ""), "GATE_FAILED") << last_output_;
  EXPECT_NE(s["error"].value("message", "").find("empty"), std::string::npos) << s["error"].dump();
  EXPECT_EQ(target_->fingerprint(), before);
  EXPECT_EQ(state_revision(), "1");
  // Only an explicit allow_empty_snapshot empties the target.
  write_manifest("{mode: snapshot_diff, unique_key: [id]}",
                 "{delete_policy: hard_delete, max_delete_ratio: 1, allow_empty_snapshot: true}");
  auto ok = run("id,name,qty\n");
  EXPECT_EQ(counters(ok), "inserted 0 updated 0 unchanged 0 deleted 2 reactivated 0");
  EXPECT_EQ(target_->query("SELECT count(*) FROM " + target_->table()), (Rows{"0"}));
}

TEST_P(Reconcile, RunReportShowsSchemaDecisionDdlAndCounters) {
  write_manifest("{mode: scd2, unique_key: [id]}");
  run(kSnapshots[0]);
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(rep.out.find("(decision: apply): create table"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("DDL: CREATE TABLE"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("gate unique_key_unique: passed"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find(
                "reconciliation: key_snapshot scd2 (delete policy expire): inserted 3, updated 0, "
                "unchanged 0, deleted 0, reactivated 0"),
            std::string::npos)
      << rep.out;
  // The promotion SQL in the record adds the history columns.
  Result js =
      run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  EXPECT_NE(js.out.find("__dpone__valid_from"), std::string::npos);
  // A duplicate key in the snapshot fails before promotion (KEY_DUPLICATE).
  auto dup = run("id,name,qty\n1,ann,10\n1,ann,11\n", 1);
  EXPECT_EQ(dup["error"].value("code", ""), "KEY_DUPLICATE") << last_output_;
}

// --- the delete guards' counters and the post-load verification -----------------------

TEST_P(Reconcile, GuardFailureRecordsItsCountersAndNothingApplied) {
  write_manifest("{mode: merge, unique_key: [id]}",
                 "{mode: key_snapshot, delete_policy: hard_delete}");
  run("id,name,qty\n1,ann,10\n2,bob,20\n3,cid,30\n4,dan,40\n");
  auto s = run("id,name,qty\n1,ann,99\n", 1);
  ASSERT_TRUE(s.contains("reconciliation")) << s.dump(2);
  const json& r = s["reconciliation"];
  EXPECT_EQ(r.value("applied", true), false);
  EXPECT_EQ(r.value("staged", -1), 1);
  EXPECT_EQ(r.value("target_rows_before", -1), 4);
  EXPECT_EQ(r.value("updated", -1), 1);
  EXPECT_EQ(r.value("deleted", -1), 3);
  ASSERT_TRUE(r.contains("guards"));
  EXPECT_EQ(r["guards"].value("passed", true), false);
  EXPECT_EQ(r["guards"].value("breached", ""), "max_delete_ratio");
  EXPECT_EQ(r["guards"].value("would_delete", -1), 3);
  EXPECT_DOUBLE_EQ(r["guards"].value("delete_ratio", -1.0), 0.75);
  EXPECT_FALSE(r.contains("post_load"));
  // Nothing was applied: the rows counters stay 0.
  EXPECT_EQ(s["rows"].value("updated", -1), 0);
  EXPECT_EQ(s["rows"].value("deleted", -1), 0);
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(rep.out.find("delete guard BREACHED: max_delete_ratio (3 of 4 live rows, max ratio "
                         "0.5); NOT applied (rolled back: target and state unchanged)"),
            std::string::npos)
      << rep.out;
}

TEST_P(Reconcile, PostLoadVerificationMatchesOnNormalRuns) {
  write_manifest("{mode: snapshot_diff, unique_key: [id]}", "{delete_policy: soft_delete}");
  auto s1 = run(kSnapshots[0]);
  auto s2 = run(kSnapshots[1]);  // 1 updated, 3 soft-deleted, 4 new
  for (const json* s : {&s1, &s2}) {
    ASSERT_TRUE((*s)["reconciliation"].contains("post_load")) << s->dump(2);
    const json& p = (*s)["reconciliation"]["post_load"];
    EXPECT_EQ(p.value("verify", ""), "warn");
    EXPECT_EQ(p.value("staged_rows", -1), 3);
    EXPECT_EQ(p.value("target_live_rows", -1), 3);  // the soft-deleted row is not live
    EXPECT_EQ(p.value("checksum_match", false), true);
    EXPECT_EQ(p.value("passed", false), true);
    EXPECT_EQ(p.value("staged_checksum", int64_t{-1}), p.value("target_checksum", int64_t{-2}));
    EXPECT_NE(p.value("staged_checksum", int64_t{0}), 0);
    EXPECT_FALSE(p.contains("staged_rows_not_in_target"));  // only looked for on a mismatch
    EXPECT_TRUE(s->value("warnings", json::array()).empty()) << s->dump(2);
  }
  // scd2 compares the current versions; merge + hard_delete every row.
  write_manifest("{mode: scd2, unique_key: [id]}");
  target_->exec(target_->pg() ? "DROP TABLE " + target_->table() + ";" : "DROP TABLE items;");
  run(kSnapshots[0]);
  auto s3 = run(kSnapshots[1]);
  EXPECT_EQ(s3["reconciliation"]["post_load"].value("target_live_rows", -1), 3);
  EXPECT_EQ(s3["reconciliation"]["post_load"].value("passed", false), true) << s3.dump(2);
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(rep.out.find("post-load check passed (verify warn): staged 3, target live 3, "
                         "checksum match"),
            std::string::npos)
      << rep.out;
  // verify: off skips it.
  write_manifest("{mode: scd2, unique_key: [id]}", "{verify: off}");
  auto s4 = run(kSnapshots[2]);
  EXPECT_FALSE(s4["reconciliation"].contains("post_load")) << s4.dump(2);
}

TEST_P(Reconcile, PostLoadVerificationDetectsATargetThatDiffersFromTheSnapshot) {
  write_manifest("{mode: snapshot_diff, unique_key: [id]}", "{delete_policy: hard_delete}");
  run(kSnapshots[0]);
  ASSERT_EQ(target_->install_qty_trigger(), "");
  // Run 2 inserts id 4 with qty 40; the trigger stores 41. verify: warn (the default) commits
  // and records the mismatch.
  auto s = run(kSnapshots[1]);
  ASSERT_TRUE(s["reconciliation"].contains("post_load")) << s.dump(2);
  const json& p = s["reconciliation"]["post_load"];
  EXPECT_EQ(p.value("staged_rows", -1), 3);
  EXPECT_EQ(p.value("target_live_rows", -1), 3);
  EXPECT_EQ(p.value("checksum_match", true), false);
  EXPECT_EQ(p.value("passed", true), false);
  EXPECT_EQ(p.value("staged_rows_not_in_target", -1), 1);
  EXPECT_EQ(p.value("target_rows_not_in_staging", -1), 1);
  EXPECT_EQ(s.value("status", ""), "succeeded");
  EXPECT_EQ(rows(plain_rows_sql()), (Rows{"1,ann,11", "2,bob,20", "4,dan,41"}));
  std::string warnings = s.value("warnings", json::array()).dump();
  EXPECT_NE(warnings.find("post-load verification"), std::string::npos) << warnings;
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(rep.out.find("post-load check FAILED (verify warn): staged 3, target live 3, checksum "
                         "MISMATCH (1 staged rows not in target, 1 target rows not in staging)"),
            std::string::npos)
      << rep.out;

  // verify: error fails the run and rolls the promotion back.
  write_manifest("{mode: snapshot_diff, unique_key: [id]}",
                 "{delete_policy: hard_delete, verify: error}");
  const auto before = target_->fingerprint();
  auto e = run(kSnapshots[3], 1);  // 5 is new: the trigger alters it
  EXPECT_EQ(e["error"].value("code", ""), "GATE_FAILED") << last_output_;
  EXPECT_NE(e["error"].value("message", "").find("post-load verification"), std::string::npos)
      << e["error"].dump();
  EXPECT_EQ(e["reconciliation"].value("applied", true), false) << e.dump(2);
  EXPECT_EQ(e["reconciliation"]["post_load"].value("passed", true), false);
  EXPECT_EQ(target_->fingerprint(), before);
  EXPECT_EQ(state_revision(), "2");
}

// --- lineage columns -----------------------------------------------------------------

TEST_P(Reconcile, LineageColumnsFollowTheRowsEachRunWrote) {
  write_file(dir_ / "manifest.yaml", "");
  write_manifest("{mode: snapshot_diff, unique_key: [id]}", "{delete_policy: hard_delete}");
  // lineage: true, appended to the stream.
  write_file(dir_ / "manifest.yaml", read_file(dir_ / "manifest.yaml") + "    lineage: true\n");
  const std::string receipts =
      (target_->pg() ? target_->table().substr(0, target_->table().find('.')) + "." : "") +
      std::string("__dpone__loads");
  // loaded_at is the run's as-of time, the same value as its load receipt's loaded_at.
  const std::string sql = fmt::format(
      "SELECT i.id, i.qty, i.__dpone__run_id, CASE WHEN length(i.__dpone__row_hash) = 16 THEN 'h' "
      "END, "
      "CASE WHEN {} = {} THEN 'at' END FROM {} AS i JOIN {} AS l ON l.run_id = i.__dpone__run_id "
      "ORDER BY i.id",
      target_->ts("i.__dpone__loaded_at"),
      target_->pg() ? target_->ts("l.loaded_at::timestamptz") : "l.loaded_at", target_->table(),
      receipts);
  run(kSnapshots[0]);
  EXPECT_EQ(rows(sql), (Rows{"1,10,RUN1,h,at", "2,20,RUN1,h,at", "3,30,RUN1,h,at"}));
  auto hash_of_2 =
      target_->query("SELECT __dpone__row_hash FROM " + target_->table() + " WHERE id = 2");
  run(kSnapshots[1]);
  // Unchanged rows keep the lineage of the run that last wrote them.
  EXPECT_EQ(rows(sql), (Rows{"1,11,RUN2,h,at", "2,20,RUN1,h,at", "4,40,RUN2,h,at"}));
  EXPECT_EQ(target_->query("SELECT __dpone__row_hash FROM " + target_->table() + " WHERE id = 2"),
            hash_of_2);
  // The lineage columns are not source columns: no schema drift is reported.
  Result rep = run_dpone(dir_.dir(), {"run-report", "--last", "-m", "manifest.yaml"});
  EXPECT_NE(rep.out.find("(decision: no change): no change"), std::string::npos) << rep.out;
}

TEST_P(Reconcile, LineageRunIdOnFullRefresh) {
  write_file(dir_ / "manifest.yaml", "");
  write_manifest("{mode: full_refresh}");
  write_file(dir_ / "manifest.yaml", read_file(dir_ / "manifest.yaml") + "    lineage: [run_id]\n");
  const std::string sql =
      fmt::format("SELECT id, __dpone__run_id FROM {} ORDER BY id", target_->table());
  run(kSnapshots[0]);
  EXPECT_EQ(rows(sql), (Rows{"1,RUN1", "2,RUN1", "3,RUN1"}));
  run(kSnapshots[2]);
  EXPECT_EQ(rows(sql), (Rows{"1,RUN2", "2,RUN2", "3,RUN2"}));
  // Only the asked-for lineage column exists.
  EXPECT_EQ(
      target_->query(target_->pg()
                         ? "SELECT count(*) FROM information_schema.columns WHERE table_schema || "
                           "'.' || table_name = '" +
                               target_->table() + "' AND column_name LIKE '\\_\\_dpone%'"
                         : "SELECT count(*) FROM pragma_table_info('items') WHERE name LIKE "
                           "'\\_\\_dpone%' ESCAPE '\\'"),
      (Rows{"1"}));
}

INSTANTIATE_TEST_SUITE_P(Sinks, Reconcile, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// --- configuration -------------------------------------------------------------------

TEST(ReconcileConfig, IncrementalSourceIsRefusedWithTheReason) {
  Scratch dir;
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "source.db").c_str(), &h), SQLITE_OK);
    sqlite3_exec(h,
                 "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items VALUES "
                 "(1, 'a');",
                 nullptr, nullptr, nullptr);
    sqlite3_close(h);
  }
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: items\n"
             "    source: {connector: sqlite, path: source.db, table: items, incremental: cursor, "
             "cursor: id}\n"
             "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: "
             "snapshot_diff, "
             "unique_key: [id]}}\n");
  Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.all().find("CONFIG_BAD_VALUE"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("needs a full snapshot"), std::string::npos) << r.all();
  EXPECT_FALSE(fs::exists(dir / "target.db"));
}

TEST(ReconcileConfig, ReconciliationWithAppendIsRefused) {
  Scratch dir;
  write_file(dir / "landing/items.csv", "id,name\n1,a\n");
  write_file(
      dir / "manifest.yaml",
      "kind: dpone.batch.v1\n"
      "streams:\n"
      "  - name: items\n"
      "    source: {connector: files, path: landing/items.csv}\n"
      "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: append}}\n"
      "    reconciliation: {mode: key_snapshot}\n");
  Result r = run_dpone(dir.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.all().find("works with the strategies merge, snapshot_diff and scd2"),
            std::string::npos)
      << r.all();
}

// `dpone validate` and `dpone plan` refuse what `run` refuses, with the same message.
TEST(ReconcileConfig, ValidateAndPlanGiveTheRunMessage) {
  Scratch dir;
  write_file(dir / "landing/items.csv", "id,name\n1,a\n");
  const std::string head =
      "kind: dpone.batch.v1\n"
      "streams:\n"
      "  - name: items\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"    source: {connector: files, path: landing/items.csv, incremental: new_files}\n"
       "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: "
       "snapshot_diff, unique_key: [id]}}\n",
       "strategy snapshot_diff needs a full snapshot of the source, but the source reads "
       "incrementally (incremental: new_files)"},
      {"    source: {connector: files, path: landing/items.csv}\n"
       "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: append}}\n"
       "    reconciliation: {mode: key_snapshot}\n",
       "reconciliation (key_snapshot) works with the strategies merge, snapshot_diff and scd2, "
       "not append"},
      {"    source: {connector: files, path: landing/items.csv}\n"
       "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: scd2, "
       "unique_key: [id]}}\n"
       "    reconciliation: {delete_policy: hard_delete}\n",
       "reconciliation.delete_policy does not apply to scd2"},
  };
  for (const auto& [stream, message] : cases) {
    write_file(dir / "manifest.yaml", head + stream);
    for (const char* cmd : {"validate", "plan", "run"}) {
      Result r = run_dpone(dir.dir(), {cmd, "manifest.yaml"});
      EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.all();
      EXPECT_NE(r.all().find("CONFIG_BAD_VALUE"), std::string::npos) << cmd << ": " << r.all();
      EXPECT_NE(r.all().find(message), std::string::npos) << cmd << ": " << r.all();
    }
    EXPECT_FALSE(fs::exists(dir / "target.db"));
  }
}

// `reconciliation` under `defaults:` tunes snapshot_diff (and scd2) streams; append and
// full_refresh streams load as usual, and a merge stream is not opted into deletes.
TEST(ReconcileConfig, DefaultsReconciliationReachesOnlyReconcilingStreams) {
  Scratch dir;
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "defaults:\n"
             "  source: {connector: files, path: landing/items.csv, columns: {id: int64, name: "
             "string}}\n"
             "  reconciliation: {delete_policy: hard_delete, max_delete_ratio: 1}\n"
             "streams:\n"
             "  - name: appended\n"
             "    sink: {connector: sqlite, path: target.db, table: appended, strategy: {mode: "
             "append}}\n"
             "  - name: refreshed\n"
             "    sink: {connector: sqlite, path: target.db, table: refreshed, strategy: {mode: "
             "full_refresh, allow_shrink: true}}\n"
             "  - name: merged\n"
             "    source: {primary_key: [id]}\n"
             "    sink: {connector: sqlite, path: target.db, table: merged, strategy: {mode: "
             "merge, unique_key: [id]}}\n"
             "  - name: diffed\n"
             "    source: {primary_key: [id]}\n"
             "    sink: {connector: sqlite, path: target.db, table: diffed, strategy: {mode: "
             "snapshot_diff, unique_key: [id]}}\n");
  Result v = run_dpone(dir.dir(), {"validate", "manifest.yaml"});
  EXPECT_EQ(v.exit_code, 0) << v.all();
  write_file(dir / "landing/items.csv", "id,name\n1,a\n2,b\n");
  Result r1 = run_dpone(dir.dir(), {"run", "manifest.yaml"});
  EXPECT_EQ(r1.exit_code, 0) << r1.all();
  write_file(dir / "landing/items.csv", "id,name\n1,a\n");
  Result r2 = run_dpone(dir.dir(), {"run", "manifest.yaml"});
  EXPECT_EQ(r2.exit_code, 0) << r2.all();
  Result rep =
      run_dpone(dir.dir(), {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  json rec = json::parse(rep.out, nullptr, false);
  ASSERT_FALSE(rec.is_discarded()) << rep.all();
  std::map<std::string, json> by_name;
  for (const auto& s : rec["streams"]) by_name[s.value("stream", "")] = s;
  EXPECT_FALSE(by_name["appended"].contains("reconciliation"));
  EXPECT_FALSE(by_name["refreshed"].contains("reconciliation"));
  EXPECT_FALSE(by_name["merged"].contains("reconciliation"));
  ASSERT_TRUE(by_name["diffed"].contains("reconciliation")) << by_name["diffed"].dump(2);
  EXPECT_EQ(by_name["diffed"]["reconciliation"].value("delete_policy", ""), "hard_delete");
  EXPECT_EQ(by_name["diffed"]["reconciliation"].value("deleted", -1), 1);
  auto count = [&](const std::string& table) {
    sqlite3* h = nullptr;
    int n = -1;
    if (sqlite3_open_v2((dir / "target.db").c_str(), &h, SQLITE_OPEN_READONLY, nullptr) ==
        SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(h, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr) ==
              SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
  };
  EXPECT_EQ(count("appended"), 3);
  EXPECT_EQ(count("refreshed"), 1);
  EXPECT_EQ(count("merged"), 2);  // no deletes: not opted in
  EXPECT_EQ(count("diffed"), 1);  // hard_delete from the defaults
}

}  // namespace
