// Connections from the file and the environment, ${env:}/${file:} references, and
// secrets kept out of every output.
#include "core/manifest/connections.hpp"

#include <gtest/gtest.h>

#include "core/manifest/manifest.hpp"
#include "core/manifest/option_spec.hpp"
#include "core/util/redactor.hpp"
#include "test_support.hpp"

namespace dpone {
namespace {

using testing::dump;
using testing::find_problem;
using testing::load_text;
using testing::problems_of;
using testing::ScopedEnv;
using testing::TempDir;

const char* kManifest = R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, connection: warehouse, table: t}
    sink: {connector: sqlite, connection: warehouse, table: u, strategy: {mode: append}}
)";

TEST(Connections, FromFileWithEnvReference) {
  TempDir dir;
  dir.write("connections.yaml", R"(connections:
  warehouse:
    type: sqlite
    path: wh.db
    password: "${env:DPONE_TEST_WH_PW}"
)");
  // Validation never resolves secrets: the variable may be unset.
  ::unsetenv("DPONE_TEST_WH_PW");
  auto m = load_text(dir, kManifest);
  EXPECT_EQ(m.connections_file, dir.path() / "connections.yaml");

  auto conns = ConnectionResolver::open(dir.path() / "connections.yaml");
  EXPECT_TRUE(conns.has("warehouse"));
  EXPECT_FALSE(conns.has("warehous"));
  EXPECT_EQ(conns.ids(), std::vector<std::string>{"warehouse"});
  EXPECT_EQ(conns.type_of("warehouse"), "sqlite");
  try {
    conns.resolve("warehouse");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SecretUnresolved);
    EXPECT_NE(std::string(e.what()).find("DPONE_TEST_WH_PW"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("password"), std::string::npos) << e.what();
  }

  ScopedEnv pw("DPONE_TEST_WH_PW", "Tr0ub4dor&3-wh");
  ResolvedConnection c = conns.resolve("warehouse");
  EXPECT_EQ(c.id, "warehouse");
  EXPECT_EQ(c.type, "sqlite");
  EXPECT_EQ(c.get("path"), "wh.db");
  EXPECT_FALSE(c.get("password").has_value());  // secrets are not plain fields
  ASSERT_NE(c.secret("password"), nullptr);
  EXPECT_EQ(c.secret("password")->reveal(), "Tr0ub4dor&3-wh");
  EXPECT_EQ(redact("login with Tr0ub4dor&3-wh"), "login with ***");

  try {
    conns.resolve("nowhere");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConnectionMissing);
    EXPECT_NE(std::string(e.what()).find("DPONE_CONN_NOWHERE_"), std::string::npos);
  }
}

