// The postgres state store against a real PostgreSQL server (DPONE_TEST_PG_DSN): the
// StateStore contract (get, compare-and-set commit, list, history with every action)
// and the commit inside the postgres sink's promotion transaction. Without the server
// the tests fail when CI=true or DPONE_REQUIRE_SERVICES=1, and are skipped otherwise.
// Each test keeps its state and tables in its own schemas, dropped at the end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "connectors/postgres/pg_connector.hpp"
#include "connectors/postgres/pg_state_store.hpp"
#include "core/errors.hpp"

using dpone::Error;
using dpone::ErrorCode;
using dpone::ResolvedConnection;
using dpone::pg::PgConnection;
using nlohmann::json;

namespace {

// The request as a run planning now sends it (the receipt compare-and-set).
dpone::PromoteRequest& planned(dpone::Sink& sink, dpone::PromoteRequest& req) {
  req.expected_latest_receipt = dpone::newest_receipt_run_id(sink);
  return req;
}

std::optional<ResolvedConnection> dsn_connection() {
  const char* dsn = std::getenv("DPONE_TEST_PG_DSN");
  if (!dsn || !*dsn) return std::nullopt;
  ResolvedConnection c;
  c.id = "test_pg";
  c.type = "postgres";
  std::istringstream in(dsn);
  std::string part;
  while (in >> part) {
    auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    std::string k = part.substr(0, eq), v = part.substr(eq + 1);
    if (k == "password") {
      c.secrets[k] = dpone::Secret(v);
    } else {
      c.fields[k] = v;
    }
  }
  return c;
}

bool services_required() {
  const char* ci = std::getenv("CI");
  const char* req = std::getenv("DPONE_REQUIRE_SERVICES");
  return (ci && std::string(ci) == "true") || (req && std::string(req) == "1");
}

class PgStateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = dsn_connection();
    if (!c) {
      if (services_required()) FAIL() << "DPONE_TEST_PG_DSN is not set but services are required";
      GTEST_SKIP() << "DPONE_TEST_PG_DSN is not set: PostgreSQL tests skipped";
    }
    conn_ = *c;
    std::random_device rd;
    suffix_ = std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    state_schema_ = "dpone_st_" + suffix_;
    data_schema_ = "dpone_sd_" + suffix_;
    db_ = PgConnection::connect(conn_, ErrorCode::Internal, "test");
    db_->exec("CREATE SCHEMA " + data_schema_);
  }
  void TearDown() override {
    if (db_) {
      db_->exec("DROP SCHEMA IF EXISTS " + state_schema_ + " CASCADE");
      db_->exec("DROP SCHEMA IF EXISTS " + data_schema_ + " CASCADE");
    }
  }

  std::unique_ptr<dpone::StateStore> store(bool create = true) {
    dpone::StateStoreContext ctx;
    ctx.options = json{{"type", "postgres"}, {"connection", "test_pg"}, {"schema", state_schema_}};
    ctx.connection = &conn_;
    ctx.create = create;
    return dpone::make_postgres_state_store(ctx);
  }

  std::unique_ptr<dpone::Sink> sink(const std::string& run_id, const ResolvedConnection& conn) {
    dpone::SinkContext ctx;
    ctx.stream = "orders";
    ctx.run_id = run_id;
    ctx.options = json{{"table", "orders"}, {"schema", data_schema_}};
    ctx.connection = &conn;
    ctx.diagnostics = &diag_;
    return dpone::make_postgres_sink(ctx);
  }

  // Stages `ids` into data_schema_.orders and promotes them (append), asking the sink to
  // commit `commit` with the data.
  dpone::PromoteResult load(const std::string& run_id, std::vector<int> ids,
                            std::optional<dpone::StateCommitRequest> commit,
                            const ResolvedConnection* conn = nullptr) {
    auto s = sink(run_id, conn ? *conn : conn_);
    dpone::Schema schema;
    schema.columns.push_back(
        dpone::Column{"id", dpone::LogicalType::of(dpone::TypeId::Int64), false});
    auto target = s->inspect();
    dpone::SchemaChange create;
    create.kind = dpone::ChangeKind::CreateTable;
    create.safe = true;
    std::vector<const dpone::SchemaChange*> changes;
    if (!target.exists) changes.push_back(&create);
    dpone::RecordBatch batch(1);
    for (int id : ids) batch.append(std::to_string(id));
    dpone::InMemoryRows rows;
    rows.schema = schema;
    rows.batches.push_back(std::move(batch));
    auto staged = s->stage(std::move(rows), schema);
    dpone::PromoteRequest req;
    req.strategy = dpone::StrategySpec::from_json(json{{"mode", "append"}});
    req.changes = changes;
    req.source_schema = schema;
    req.receipt.stream = "orders";
    req.receipt.run_id = run_id;
    req.receipt.rows = staged.rows;
    req.receipt.new_position = commit ? commit->position : json();
    req.state_commit = std::move(commit);
    try {
      return s->promote(staged, planned(*s, req));
    } catch (...) {
      s->abort(staged);
      throw;
    }
  }

  int64_t target_rows() {
    return db_->query_int64("SELECT count(*) FROM " + data_schema_ + ".orders");
  }

  ResolvedConnection conn_;
  std::unique_ptr<PgConnection> db_;
  std::string suffix_, state_schema_, data_schema_;
  dpone::Diagnostics diag_;
};

