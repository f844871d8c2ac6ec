// Validation: every problem found, each with file:line:col, key path and suggestion.
#include <gtest/gtest.h>

#include "core/manifest/manifest.hpp"
#include "core/manifest/schema.hpp"
#include "test_support.hpp"

namespace dpone {
namespace {

using testing::dump;
using testing::find_problem;
using testing::problems_of;
using testing::TempDir;

// A valid two-stream manifest the tests below break in one place each.
const char* kValid = R"(kind: dpone.batch.v1
defaults:
  sink:
    connector: sqlite
    strategy:
      mode: append
streams:
  - name: orders
    source:
      connector: files
      path: data/orders.csv
    sink:
      table: orders
  - name: customers
    source:
      connector: sqlite
      table: customers
    sink:
      table: customers
      strategy:
        mode: merge
        unique_key: id
)";

TEST(Validate, ValidManifestCompiles) {
  TempDir dir;
  auto m = testing::load_text(dir, kValid);
  ASSERT_EQ(m.streams.size(), 2u);
  EXPECT_EQ(m.streams[0].name, "orders");
  EXPECT_EQ(m.streams[1].config["sink"]["strategy"]["unique_key"],
            nlohmann::json::array({"id"}));                   // string_list normalized
  EXPECT_EQ(m.streams[0].config["source"]["format"], "csv");  // descriptor default
  EXPECT_EQ(m.base_dir, std::filesystem::absolute(dir.path()));
}

TEST(Validate, MisspelledKeyHasPositionPathAndSuggestion) {
  TempDir dir;
  std::string yaml = kValid;
  yaml.replace(yaml.find("      strategy:\n        mode: merge"), 15, "      stratgy:");
  auto problems = problems_of(dir, yaml);
  const Problem* p = find_problem(problems, "streams[1].sink.stratgy");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->code, ErrorCode::ConfigUnknownKey);
  EXPECT_EQ(p->mark.line, 20);
  EXPECT_EQ(p->mark.column, 7);
  EXPECT_EQ(p->suggestion, "strategy");
  EXPECT_EQ(p->to_string(), (dir.path() / "manifest.yaml").string() +
                                ":20:7: error[CONFIG_UNKNOWN_KEY] streams[1].sink.stratgy: "
                                "unknown key 'stratgy' for the sqlite sink (did you mean "
                                "'strategy'?)");
}

TEST(Validate, WrongTypeAndBadEnumWithSuggestion) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: s
    source: {connector: sqlite, table: t, batch_rows: many}
    sink:
      connector: sqlite
      table: t
      strategy: {mode: apend, allow_shrink: maybe}
)");
  ASSERT_EQ(problems.size(), 3u) << dump(problems);
  const Problem* rows = find_problem(problems, "streams[0].source.batch_rows");
  ASSERT_NE(rows, nullptr) << dump(problems);
  EXPECT_EQ(rows->code, ErrorCode::ConfigWrongType);
  EXPECT_EQ(rows->mark.line, 4);
  EXPECT_EQ(rows->mark.column, 55);
  EXPECT_EQ(rows->message, "expected an integer, got string");
  const Problem* mode = find_problem(problems, "streams[0].sink.strategy.mode");
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(mode->code, ErrorCode::ConfigBadValue);
  EXPECT_EQ(mode->suggestion, "append");
  EXPECT_EQ(mode->mark.line, 8);
  EXPECT_EQ(mode->mark.column, 24);
  const Problem* shrink = find_problem(problems, "streams[0].sink.strategy.allow_shrink");
  ASSERT_NE(shrink, nullptr);
  EXPECT_EQ(shrink->code, ErrorCode::ConfigWrongType);
}

TEST(Validate, MissingRequiredKeysPointAtTheStream) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite}
    sink:
      connector: sqlite
      table: t
      strategy: {unique_key: id}
  - description: no name, no sink
    source: {connector: files, path: x.csv}
  - name: c
    source: {connector: files, path: x.csv}
    sink: {connector: files, path: y.csv}
)");
  auto* table = find_problem(problems, "streams[0].source.table");
  ASSERT_NE(table, nullptr) << dump(problems);
  EXPECT_EQ(table->code, ErrorCode::ConfigMissingKey);
  EXPECT_EQ(table->mark.line, 3);
  EXPECT_EQ(table->mark.column, 5);
  auto* mode = find_problem(problems, "streams[0].sink.strategy.mode");
  ASSERT_NE(mode, nullptr) << dump(problems);
  EXPECT_EQ(mode->code, ErrorCode::ConfigMissingKey);
  EXPECT_NE(find_problem(problems, "streams[1].name"), nullptr) << dump(problems);
  auto* sink = find_problem(problems, "streams[1].sink");
  ASSERT_NE(sink, nullptr) << dump(problems);
  EXPECT_EQ(sink->mark.line, 9);
  auto* strategy = find_problem(problems, "streams[2].sink.strategy");
  ASSERT_NE(strategy, nullptr) << dump(problems);
  EXPECT_EQ(strategy->mark.line, 11);
  EXPECT_EQ(problems.size(), 5u) << dump(problems);
}

