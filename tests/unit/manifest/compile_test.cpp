// Merging, origins, explain, templates, schemas expansion, selection, render.
#include <gtest/gtest.h>

#include "core/manifest/manifest.hpp"
#include "test_support.hpp"

namespace dpone {
namespace {

using nlohmann::json;
using testing::dump;
using testing::find_problem;
using testing::load_text;
using testing::problems_of;
using testing::TempDir;

const char* kMerge = R"(kind: dpone.batch.v1
defaults:
  source:
    connector: sqlite
    batch_rows: 500
    columns:
      id: int64
      name: string
  sink:
    connector: sqlite
    strategy:
      mode: append
      unique_key: [id, region]
  quality:
    - {type: not_null, columns: id}
streams:
  - name: orders
    source:
      table: orders
      columns:
        name: varchar(20)
        total: decimal(10,2)
    sink:
      table: orders
      strategy:
        mode: merge
        unique_key: order_id
    quality:
      - {type: unique, columns: order_id}
  - name: plain
    source: {table: plain}
    sink: {table: plain}
)";

TEST(Merge, MapsDeepMergeScalarsAndListsReplace) {
  TempDir dir;
  auto m = load_text(dir, kMerge);
  ASSERT_EQ(m.streams.size(), 2u);
  const json& c = m.streams[0].config;
  // Maps merge key by key.
  EXPECT_EQ(c["source"]["connector"], "sqlite");
  EXPECT_EQ(c["source"]["batch_rows"], 500);
  EXPECT_EQ(c["source"]["columns"],
            (json{{"id", "int64"}, {"name", "varchar(20)"}, {"total", "decimal(10,2)"}}));
  // Scalars replace.
  EXPECT_EQ(c["sink"]["strategy"]["mode"], "merge");
  // Lists replace, never concatenate.
  EXPECT_EQ(c["sink"]["strategy"]["unique_key"], json::array({"order_id"}));
  ASSERT_EQ(c["quality"].size(), 1u);
  EXPECT_EQ(c["quality"][0]["type"], "unique");
  // Schema defaults.
  EXPECT_EQ(c["state"], (json{{"type", "sqlite"}, {"path", ".dpone/state.db"}}));
  EXPECT_EQ(c["schema_evolution"]["policy"], "widening");
  EXPECT_FALSE(c.contains("description"));

  const json& p = m.streams[1].config;
  EXPECT_EQ(p["sink"]["strategy"]["mode"], "append");
  EXPECT_EQ(p["sink"]["strategy"]["unique_key"], json::array({"id", "region"}));
  EXPECT_EQ(p["quality"][0]["type"], "not_null");
}

TEST(Merge, NullCancelsADefault) {
  TempDir dir;
  auto m = load_text(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: sqlite, table: t, cursor: updated_at}
  sink: {connector: sqlite, table: t, strategy: {mode: append}}
streams:
  - name: a
    source: {cursor: null}
)");
  EXPECT_FALSE(m.streams[0].config["source"].contains("cursor"));
  EXPECT_EQ(m.streams[0].config["source"]["table"], "t");
}

TEST(Origins, TrackDefaultsAndOverrides) {
  TempDir dir;
  auto m = load_text(dir, kMerge);
  const auto& s = m.streams[0];
  const auto& mode = s.origins.at("sink.strategy.mode");
  ASSERT_EQ(mode.size(), 2u);
  EXPECT_EQ(mode[0].from, "defaults.sink");
  EXPECT_EQ(mode[0].mark.line, 12);
  EXPECT_EQ(mode[0].mark.column, 13);
  EXPECT_EQ(mode[1].from, "streams[0]");
  EXPECT_EQ(mode[1].mark.line, 26);
  EXPECT_EQ(mode[1].mark.column, 15);
  const auto& connector = s.origins.at("sink.connector");
  ASSERT_EQ(connector.size(), 1u);
  EXPECT_EQ(connector[0].from, "defaults.sink");
  EXPECT_EQ(s.origins.at("state.path").back().from, "default");
  EXPECT_EQ(s.origins.at("quality").front().from, "defaults.quality");
  EXPECT_EQ(s.origins.at("quality").back().from, "streams[0]");

  // The second stream did not override: one origin, from defaults.
  EXPECT_EQ(m.streams[1].origins.at("sink.strategy.mode").size(), 1u);
}

