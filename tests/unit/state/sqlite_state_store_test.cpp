#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "core/errors.hpp"
#include "core/state/sqlite_handle.hpp"
#include "core/state/state_store.hpp"

namespace fs = std::filesystem;
using dpone::Error;
using dpone::ErrorCode;
using nlohmann::json;

namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dpone_state_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    path_ = (dir_ / "nested" / "state.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

TEST_F(StateStoreTest, CreatesParentDirectoriesAndStartsEmpty) {
  auto store = dpone::open_sqlite_state_store(path_);
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_EQ(store->describe(), "sqlite:" + path_);
  EXPECT_FALSE(store->get("orders").has_value());
  EXPECT_TRUE(store->list().empty());
  EXPECT_TRUE(store->history("orders").empty());

  dpone::SqliteDb db(path_, SQLITE_OPEN_READONLY, ErrorCode::Internal);
  EXPECT_EQ(db.query_text("PRAGMA journal_mode"), "wal");
}

TEST_F(StateStoreTest, CommitAdvancesRevisionAndKeepsTypedPosition) {
  auto store = dpone::open_sqlite_state_store(path_);
  auto s1 = store->commit("orders", 0, json{{"cursor", 42}}, "run-1", "commit");
  EXPECT_EQ(s1.revision, 1);
  EXPECT_EQ(s1.run_id, "run-1");
  EXPECT_FALSE(s1.updated_at.empty());

  auto s2 = store->commit("orders", 1, json{{"cursor", "2024-01-05T10:00:00"}}, "run-2", "commit");
  EXPECT_EQ(s2.revision, 2);

  auto got = store->get("orders");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->revision, 2);
  EXPECT_EQ(got->position, (json{{"cursor", "2024-01-05T10:00:00"}}));
  EXPECT_EQ(got->run_id, "run-2");
  EXPECT_EQ(got->updated_at, s2.updated_at);

  // The first position kept its JSON type (a number, not the string "42").
  auto hist = store->history("orders");
  ASSERT_EQ(hist.size(), 2u);
  EXPECT_TRUE(hist[0].position["cursor"].is_number_integer());
  EXPECT_EQ(hist[0].position["cursor"].get<int64_t>(), 42);
}

TEST_F(StateStoreTest, CompareAndSetConflictChangesNothing) {
  auto store = dpone::open_sqlite_state_store(path_);
  store->commit("orders", 0, json{{"cursor", 1}}, "run-1", "commit");

  try {
    store->commit("orders", 0, json{{"cursor", 99}}, "run-2", "commit");
    FAIL() << "expected StateConflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict);
    EXPECT_STREQ(e.what(),
                 "state of stream orders is at revision 1, expected 0: another run committed "
                 "first");
    EXPECT_FALSE(e.hint().empty());
  }
  // Expecting a revision ahead of the stored one is a conflict too.
  EXPECT_THROW(store->commit("orders", 5, json{{"cursor", 99}}, "run-3", "commit"), Error);
  // A stream never committed is at revision 0.
  EXPECT_THROW(store->commit("fresh", 1, json{{"cursor", 1}}, "run-4", "commit"), Error);

  auto got = store->get("orders");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->revision, 1);
  EXPECT_EQ(got->position, (json{{"cursor", 1}}));
  EXPECT_EQ(store->history("orders").size(), 1u);
  EXPECT_FALSE(store->get("fresh").has_value());
  EXPECT_TRUE(store->history("fresh").empty());
}