TEST(Validate, MalformedYamlReportsPosition) {
  TempDir dir;
  auto problems = problems_of(dir, "kind: dpone.batch.v1\nstreams:\n  - name: [a, b\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigYamlSyntax);
  EXPECT_GT(problems[0].mark.line, 0);
  EXPECT_NE(problems[0].to_string().find("error[CONFIG_YAML_SYNTAX]"), std::string::npos);

  auto bad_map = problems_of(dir, "kind: dpone.batch.v1\nstreams: x\n  y: z\n");
  ASSERT_EQ(bad_map.size(), 1u);
  EXPECT_EQ(bad_map[0].code, ErrorCode::ConfigYamlSyntax);
  EXPECT_EQ(bad_map[0].mark.line, 3);
}

TEST(Validate, CollectsAllProblemsSortedByPosition) {
  TempDir dir;
  std::string what;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v2
vers: {}
defaults:
  sink: {connector: sqlite, tabel: x}
streams:
  - name: a
    source: {connector: sqlit, table: t}
    sink: {table: t, strategy: {mode: append}}
)",
                              &what);
  ASSERT_EQ(problems.size(), 4u) << dump(problems);
  EXPECT_EQ(problems[0].path, "kind");
  EXPECT_EQ(problems[0].suggestion, "dpone.batch.v1");
  EXPECT_EQ(problems[1].path, "vers");
  EXPECT_EQ(problems[1].suggestion, "vars");
  // Written in defaults: reported once, where it is written, not once per stream.
  EXPECT_EQ(problems[2].path, "defaults.sink.tabel");
  EXPECT_EQ(problems[2].suggestion, "table");
  EXPECT_EQ(problems[2].mark.line, 4);
  EXPECT_EQ(problems[3].path, "streams[0].source.connector");
  EXPECT_EQ(problems[3].code, ErrorCode::ConfigBadValue);
  EXPECT_EQ(problems[3].suggestion, "sqlite");
  // what() lists every problem, one per line.
  EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 3);
}

TEST(Validate, ConnectorRolesAndStrategies) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: files, path: in.csv}
    sink: {connector: pgsource, table: t, strategy: {mode: append}}
  - name: b
    source: {connector: sqlite, table: t}
    sink: {connector: files, path: out.csv, strategy: {mode: merge, unique_key: id}}
  - name: c
    source: {connector: sqlite, table: t}
    sink: {connector: sqlite, table: t, strategy: {mode: merge}}
  - name: d
    source: {connector: sqlite, table: t}
    sink: {connector: sqlite, table: t, strategy: {mode: append, only_new_rows: true}}
)");
  auto* role = find_problem(problems, "streams[0].sink.connector");
  ASSERT_NE(role, nullptr) << dump(problems);
  EXPECT_EQ(role->code, ErrorCode::ConfigBadValue);
  EXPECT_NE(role->message.find("cannot be used as a sink"), std::string::npos);
  auto* unsupported = find_problem(problems, "streams[1].sink.strategy.mode");
  ASSERT_NE(unsupported, nullptr) << dump(problems);
  EXPECT_EQ(unsupported->code, ErrorCode::ConfigBadValue);
  EXPECT_NE(unsupported->message.find("does not support mode 'merge'"), std::string::npos);
  auto* key = find_problem(problems, "streams[2].sink.strategy.unique_key");
  ASSERT_NE(key, nullptr) << dump(problems);
  EXPECT_EQ(key->code, ErrorCode::ConfigMissingKey);
  EXPECT_NE(find_problem(problems, "streams[3].sink.strategy.unique_key"), nullptr)
      << dump(problems);
  EXPECT_EQ(problems.size(), 4u) << dump(problems);
}

TEST(Validate, QualityGatesOnlyOfTypesThatRun) {
  TempDir dir;
  // Unknown types and severities are schema errors; the keys each type needs or does not
  // take are checked per type (check_gate_spec), each at its own path.
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, table: t}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
    quality:
      - {type: not_null, columns: id}
      - {type: row_count, columns: [id]}
      - {type: uniqe, columns: [id], severity: fatal}
      - {type: min_rows}
      - {type: range, columns: [amount], min: 0, values: [1]}
)");
  ASSERT_EQ(problems.size(), 5u) << dump(problems);  // in file order
  EXPECT_EQ(problems[0].path, "streams[0].quality[1].columns");
  EXPECT_EQ(problems[1].path, "streams[0].quality[2].type");
  EXPECT_EQ(problems[1].suggestion, "unique");
  EXPECT_EQ(problems[2].path, "streams[0].quality[2].severity");
  EXPECT_EQ(problems[3].path, "streams[0].quality[3].min");
  EXPECT_EQ(problems[4].path, "streams[0].quality[4].values");
  EXPECT_NE(problems[4].message.find("'values' does not apply to a range gate"), std::string::npos) << dump(problems);

  auto m = testing::load_text(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, table: t}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
    quality:
      - {type: not_null, columns: [id, ts]}
      - {name: one_per_id, type: unique, columns: id, severity: warn}
)");
  const auto& q = m.streams[0].config["quality"];
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0]["name"], "not_null_id_ts");
  EXPECT_EQ(q[0]["severity"], "error");
  EXPECT_EQ(q[1]["name"], "one_per_id");
  EXPECT_EQ(q[1]["columns"], nlohmann::json::array({"id"}));
}

