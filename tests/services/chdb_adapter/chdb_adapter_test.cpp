// The ClickHouse 26 test service (scripts/services/clickhouse26.sh): dpone_chdb_adapter in
// front of libchdb, reached through DPONE_TEST_CH26_URL. Skipped when that service does not
// run: it is opt-in and not part of scripts/test.sh.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <random>
#include <string>

namespace {

struct Url {
  std::string host;
  int port = 0;
};

Url service() {
  const char* env = std::getenv("DPONE_TEST_CH26_URL");
  Url u;
  if (!env) return u;
  std::string s = env;
  const std::string scheme = "http://";
  if (s.rfind(scheme, 0) == 0) s = s.substr(scheme.size());
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return u;
  u.host = s.substr(0, colon);
  u.port = std::atoi(s.c_str() + colon + 1);
  return u;
}

#define REQUIRE_CH26()                                                                \
  do {                                                                                \
    if (service().port == 0)                                                          \
      GTEST_SKIP() << "no ClickHouse 26 service: DPONE_TEST_CH26_URL is not set "     \
                      "(scripts/services.sh start clickhouse26, then source env.sh)"; \
  } while (0)

std::string enc(const std::string& s) {
  return httplib::detail::encode_query_param(s);
}

class ChdbAdapter : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_CH26();
    cli_ = std::make_unique<httplib::Client>(service().host, service().port);
    cli_->set_read_timeout(60, 0);
    std::random_device rd;
    db_ = "dpone_chdb_" + std::to_string(rd() % 1000000000);
    ASSERT_EQ(post("CREATE DATABASE " + db_)->status, 200);
  }
  void TearDown() override {
    if (cli_) post("DROP DATABASE IF EXISTS " + db_);
  }

  httplib::Result post(const std::string& sql, const std::string& params = "") {
    return cli_->Post(("/?" + params).c_str(), sql, "text/plain");
  }

  std::unique_ptr<httplib::Client> cli_;
  std::string db_;
};

TEST_F(ChdbAdapter, PingAnswersOk) {
  auto r = cli_->Get("/ping");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Ok.\n");
}

TEST_F(ChdbAdapter, CreateInsertSelectRoundTripWithDatabaseParameter) {
  ASSERT_EQ(
      post("CREATE TABLE t (id UInt64, s String) ENGINE = MergeTree ORDER BY id", "database=" + db_)
          ->status,
      200);
  // The statement in `query`, the data in the body, as clients stream an INSERT.
  auto ins = post("2\tb\\tc\n1\ta\n3\t\n",
                  "database=" + db_ + "&query=" + enc("INSERT INTO t FORMAT TabSeparated"));
  ASSERT_TRUE(ins);
  ASSERT_EQ(ins->status, 200) << ins->body;
  EXPECT_NE(ins->get_header_value("X-ClickHouse-Summary").find("\"written_rows\":\"3\""),
            std::string::npos)
      << ins->get_header_value("X-ClickHouse-Summary");
  auto sel = post("SELECT id, s FROM " + db_ + ".t ORDER BY id");
  ASSERT_EQ(sel->status, 200) << sel->body;
  EXPECT_EQ(sel->body, "1\ta\n2\tb\\tc\n3\t\n");
  // default_format applies to a statement without FORMAT.
  auto json = post("SELECT toUInt8(count()) AS n FROM " + db_ + ".t", "default_format=JSONEachRow");
  EXPECT_EQ(json->body, "{\"n\":3}\n");
  // An INSERT without data inserts nothing, as on a server (libchdb alone refuses it).
  auto empty = post("", "query=" + enc("INSERT INTO " + db_ + ".t FORMAT TabSeparated"));
  EXPECT_EQ(empty->status, 200) << empty->body;
}

TEST_F(ChdbAdapter, ErrorsCarryTheExceptionCodeAndTheServersStatus) {
  auto unknown = post("SELECT * FROM " + db_ + ".no_such_table");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->get_header_value("X-ClickHouse-Exception-Code"), "60");
  EXPECT_NE(unknown->body.find("UNKNOWN_TABLE"), std::string::npos) << unknown->body;
  auto syntax = post("SELEKT 1");
  EXPECT_EQ(syntax->status, 400);
  EXPECT_EQ(syntax->get_header_value("X-ClickHouse-Exception-Code"), "62");
  auto db = post("SELECT 1", "database=" + enc("no such`db"));
  EXPECT_EQ(db->status, 404);
  EXPECT_EQ(db->get_header_value("X-ClickHouse-Exception-Code"), "81");
  auto setting = post("SELECT 1", "no_such_setting=1");
  EXPECT_EQ(setting->status, 404);
  EXPECT_EQ(setting->get_header_value("X-ClickHouse-Exception-Code"), "115");
}

TEST_F(ChdbAdapter, SettingsApplyToOneRequestAndServerDefaultsHold) {
  auto one = post("SELECT getSetting('max_block_size')", "max_block_size=1234");
  EXPECT_EQ(one->body, "1234\n");
  auto after = post("SELECT getSetting('max_block_size')");
  EXPECT_NE(after->body, "1234\n");
  // libchdb's own defaults differ; the adapter puts a server's back.
  auto defaults = post(
      "SELECT getSetting('mutations_sync'), getSetting('async_insert'), "
      "getSetting('date_time_input_format')");
  EXPECT_EQ(defaults->body, "0\tfalse\tbasic\n");
}

// libcurl and curl send a POST body as application/x-www-form-urlencoded unless told
// otherwise; a server still reads it as the statement's data, whatever its size.
TEST_F(ChdbAdapter, FormEncodedBodyIsDataWhateverItsSize) {
  ASSERT_EQ(post("CREATE TABLE " + db_ + ".f (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
                ->status,
            200);
  std::string rows;
  for (int i = 1; i <= 20000; ++i) rows += std::to_string(i) + "\ta=b&c\n";
  auto r = cli_->Post(("/?query=" + enc("INSERT INTO " + db_ + ".f FORMAT TabSeparated")).c_str(),
                      rows, "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(post("SELECT count(), sum(id), any(s) FROM " + db_ + ".f")->body,
            "20000\t200010000\ta=b&c\n");
}

TEST_F(ChdbAdapter, QueryParametersAreBound) {
  auto r = post("SELECT {x:UInt32} + 1, {s:String}", "param_x=41&param_s=" + enc("a b'c"));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "42\ta b\\'c\n");
}

TEST_F(ChdbAdapter, GzipChunkedBodyIsDecompressed) {
  ASSERT_EQ(post("CREATE TABLE " + db_ + ".g (id UInt64) ENGINE = MergeTree ORDER BY id")->status,
            200);
  std::string rows;
  for (int i = 1; i <= 1000; ++i) rows += std::to_string(i) + "\n";
  cli_->set_compress(true);  // Content-Encoding: gzip
  std::string path = "/?query=" + enc("INSERT INTO " + db_ + ".g FORMAT TabSeparated");
  size_t sent = 0;
  auto r = cli_->Post(
      path.c_str(),
      [&](size_t, httplib::DataSink& sink) {  // no length known: chunked
        size_t n = std::min<size_t>(997, rows.size() - sent);
        sink.write(rows.data() + sent, n);
        sent += n;
        if (sent == rows.size()) sink.done();
        return true;
      },
      "text/plain");
  cli_->set_compress(false);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(post("SELECT count(), sum(id) FROM " + db_ + ".g")->body, "1000\t500500\n");
}

}  // namespace