TEST_F(StateStoreTest, HistoryIsOldestFirstWithActions) {
  auto store = dpone::open_sqlite_state_store(path_);
  store->commit("s", 0, json{{"cursor", 10}}, "r1", "commit");
  store->commit("s", 1, json{{"cursor", 20}}, "r2", "recover");
  store->commit("s", 2, json{{"cursor", 5}}, "cli", "set");
  store->commit("s", 3, json(nullptr), "cli", "reset");
  store->commit("other", 0, json{{"cursor", 1}}, "r9", "commit");

  auto hist = store->history("s");
  ASSERT_EQ(hist.size(), 4u);
  std::vector<std::string> actions;
  for (size_t i = 0; i < hist.size(); ++i) {
    EXPECT_EQ(hist[i].revision, static_cast<int64_t>(i + 1));
    actions.push_back(hist[i].action);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"commit", "recover", "set", "reset"}));
  EXPECT_EQ(hist[1].run_id, "r2");
  EXPECT_EQ(hist[2].position, (json{{"cursor", 5}}));
  EXPECT_TRUE(hist[3].position.is_null());
  EXPECT_EQ(hist[3].to_json()["action"], "reset");

  auto all = store->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].stream, "other");
  EXPECT_EQ(all[1].stream, "s");
  EXPECT_EQ(all[1].revision, 4);
  EXPECT_TRUE(all[1].position.is_null());
  json j = all[1].to_json();
  EXPECT_EQ(j["stream"], "s");
  EXPECT_EQ(j["revision"], 4);
  EXPECT_TRUE(j.contains("updated_at"));
}

TEST_F(StateStoreTest, UnknownActionIsRejected) {
  auto store = dpone::open_sqlite_state_store(path_);
  EXPECT_THROW(store->commit("s", 0, json{{"cursor", 1}}, "r1", "comit"), Error);
  EXPECT_FALSE(store->get("s").has_value());
}

TEST_F(StateStoreTest, ReopenPersists) {
  {
    auto store = dpone::open_sqlite_state_store(path_);
    store->commit("orders", 0, json{{"cursor", 7}}, "run-1", "commit");
    store->commit("orders", 1, json{{"cursor", 8}}, "run-2", "commit");
  }
  auto store = dpone::open_sqlite_state_store(path_);
  auto got = store->get("orders");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->revision, 2);
  EXPECT_EQ(got->position, (json{{"cursor", 8}}));
  EXPECT_EQ(store->history("orders").size(), 2u);
  EXPECT_EQ(store->commit("orders", 2, json{{"cursor", 9}}, "run-3", "commit").revision, 3);
}

TEST_F(StateStoreTest, TwoHandlesSameExpectedRevisionOneWins) {
  auto a = dpone::open_sqlite_state_store(path_);
  auto b = dpone::open_sqlite_state_store(path_);
  a->commit("orders", 0, json{{"cursor", 1}}, "run-a", "commit");
  try {
    b->commit("orders", 0, json{{"cursor", 2}}, "run-b", "commit");
    FAIL() << "second handle must see the first handle's commit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict);
  }
  // b sees a's write.
  EXPECT_EQ(b->get("orders")->run_id, "run-a");
}