TEST(Explain, ValueAndOriginsOfAPath) {
  TempDir dir;
  auto m = load_text(dir, kMerge);
  const auto& s = m.streams[0];
  Explanation e = explain(s, "sink.strategy.mode");
  EXPECT_EQ(e.value, "merge");
  ASSERT_EQ(e.origins.size(), 2u);
  EXPECT_EQ(e.origins.back().from, "streams[0]");
  EXPECT_EQ(e.origins.back().mark.to_string(), (dir.path() / "manifest.yaml").string() + ":26:15");

  // A map: the origins of its leaves.
  Explanation strategy = explain(s, "sink.strategy");
  EXPECT_EQ(strategy.value["mode"], "merge");
  EXPECT_GE(strategy.origins.size(), 3u);

  // Inside a list: the list's origins.
  Explanation gate = explain(s, "quality[0].columns");
  EXPECT_EQ(gate.value, json::array({"order_id"}));
  EXPECT_EQ(gate.origins.back().from, "streams[0]");

  try {
    explain(s, "sink.stratgy.mode");
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::ConfigBadValue);
    EXPECT_EQ(err.hint(), "did you mean 'sink.strategy.mode'?");
  }
}

TEST(Templates, VarsCliOverridesAndTypes) {
  TempDir dir;
  const char* yaml = R"(kind: dpone.batch.v1
vars:
  env: dev
  rows: 250
  keys: [id, day]
defaults:
  sink:
    connector: sqlite
    table: "{{ stream }}_{{env}}"
    strategy: {mode: merge, unique_key: "{{ keys }}"}
streams:
  - name: "orders_{{ env }}"
    source:
      connector: sqlite
      table: orders
      batch_rows: "{{ rows }}"
      where: "updated_at > '{{ state.cursor }}' and env = '{{ env }}'"
)";
  auto m = load_text(dir, yaml);
  const json& c = m.streams[0].config;
  EXPECT_EQ(m.streams[0].name, "orders_dev");
  EXPECT_EQ(c["sink"]["table"], "orders_dev_dev");
  EXPECT_EQ(c["source"]["batch_rows"], 250);  // the variable's type, not a string
  EXPECT_EQ(c["sink"]["strategy"]["unique_key"], json::array({"id", "day"}));
  EXPECT_EQ(c["source"]["where"], "updated_at > '{{ state.cursor }}' and env = 'dev'");
  const auto& rows = m.streams[0].origins.at("source.batch_rows");
  EXPECT_EQ(rows.back().from, "vars.rows (via template)");
  EXPECT_EQ(rows.back().mark.line, 4);

  auto cli = load_text(dir, yaml, {{"env", "prod"}, {"rows", "1000"}});
  EXPECT_EQ(cli.streams[0].name, "orders_prod");
  EXPECT_EQ(cli.streams[0].config["source"]["batch_rows"], 1000);
  EXPECT_EQ(cli.streams[0].origins.at("source.batch_rows").back().from, "--var rows");
  EXPECT_EQ(cli.vars["env"], "prod");
}

TEST(Templates, UnknownVariableIsReportedWhereWritten) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
vars: {environment: dev}
streams:
  - name: a
    source: {connector: sqlite, table: "t_{{ enviroment }}"}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigTemplate);
  EXPECT_EQ(problems[0].path, "streams[0].source.table");
  EXPECT_EQ(problems[0].mark.line, 5);
  EXPECT_EQ(problems[0].mark.column, 40);
  EXPECT_EQ(problems[0].suggestion, "environment");
}

TEST(Templates, TypedVariableIsValidated) {
  TempDir dir;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
vars: {rows: lots}
streams:
  - name: a
    source: {connector: sqlite, table: t, batch_rows: "{{ rows }}"}
    sink: {connector: sqlite, table: t, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigWrongType);
  EXPECT_EQ(problems[0].path, "streams[0].source.batch_rows");
}