TEST(Connections, EnvironmentDefinesAndOverrides) {
  TempDir dir;
  auto file = dir.write("connections.yaml", R"(connections:
  warehouse: {type: sqlite, path: file.db, timeout_ms: 100}
  my-db: {type: sqlite, path: my.db}
  db: {type: sqlite, path: db.db}
  db_replica: {type: sqlite, path: replica.db}
)");
  ScopedEnv a("DPONE_CONN_WAREHOUSE_PATH", "/srv/env.db");
  ScopedEnv b("DPONE_CONN_ANALYTICS_TYPE", "sqlite");
  ScopedEnv c("DPONE_CONN_ANALYTICS_PATH", "/srv/analytics.db");
  ScopedEnv d("DPONE_CONN_MY_DB_PATH", "/srv/my.db");
  ScopedEnv e("DPONE_CONN_DB_REPLICA_PATH", "/srv/replica.db");
  ScopedEnv f("DPONE_CONN_ONLYFIELDS_PATH", "/srv/x.db");
  auto conns = ConnectionResolver::open(file);

  EXPECT_EQ(conns.resolve("warehouse").get("path"), "/srv/env.db");
  EXPECT_EQ(conns.resolve("warehouse").get("timeout_ms"), "100");
  EXPECT_TRUE(conns.has("analytics"));
  EXPECT_TRUE(conns.has("ANALYTICS"));  // environment matching is case-insensitive
  EXPECT_EQ(conns.resolve("analytics").type, "sqlite");
  EXPECT_EQ(conns.resolve("analytics").get("path"), "/srv/analytics.db");
  EXPECT_EQ(conns.resolve("my-db").get("path"), "/srv/my.db");
  // DPONE_CONN_DB_REPLICA_PATH belongs to db_replica, not to db.
  EXPECT_EQ(conns.resolve("db").get("path"), "db.db");
  EXPECT_FALSE(conns.resolve("db").get("replica_path").has_value());
  EXPECT_EQ(conns.resolve("db_replica").get("path"), "/srv/replica.db");
  // Listed: file ids, then environment ids that have a type.
  EXPECT_EQ(conns.ids(),
            (std::vector<std::string>{"warehouse", "my-db", "db", "db_replica", "analytics"}));
  // Fields without a type: defined (has), but not resolvable and reported.
  EXPECT_TRUE(conns.has("onlyfields"));
  EXPECT_THROW(conns.resolve("onlyfields"), Error);
  auto catalog = testing::test_catalog();
  auto problems = conns.validate(catalog, "onlyfields");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigMissingKey);
  EXPECT_EQ(problems[0].mark.file, "$DPONE_CONN_ONLYFIELDS_PATH");
  EXPECT_TRUE(conns.validate(catalog).empty()) << dump(conns.validate(catalog));
}

TEST(Connections, ExplicitEnvironmentMap) {
  auto conns = ConnectionResolver::open(
      "/nonexistent/connections.yaml",
      {{"DPONE_CONN_LAKE_TYPE", "files"}, {"DPONE_CONN_LAKE_ROOT", "/data"}, {"HOME", "/root"}});
  EXPECT_EQ(conns.ids(), std::vector<std::string>{"lake"});
  EXPECT_EQ(conns.resolve("lake").get("root"), "/data");
}

TEST(Connections, FileReferencesAndUrlPasswords) {
  TempDir dir;
  dir.write("secrets/pw.txt", "file-secret-123\n");
  dir.write("secrets/dsn_pw.txt", "dsn-pass-456\n");
  auto file = dir.write("connections.yaml", R"(connections:
  w:
    type: sqlite
    path: "${file:secrets/pw.txt}"
    password: "pre-${file:secrets/pw.txt}-post"
    dsn: "postgres://loader:${file:secrets/dsn_pw.txt}@db.internal:5432/app"
    missing: "${file:secrets/none.txt}"
)");
  auto conns = ConnectionResolver::open(file);
  try {
    conns.resolve("w");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SecretUnresolved);
    EXPECT_NE(std::string(e.what()).find("none.txt"), std::string::npos) << e.what();
  }
  dir.write("secrets/none.txt", "now-there\n");
  auto c = conns.resolve("w");
  EXPECT_EQ(c.get("path"), "file-secret-123");  // trailing newline trimmed
  EXPECT_EQ(c.secret("password")->reveal(), "pre-file-secret-123-post");
  EXPECT_EQ(c.get("dsn"), "postgres://loader:dsn-pass-456@db.internal:5432/app");
  // The whole secret, the value its reference produced, and the URL's password.
  EXPECT_EQ(redact("pre-file-secret-123-post"), "***");
  EXPECT_EQ(redact("x file-secret-123 y"), "x *** y");
  EXPECT_EQ(redact("postgres://loader:dsn-pass-456@db"), "postgres://loader:***@db");
}