TEST(Validate, DescriptorOptionTypes) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source:
      connector: sqlite
      table: t
      columns:
        id: int64
        amount: decmal(10,2)
        note: text
    sink: {connector: files, path: o.csv, format: xml, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 2u) << dump(problems);
  EXPECT_EQ(problems[0].path, "streams[0].source.columns.amount");
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigBadValue);
  EXPECT_EQ(problems[1].path, "streams[0].sink.format");

  // In a flow map the comma splits `decimal(10,2)`: say so.
  problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, table: t, columns: {amount: decimal(10,2)}}
    sink: {connector: files, path: o.csv, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].path, "streams[0].source.columns.amount");
  EXPECT_NE(problems[0].message.find("quote the type"), std::string::npos) << problems[0].message;

  auto m = testing::load_text(dir, R"y(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, table: t, columns: {id: bigint, note: text, amount: "decimal(10,2)"}}
    sink: {connector: files, path: o.csv, strategy: {mode: append}}
)y");
  EXPECT_EQ(m.streams[0].config["source"]["columns"]["id"], "int64");  // canonical spelling
  EXPECT_EQ(m.streams[0].config["source"]["columns"]["note"], "string");
  EXPECT_EQ(m.streams[0].config["source"]["columns"]["amount"], "decimal(10,2)");
}

TEST(Validate, NeedsStreamsOrSchemasAndUniqueNames) {
  TempDir dir;
  auto problems = problems_of(dir, "kind: dpone.batch.v1\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigMissingKey);

  problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, table: t}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
  - name: a
    source: {connector: sqlite, table: u}
    sink: {connector: sqlite, table: u, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].path, "streams[1].name");
  EXPECT_EQ(problems[0].mark.line, 6);
}

TEST(Validate, DuplicateKeysAndUnquotedTemplates) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
vars: {t: x}
streams:
  - name: a
    name: b
    source: {connector: sqlite, table: {{ t }}}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 2u) << dump(problems);
  EXPECT_EQ(problems[0].path, "streams[0].name");
  EXPECT_EQ(problems[0].mark.line, 5);
  EXPECT_EQ(problems[1].code, ErrorCode::ConfigTemplate);
  EXPECT_EQ(problems[1].path, "streams[0].source.table");
  EXPECT_NE(problems[1].message.find("\"{{ t }}\""), std::string::npos);
}

TEST(Validate, SuggestionThresholds) {
  EXPECT_EQ(suggest("stratgy", {"strategy", "connector"}), "strategy");
  EXPECT_EQ(suggest("conector", {"connection", "connector"}), "connector");
  EXPECT_EQ(suggest("tabel", {"table"}), "table");  // transposition counts once
  EXPECT_EQ(suggest("xyz", {"table", "path"}), "");
  EXPECT_EQ(suggest("ab", {"xy"}), "");  // nothing in common
  EXPECT_EQ(suggest("shrink_gaurd_rati", {"shrink_guard_ratio"}), "shrink_guard_ratio");
  EXPECT_EQ(edit_distance("ca", "ac"), 1);
  EXPECT_EQ(edit_distance("Mode", "mode"), 0);
}

TEST(Reference, MarkdownIsGeneratedFromTheSchema) {
  std::string md = manifest_reference_markdown();
  EXPECT_NE(md.find("# Manifest reference"), std::string::npos);
  EXPECT_NE(md.find("| `kind` | one of: dpone.batch.v1 | yes |"), std::string::npos) << md;
  EXPECT_NE(md.find("`streams[].sink.strategy`"), std::string::npos) << md;
  EXPECT_NE(md.find("`streams[].quality[]`"), std::string::npos) << md;
  EXPECT_NE(md.find("| `mode` | one of: full_refresh, append, merge, replace, partition_replace, snapshot_diff, scd2 | yes |"), std::string::npos);
  EXPECT_NE(md.find("| `path` | string |  | `\".dpone/state.db\"` |"), std::string::npos) << md;
  // Every stream key of the schema is documented.
  for (const auto& [key, spec] : stream_schema()["keys"].items()) {
    EXPECT_NE(md.find("| `" + key + "` |"), std::string::npos) << key;
    EXPECT_TRUE(spec.contains("doc")) << key;
  }
}

}  // namespace
}  // namespace dpone
