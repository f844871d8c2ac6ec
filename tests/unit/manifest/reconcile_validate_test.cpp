// `dpone validate` applies the reconciliation and lineage rules of the runtime
// (StrategySpec::for_stream) with the very same messages, and `reconciliation` under
// `defaults:` reaches only the streams that reconcile by themselves (docs/reconciliation.md).
#include <gtest/gtest.h>

#include "core/connector/strategy.hpp"
#include "core/errors.hpp"
#include "core/manifest/manifest.hpp"
#include "test_support.hpp"

namespace dpone {
namespace {

using testing::dump;
using testing::find_problem;
using testing::problems_of;
using testing::TempDir;

// One sqlite -> sqlite stream whose strategy, source extras and stream extras vary.
std::string stream_yaml(const std::string& strategy, const std::string& source_extra = "",
                        const std::string& stream_extra = "") {
  return "kind: dpone.batch.v1\n"
         "streams:\n"
         "  - name: items\n"
         "    source: {connector: sqlite, table: items" +
         source_extra +
         "}\n"
         "    sink: {connector: sqlite, table: items, strategy: " +
         strategy + "}\n" + stream_extra;
}

// The message the runtime gives for the same stream (engine: StrategySpec::for_stream).
std::string runtime_message(const nlohmann::json& stream) {
  try {
    StrategySpec::for_stream(stream);
  } catch (const Error& e) {
    return e.what();
  }
  return "<accepted>";
}

TEST(ReconcileValidate, IncrementalSourceIsRefusedWithTheRuntimeMessage) {
  TempDir dir;
  auto problems =
      problems_of(dir, stream_yaml("{mode: merge, unique_key: [id]}", ", cursor: updated_at",
                                   "    reconciliation: {mode: key_snapshot}\n"));
  const Problem* p = find_problem(problems, "streams[0].reconciliation");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->code, ErrorCode::ConfigBadValue);
  EXPECT_NE(p->message.find("needs a full snapshot of the source"), std::string::npos)
      << p->message;
  EXPECT_EQ(p->mark.line, 6);  // the reconciliation key
  nlohmann::json stream = {
      {"source", {{"connector", "sqlite"}, {"table", "items"}, {"cursor", "updated_at"}}},
      {"sink", {{"strategy", {{"mode", "merge"}, {"unique_key", {"id"}}}}}},
      {"reconciliation", {{"mode", "key_snapshot"}}}};
  EXPECT_EQ(p->message, runtime_message(stream));
}

TEST(ReconcileValidate, ReconciliationWithAppendIsRefused) {
  TempDir dir;
  auto problems = problems_of(
      dir, stream_yaml("{mode: append}", "", "    reconciliation: {delete_policy: hard_delete}\n"));
  const Problem* p = find_problem(problems, "streams[0].reconciliation");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->message,
            "reconciliation (key_snapshot) works with the strategies merge, snapshot_diff and "
            "scd2, not append");
}

TEST(ReconcileValidate, SemanticRulesOfTheBlockAreChecked) {
  TempDir dir;
  // is_deleted_column needs soft_delete; the schema alone cannot tell.
  auto problems = problems_of(
      dir,
      stream_yaml("{mode: merge, unique_key: [id]}", "",
                  "    reconciliation: {delete_policy: hard_delete, is_deleted_column: true}\n"));
  const Problem* p = find_problem(problems, "streams[0].reconciliation");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->message, "reconciliation.is_deleted_column needs delete_policy: soft_delete");
  // A ratio outside 0..1.
  problems = problems_of(dir, stream_yaml("{mode: merge, unique_key: [id]}", "",
                                          "    reconciliation: {max_delete_ratio: 2}\n"));
  p = find_problem(problems, "streams[0].reconciliation");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_NE(p->message.find("reconciliation.max_delete_ratio is 2"), std::string::npos)
      << p->message;
  // Unknown delete_policy and verify values: the schema's enum check (the same problem
  // `run` and `plan` report, since they compile the manifest first).
  problems = problems_of(dir, stream_yaml("{mode: merge, unique_key: [id]}", "",
                                          "    reconciliation: {delete_policy: soft_delet, "
                                          "verify: loud}\n"));
  p = find_problem(problems, "streams[0].reconciliation.delete_policy");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->suggestion, "soft_delete");
  EXPECT_NE(find_problem(problems, "streams[0].reconciliation.verify"), nullptr) << dump(problems);
}