TEST(Connections, MissingConnectionIsAProblem) {
  TempDir dir;
  dir.write("connections.yaml", "connections:\n  warehouse: {type: sqlite, path: w.db}\n");
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, connection: warehous, table: t}
    sink: {connector: sqlite, connection: lake, table: u, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 2u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConnectionMissing);
  EXPECT_EQ(problems[0].path, "streams[0].source.connection");
  EXPECT_EQ(problems[0].mark.line, 4);
  EXPECT_EQ(problems[0].mark.column, 45);
  EXPECT_EQ(problems[0].suggestion, "warehouse");
  EXPECT_EQ(problems[1].path, "streams[0].sink.connection");
  EXPECT_NE(problems[1].message.find("DPONE_CONN_LAKE_"), std::string::npos);

  // An environment variable is enough to define it.
  ScopedEnv type("DPONE_CONN_LAKE_TYPE", "sqlite");
  ScopedEnv path("DPONE_CONN_LAKE_PATH", "lake.db");
  auto m = load_text(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, connection: warehouse, table: t}
    sink: {connector: sqlite, connection: lake, table: u, strategy: {mode: append}}
)");
  EXPECT_EQ(m.streams[0].config["sink"]["connection"], "lake");
}

TEST(Connections, FieldsAreValidatedAgainstTheConnector) {
  TempDir dir;
  dir.write("connections.yaml", R"(connections:
  warehouse:
    type: sqlite
    pasword: hunter2-in-file
    timeout_ms: "${env:DPONE_TEST_TIMEOUT}"
  lake:
    type: files
  other:
    type: sqlit
)");
  ScopedEnv t("DPONE_CONN_WAREHOUSE_TIMEOUT_MS", "soon");
  std::string what;
  auto problems = problems_of(dir, kManifest, &what);
  // The referenced connection: unknown field, missing required field, env value typed.
  auto* unknown = find_problem(problems, "connections.warehouse.pasword");
  ASSERT_NE(unknown, nullptr) << dump(problems);
  EXPECT_EQ(unknown->code, ErrorCode::ConfigUnknownKey);
  EXPECT_EQ(unknown->suggestion, "password");
  EXPECT_EQ(unknown->mark.line, 4);
  auto* path = find_problem(problems, "connections.warehouse.path");
  ASSERT_NE(path, nullptr) << dump(problems);
  EXPECT_EQ(path->code, ErrorCode::ConfigMissingKey);
  auto* timeout = find_problem(problems, "connections.warehouse.timeout_ms");
  ASSERT_NE(timeout, nullptr) << dump(problems);
  EXPECT_EQ(timeout->code, ErrorCode::ConfigWrongType);
  EXPECT_EQ(timeout->mark.to_string(), "$DPONE_CONN_WAREHOUSE_TIMEOUT_MS");
  EXPECT_EQ(what.find("hunter2-in-file"), std::string::npos) << what;
  // Unreferenced connections are not the manifest's problem, but validate() lists them.
  EXPECT_EQ(find_problem(problems, "connections.other.type"), nullptr);
  auto catalog = testing::test_catalog();
  auto conns = ConnectionResolver::open(dir.path() / "connections.yaml");
  auto all = conns.validate(catalog);
  auto* type = find_problem(all, "connections.other.type");
  ASSERT_NE(type, nullptr) << dump(all);
  EXPECT_EQ(type->suggestion, "sqlite");
  auto* lake = find_problem(all, "connections.lake.path");
  EXPECT_EQ(lake, nullptr) << dump(all);  // files declares no connection fields
}

TEST(Connections, TypeMustMatchTheConnector) {
  TempDir dir;
  dir.write("connections.yaml", "connections:\n  lake: {type: files}\n");
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: sqlite, connection: lake, table: t}
    sink: {connector: files, connection: lake, path: o.csv, strategy: {mode: append}}
)");
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].code, ErrorCode::ConfigBadValue);
  EXPECT_EQ(problems[0].path, "streams[0].source.connection");
}