TEST(Schemas, TablesExpandToStreams) {
  TempDir dir;
  auto m = load_text(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: sqlite}
  sink: {connector: sqlite, strategy: {mode: full_refresh}}
schemas:
  public:
    tables:
      - orders
      - name: customers
        description: "{{ schema }}/{{ table }} as {{ stream }}"
        sink: {table: dim_customers, strategy: {mode: merge, unique_key: id}}
streams:
  - name: extra
    source: {table: x}
    sink: {table: x}
)");
  ASSERT_EQ(m.streams.size(), 3u);
  EXPECT_EQ(m.streams[0].name, "extra");
  const auto& orders = m.streams[1];
  EXPECT_EQ(orders.name, "public.orders");
  EXPECT_EQ(orders.config["source"]["table"], "orders");
  // sqlite declares no `schema` source option, so none is added.
  EXPECT_FALSE(orders.config["source"].contains("schema"));
  EXPECT_EQ(orders.config["sink"]["table"], "orders");
  EXPECT_EQ(orders.config["sink"]["strategy"]["mode"], "full_refresh");
  EXPECT_EQ(orders.mark.line, 8);
  EXPECT_EQ(orders.origins.at("source.table").back().from, "schemas.public.tables[0]");
  const auto& customers = m.streams[2];
  EXPECT_EQ(customers.name, "public.customers");
  EXPECT_EQ(customers.config["sink"]["table"], "dim_customers");
  EXPECT_EQ(customers.config["sink"]["strategy"]["mode"], "merge");
  EXPECT_EQ(customers.config["description"], "public/customers as public.customers");
  EXPECT_EQ(customers.origins.at("sink.strategy.mode").back().from, "schemas.public.tables[1]");

  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: sqlite}
  sink: {connector: sqlite, strategy: {mode: append}}
schemas:
  public:
    tables:
      - orders
      - name: customers
        sink: {tabel: c}
      - {sink: {table: x}}
)");
  auto* p = find_problem(problems, "schemas.public.tables[1].sink.tabel");
  ASSERT_NE(p, nullptr) << dump(problems);
  EXPECT_EQ(p->suggestion, "table");
  EXPECT_NE(find_problem(problems, "schemas.public.tables[2].name"), nullptr) << dump(problems);
}

TEST(Schemas, SourceWithSchemaOptionGetsIt) {
  TempDir dir;
  auto m = load_text(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: pgsource}
  sink: {connector: sqlite, strategy: {mode: append}}
schemas:
  sales: {tables: [orders]}
)");
  ASSERT_EQ(m.streams.size(), 1u);
  EXPECT_EQ(m.streams[0].config["source"],
            (json{{"connector", "pgsource"}, {"schema", "sales"}, {"table", "orders"}}));
}

TEST(Schemas, SourceWithoutTableOptionIsReported) {
  TempDir dir;
  // files declares no `table` option: the expansion's `table` is reported, not dropped.
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: files, path: x.csv}
  sink: {connector: files, path: y.csv, strategy: {mode: append}}
schemas:
  s: {tables: [t]}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigUnknownKey);
  EXPECT_EQ(problems[0].path, "schemas.s.tables[0].source.table");
  EXPECT_EQ(problems[0].mark.line, 6);
}

TEST(Select, ExactNamesAndGlobs) {
  TempDir dir;
  auto m = load_text(dir, R"(kind: dpone.batch.v1
defaults:
  source: {connector: sqlite}
  sink: {connector: sqlite, strategy: {mode: append}}
schemas:
  sales: {tables: [orders, order_items, refunds]}
  crm: {tables: [contacts]}
)");
  auto names = [](const std::vector<const StreamSpec*>& v) {
    std::vector<std::string> out;
    for (const auto* s : v) out.push_back(s->name);
    return out;
  };
  EXPECT_EQ(m.select({}).size(), 4u);
  EXPECT_EQ(names(m.select({"sales.order*"})),
            (std::vector<std::string>{"sales.orders", "sales.order_items"}));
  EXPECT_EQ(names(m.select({"crm.contacts", "*.refund?"})),
            (std::vector<std::string>{"sales.refunds", "crm.contacts"}));
  EXPECT_EQ(names(m.select({"sales.*", "sales.orders"})).size(), 3u);  // no duplicates
  try {
    m.select({"sales.order"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SelectNoMatch);
    EXPECT_NE(std::string(e.what()).find("sales.orders, sales.order_items"), std::string::npos)
        << e.what();
  }
}

TEST(Render, ResolvedStreamAsYaml) {
  TempDir dir;
  auto m = load_text(dir, kMerge);
  std::string yaml = render_stream_yaml(m.streams[0]);
  EXPECT_EQ(yaml.rfind("name: orders\n", 0), 0u) << yaml;
  EXPECT_NE(yaml.find("mode: merge"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("unique_key: [order_id]"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("path: .dpone/state.db"), std::string::npos) << yaml;
  // The output is YAML that reads back to the same configuration.
  std::vector<Problem> ignored;
  auto back = parse_yaml(yaml, "render", ignored);
  EXPECT_TRUE(ignored.empty());
  EXPECT_EQ(back.to_json(), m.streams[0].config);
}

}  // namespace
}  // namespace dpone