TEST(ReconcileValidate, LineageValuesAreChecked) {
  TempDir dir;
  auto problems =
      problems_of(dir, stream_yaml("{mode: append}", "", "    lineage: [run_id, loaded_when]\n"));
  const Problem* p = find_problem(problems, "streams[0].lineage");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_NE(p->message.find("lineage names 'loaded_when'"), std::string::npos) << p->message;
}

TEST(ReconcileValidate, ValidReconcilingStreamsCompile) {
  TempDir dir;
  auto m = testing::load_text(
      dir, stream_yaml("{mode: merge, unique_key: [id]}", "",
                       "    reconciliation: {mode: key_snapshot, verify: error}\n"
                       "    lineage: true\n"));
  ASSERT_EQ(m.streams.size(), 1u);
  StrategySpec s = StrategySpec::for_stream(m.streams[0].config);
  EXPECT_TRUE(s.reconciles());
  EXPECT_EQ(s.reconcile.verify, VerifyMode::Error);
  EXPECT_TRUE(s.lineage.run_id && s.lineage.loaded_at && s.lineage.row_hash);
}

// defaults.reconciliation: append / full_refresh streams are not touched, a merge stream is
// not opted into deletes by a default, and a merge stream that opts in itself inherits the
// defaults' settings.
TEST(ReconcileValidate, DefaultsReachOnlyStreamsThatReconcile) {
  TempDir dir;
  auto m = testing::load_text(dir, R"(kind: dpone.batch.v1
defaults:
  reconciliation: {delete_policy: hard_delete, max_delete_ratio: 0.9, verify: error}
  lineage: [run_id]
streams:
  - name: appended
    source: {connector: sqlite, table: a, cursor: id}
    sink: {connector: sqlite, table: a, strategy: {mode: append}}
  - name: refreshed
    source: {connector: sqlite, table: r}
    sink: {connector: sqlite, table: r, strategy: {mode: full_refresh}}
  - name: merged
    source: {connector: sqlite, table: m, cursor: id}
    sink: {connector: sqlite, table: m, strategy: {mode: merge, unique_key: [id]}}
  - name: reconciled
    source: {connector: sqlite, table: k}
    sink: {connector: sqlite, table: k, strategy: {mode: merge, unique_key: [id]}}
    reconciliation: {mode: key_snapshot}
)");
  ASSERT_EQ(m.streams.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(m.streams[i].config.contains("reconciliation")) << m.streams[i].name;
    StrategySpec s = StrategySpec::for_stream(m.streams[i].config);
    EXPECT_FALSE(s.reconciles()) << m.streams[i].name;
    EXPECT_TRUE(s.lineage.run_id) << m.streams[i].name;  // lineage defaults do apply
  }
  StrategySpec k = StrategySpec::for_stream(m.streams[3].config);
  EXPECT_TRUE(k.reconciles());
  EXPECT_EQ(k.reconcile.delete_policy, DeletePolicy::HardDelete);
  EXPECT_DOUBLE_EQ(k.reconcile.max_delete_ratio, 0.9);
  EXPECT_EQ(k.reconcile.verify, VerifyMode::Error);
  // Bad values in defaults are still reported where they are written.
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
defaults:
  reconciliation: {delete_policy: erase}
streams:
  - name: refreshed
    source: {connector: sqlite, table: r}
    sink: {connector: sqlite, table: r, strategy: {mode: full_refresh}}
)");
  EXPECT_NE(find_problem(problems, "defaults.reconciliation.delete_policy"), nullptr)
      << dump(problems);
}

}  // namespace
}  // namespace dpone