TEST_F(PgStateStoreTest, ReadOnlyOpenDoesNotCreateTheTables) {
  EXPECT_EQ(store(false), nullptr);
  EXPECT_FALSE(dpone::pg::state_tables_exist(*db_, state_schema_));
  auto st = store(true);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(dpone::pg::state_tables_exist(*db_, state_schema_));
  EXPECT_EQ(st->describe(), "postgres:test_pg/" + state_schema_ + ".state");
  EXPECT_NE(store(false), nullptr);
}

TEST_F(PgStateStoreTest, CommitGetListAndHistory) {
  auto st = store();
  EXPECT_FALSE(st->get("orders").has_value());
  auto r1 = st->commit("orders", 0, json{{"cursor", 10}}, "run-1", "commit");
  EXPECT_EQ(r1.revision, 1);
  auto r2 = st->commit("orders", 1, json{{"cursor", 25}, {"note", "ü\ttab"}}, "run-2", "commit");
  EXPECT_EQ(r2.revision, 2);
  st->commit("customers", 0, json{{"xmin", 123456789012LL}}, "run-3", "commit");

  auto got = st->get("orders");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->revision, 2);
  EXPECT_EQ(got->position, (json{{"cursor", 25}, {"note", "ü\ttab"}}));
  EXPECT_EQ(got->run_id, "run-2");
  EXPECT_FALSE(got->updated_at.empty());

  auto all = st->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].stream, "customers");
  EXPECT_EQ(all[0].position, (json{{"xmin", 123456789012LL}}));
  EXPECT_EQ(all[1].stream, "orders");

  // set and reset are recorded with their action; reset stores a null position.
  st->commit("orders", 2, json{{"cursor", 5}}, "manual", "set");
  st->commit("orders", 3, json(), "manual", "reset");
  st->commit("orders", 4, json{{"cursor", 7}}, "run-9", "recover");
  auto h = st->history("orders");
  ASSERT_EQ(h.size(), 5u);
  std::vector<std::string> actions;
  for (const auto& e : h) actions.push_back(e.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"commit", "commit", "set", "reset", "recover"}));
  EXPECT_EQ(h[0].revision, 1);
  EXPECT_EQ(h[0].position, (json{{"cursor", 10}}));
  EXPECT_TRUE(h[3].position.is_null());
  EXPECT_EQ(h[4].revision, 5);
  EXPECT_EQ(st->get("orders")->position, (json{{"cursor", 7}}));
  EXPECT_TRUE(st->history("nobody").empty());

  // A second store object (another connection) sees the same state.
  EXPECT_EQ(store()->get("orders")->revision, 5);
}