// Many threads, each with its own handle (its own connection), race to advance one
// stream. Every commit either wins exactly one revision or gets StateConflict: the
// final revision equals the number of wins and the history has no gaps or doubles.
TEST_F(StateStoreTest, ConcurrentCommitsFromSeveralHandlesNeverLoseUpdates) {
  dpone::open_sqlite_state_store(path_);  // create the file once
  constexpr int kThreads = 4;
  constexpr int kAttempts = 25;
  std::atomic<int> wins{0};
  std::atomic<int> conflicts{0};
  std::atomic<int> other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto store = dpone::open_sqlite_state_store(path_);
      for (int i = 0; i < kAttempts; ++i) {
        auto cur = store->get("hot");
        int64_t rev = cur ? cur->revision : 0;
        try {
          store->commit("hot", rev, json{{"cursor", t * 1000 + i}}, "t" + std::to_string(t),
                        "commit");
          ++wins;
        } catch (const Error& e) {
          if (e.code() == ErrorCode::StateConflict) {
            ++conflicts;
          } else {
            ++other_errors;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(wins + conflicts, kThreads * kAttempts);
  EXPECT_GT(wins.load(), 0);

  auto store = dpone::open_sqlite_state_store(path_);
  EXPECT_EQ(store->get("hot")->revision, wins.load());
  auto hist = store->history("hot");
  ASSERT_EQ(static_cast<int>(hist.size()), wins.load());
  for (size_t i = 0; i < hist.size(); ++i) EXPECT_EQ(hist[i].revision, static_cast<int64_t>(i + 1));
}

// One store object shared by threads: its mutex keeps transactions from interleaving.
TEST_F(StateStoreTest, SharedHandleIsThreadSafe) {
  auto store = dpone::open_sqlite_state_store(path_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string stream = "s" + std::to_string(t);
      for (int i = 0; i < 20; ++i) store->commit(stream, i, json{{"cursor", i}}, "r", "commit");
    });
  }
  for (auto& th : threads) th.join();
  auto all = store->list();
  ASSERT_EQ(all.size(), 4u);
  for (const auto& s : all) EXPECT_EQ(s.revision, 20);
}

TEST_F(StateStoreTest, CorruptPositionIsReportedNotThrownAsJsonError) {
  {
    auto store = dpone::open_sqlite_state_store(path_);
    store->commit("s", 0, json{{"cursor", 1}}, "r1", "commit");
  }
  {
    dpone::SqliteDb db(path_, SQLITE_OPEN_READWRITE, ErrorCode::Internal);
    db.exec("UPDATE dpone_state SET position = '{not json'");
  }
  auto store = dpone::open_sqlite_state_store(path_);
  try {
    store->get("s");
    FAIL() << "expected StateStoreFailed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateStoreFailed);
    EXPECT_NE(std::string(e.what()).find("stream 's'"), std::string::npos);
  }
}

TEST_F(StateStoreTest, UnwritableLocationIsStateStoreFailed) {
  fs::create_directories(dir_);
  // A regular file where a directory is needed.
  std::string blocker = (dir_ / "file").string();
  {
    std::FILE* f = std::fopen(blocker.c_str(), "w");
    std::fclose(f);
  }
  try {
    dpone::open_sqlite_state_store(blocker + "/sub/state.db");
    FAIL() << "expected StateStoreFailed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateStoreFailed);
  }
}

TEST(SqliteHandle, ErrorsCarryCodeMessageAndSql) {
  dpone::SqliteDb db(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                     ErrorCode::SourceReadFailed);
  try {
    db.exec("SELECT * FROM missing_table");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SourceReadFailed);
    std::string msg = e.what();
    EXPECT_NE(msg.find("no such table: missing_table"), std::string::npos) << msg;
    EXPECT_NE(msg.find("SELECT * FROM missing_table"), std::string::npos) << msg;
  }
  EXPECT_THROW(db.prepare("SELECT 1; SELECT 2"), Error);
  EXPECT_NO_THROW(db.prepare("SELECT 1; -- trailing comment\n ;  "));
  EXPECT_EQ(dpone::quote_ident("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(dpone::quote_literal("it's"), "'it''s'");
}

TEST(SqliteHandle, StatementBindStepAndTransactionRollback) {
  dpone::SqliteDb db(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ErrorCode::Internal);
  db.exec("CREATE TABLE t (a, b, c, d, e)");
  {
    dpone::SqliteTransaction txn(db, "BEGIN");
    auto ins = db.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
    ins.bind_text(1, std::string_view("x\0y", 3)).bind_int64(2, -5).bind_double(3, 2.5);
    ins.bind_blob(4, "").bind_null(5);
    EXPECT_EQ(ins.run(), 1);
    txn.commit();
  }
  {
    dpone::SqliteTransaction txn(db, "BEGIN");
    db.exec("DELETE FROM t");
    // destroyed without commit: rolled back
  }
  auto q = db.prepare("SELECT a, b, c, d, e FROM t");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.column_text(0), std::string_view("x\0y", 3));
  EXPECT_EQ(q.column_int64(1), -5);
  EXPECT_DOUBLE_EQ(q.column_double(2), 2.5);
  EXPECT_EQ(q.column_type(3), SQLITE_BLOB);  // empty blob stays a blob, not NULL
  EXPECT_TRUE(q.column_is_null(4));
  EXPECT_FALSE(q.step());
  EXPECT_TRUE(db.autocommit());
}

}  // namespace