TEST(Connections, ConnectionsFileLocation) {
  TempDir dir;
  auto manifest = dir.write("m.yaml", "kind: dpone.batch.v1\nconnections_file: conf/c.yaml\n");
  ::unsetenv("DPONE_CONNECTIONS");
  EXPECT_EQ(connections_file_for(manifest), dir.path() / "conf/c.yaml");
  auto plain = dir.write("p.yaml", "kind: dpone.batch.v1\n");
  EXPECT_EQ(connections_file_for(plain), dir.path() / "connections.yaml");
  ScopedEnv env("DPONE_CONNECTIONS", "/etc/dpone/connections.yaml");
  EXPECT_EQ(connections_file_for(manifest), "/etc/dpone/connections.yaml");
}

TEST(Connections, MalformedFileIsAnError) {
  TempDir dir;
  auto file = dir.write("connections.yaml", "connections:\n  a: {type: sqlite\n");
  try {
    ConnectionResolver::open(file);
    FAIL() << "expected an error";
  } catch (const ManifestError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].code, ErrorCode::ConfigYamlSyntax);
    EXPECT_EQ(e.problems()[0].mark.file, file.string());
  }
  auto catalog = testing::test_catalog();
  auto wrong = dir.write("c2.yaml", "conections: {}\n");
  auto problems = ConnectionResolver::open(wrong).validate(catalog);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].suggestion, "connections");
}

TEST(Secrets, NeverInRenderOrErrors) {
  TempDir dir;
  dir.write("connections.yaml", R"(connections:
  warehouse: {type: sqlite, path: w.db, password: "${env:DPONE_TEST_SECRET_PW}"}
)");
  ScopedEnv pw("DPONE_TEST_SECRET_PW", "pw-QX7-resolved");
  auto conns = ConnectionResolver::open(dir.path() / "connections.yaml");
  conns.resolve("warehouse");  // registers the secret, as a run would

  auto m = load_text(dir, R"(kind: dpone.batch.v1
vars: {token: inline-T0KEN-42}
streams:
  - name: a
    source:
      connector: sqlite
      connection: warehouse
      table: t
      where: "note <> 'pw-QX7-resolved'"
    sink:
      connector: sqlite
      table: u
      api_token: "{{ token }}"
      strategy: {mode: merge, unique_key: id}
)");
  std::string yaml = render_stream_yaml(m.streams[0]);
  EXPECT_EQ(yaml.find("pw-QX7-resolved"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("inline-T0KEN-42"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("api_token: \"***\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("unique_key: [id]"), std::string::npos) << yaml;  // a key, not a secret
  EXPECT_EQ(explain(m.streams[0], "sink.api_token").value, "***");
  EXPECT_EQ(explain(m.streams[0], "sink").value["api_token"], "***");
  // Written into the manifest as a secret: masked in any later output too.
  EXPECT_EQ(redact("token=inline-T0KEN-42"), "token=***");

  // A problem whose text would carry a secret value.
  std::string what;
  auto problems = problems_of(dir, R"(kind: dpone.batch.v1
streams:
  - name: a
    source: {connector: pw-QX7-resolved, table: t}
    sink: {connector: sqlite, table: u, password: [x], strategy: {mode: append}}
)",
                              &what);
  ASSERT_FALSE(problems.empty());
  EXPECT_EQ(what.find("pw-QX7-resolved"), std::string::npos) << what;
  for (const auto& p : problems) {
    EXPECT_EQ(p.to_string().find("pw-QX7-resolved"), std::string::npos) << p.to_string();
  }
  // A bad enum value of a secret-named option is not quoted back.
  SpecContext ctx;
  std::vector<Problem> out;
  ctx.problems = &out;
  std::vector<Problem> parse_problems;
  auto node = parse_yaml("password: hunter2-enum\n", "x.yaml", parse_problems);
  validate_node(node, nlohmann::json::parse(R"({"type": "map", "keys": {"password":
                    {"type": "enum", "enum": ["a", "b"]}}})"),
                ctx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_string().find("hunter2"), std::string::npos) << out[0].to_string();
}

}  // namespace
}  // namespace dpone