TEST_F(PgStateStoreTest, CompareAndSetConflicts) {
  auto st = store();
  st->commit("orders", 0, json{{"cursor", 1}}, "run-1", "commit");
  try {
    st->commit("orders", 0, json{{"cursor", 2}}, "run-2", "commit");
    FAIL() << "a second first commit must conflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict);
    EXPECT_NE(std::string(e.what()).find("revision 1, expected 0"), std::string::npos) << e.what();
  }
  try {
    st->commit("orders", 7, json{{"cursor", 2}}, "run-2", "commit");
    FAIL() << "a stale revision must conflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict);
  }
  EXPECT_THROW(st->commit("orders", 1, json(), "x", "bogus"), Error);
  // Nothing of the failed commits is left.
  EXPECT_EQ(st->get("orders")->position, (json{{"cursor", 1}}));
  EXPECT_EQ(st->history("orders").size(), 1u);

  // Two stores racing from the same revision: exactly one wins.
  std::atomic<int> won{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto mine = store();
      try {
        mine->commit("orders", 1, json{{"cursor", 100 + i}}, "race-" + std::to_string(i), "commit");
        ++won;
      } catch (const Error& e) {
        if (e.code() == ErrorCode::StateConflict) ++conflicts;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(conflicts.load(), 3);
  EXPECT_EQ(st->get("orders")->revision, 2);
  EXPECT_EQ(st->history("orders").size(), 2u);
}

TEST_F(PgStateStoreTest, StoreOffersItsDatabaseForCommitsWithTheData) {
  auto st = store();
  auto target = st->transactional_target();
  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->connector, "postgres");
  EXPECT_EQ(target->connection_identity, dpone::connection_identity(conn_));
  EXPECT_EQ(target->location.value("schema", ""), state_schema_);
}

TEST_F(PgStateStoreTest, SinkCommitsStateInThePromotionTransaction) {
  auto st = store();
  auto request = [&](int64_t expected, int cursor, const std::string& run) {
    return dpone::StateCommitRequest{*st->transactional_target(), "orders", expected,
                                     json{{"cursor", cursor}},    run,      "commit"};
  };
  auto r1 = load("run-1", {1, 2, 3}, request(0, 3, "run-1"));
  ASSERT_TRUE(r1.state_committed.has_value());
  EXPECT_EQ(r1.state_committed->revision, 1);
  EXPECT_EQ(st->get("orders")->position, (json{{"cursor", 3}}));
  EXPECT_EQ(st->get("orders")->run_id, "run-1");
  EXPECT_EQ(target_rows(), 3);

  // A revision conflict rolls the whole promotion back: no rows, no state change.
  try {
    load("run-2", {4, 5}, request(0, 5, "run-2"));
    FAIL() << "expected StateConflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict) << e.what();
    EXPECT_NE(std::string(e.what()).find("rolled back"), std::string::npos) << e.what();
  }
  EXPECT_EQ(target_rows(), 3);
  EXPECT_EQ(st->get("orders")->revision, 1);
  EXPECT_EQ(db_->query_int64("SELECT count(*) FROM " + data_schema_ +
                             ".__dpone__loads WHERE run_id = 'run-2'"),
            0);

  auto r3 = load("run-3", {4, 5}, request(1, 5, "run-3"));
  ASSERT_TRUE(r3.state_committed.has_value());
  EXPECT_EQ(r3.state_committed->revision, 2);
  EXPECT_EQ(target_rows(), 5);
  EXPECT_EQ(st->history("orders").size(), 2u);

  // A store in another database (a different identity) is left to the runtime.
  auto other = request(2, 9, "run-4");
  other.target.connection_identity = "postgres:someone@elsewhere:5432/other";
  auto r4 = load("run-4", {6}, other);
  EXPECT_FALSE(r4.state_committed.has_value());
  EXPECT_EQ(target_rows(), 6);
  EXPECT_EQ(st->get("orders")->revision, 2);
}

}  // namespace
