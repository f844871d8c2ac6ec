#include "core/connector/catalog.hpp"

#include <gtest/gtest.h>

#include "core/connector/connection.hpp"
#include "core/errors.hpp"
#include "test_support.hpp"

namespace dpone {
namespace {

using testing::TempDir;

TEST(Catalog, ReadsDescriptorsFromIndex) {
  auto catalog = testing::test_catalog();
  ASSERT_EQ(catalog.all().size(), 3u);
  const auto* sqlite = catalog.find("sqlite");
  ASSERT_NE(sqlite, nullptr);
  EXPECT_EQ(sqlite->module, "libdpone_sqlite.so");
  EXPECT_EQ(sqlite->summary, "SQLite database file");
  EXPECT_TRUE(sqlite->built);
  EXPECT_TRUE(sqlite->has_source());
  EXPECT_TRUE(sqlite->has_sink());
  EXPECT_TRUE(sqlite->source_options().contains("cursor"));
  EXPECT_TRUE(sqlite->connection_fields()["password"]["secret"].get<bool>());
  EXPECT_EQ(sqlite->sink_strategies(),
            (std::vector<std::string>{"full_refresh", "append", "merge"}));
  const auto* pg = catalog.find("pgsource");
  ASSERT_NE(pg, nullptr);
  EXPECT_FALSE(pg->built);
  EXPECT_EQ(pg->reason, "libpq not found");
  EXPECT_FALSE(pg->has_sink());
  EXPECT_TRUE(pg->sink_strategies().empty());
  EXPECT_EQ(catalog.find("postgres"), nullptr);
  EXPECT_EQ(catalog.names(), (std::vector<std::string>{"sqlite", "files", "pgsource"}));
}

TEST(Catalog, LoadsFileAndReportsUnreadableIndex) {
  TempDir dir;
  auto index = dir.write("index.json", testing::test_index().dump());
  auto catalog = ConnectorCatalog::load(index);
  EXPECT_NE(catalog.find("files"), nullptr);

  try {
    ConnectorCatalog::load(dir.path() / "missing.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ModuleMissing);
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos);
  }
  auto bad = dir.write("bad.json", "{\"abi\": 1, \"connectors\": [");
  EXPECT_THROW(ConnectorCatalog::load(bad), Error);
  EXPECT_THROW(ConnectorCatalog::from_json(nlohmann::json{{"abi", 1}}), Error);
  EXPECT_THROW(ConnectorCatalog::from_json(nlohmann::json::parse(
                   R"({"connectors": [{"descriptor": {"summary": "no name"}}]})")),
               Error);
}

TEST(SecretFields, NamesAndSuffixes) {
  for (const char* f : {"password", "passwd", "secret", "token", "api_key", "apikey", "access_key",
                        "secret_key", "private_key", "client_secret", "credentials", "db_password",
                        "oauth_secret", "refresh_token", "ssh_key", "PASSWORD"}) {
    EXPECT_TRUE(is_secret_field(f)) << f;
  }
  for (const char* f : {"path", "host", "user", "table", "unique_key", "primary_key",
                        "partition_key", "keyspace", "password_file_hint_x", "_key"}) {
    EXPECT_FALSE(is_secret_field(f)) << f;
  }
}

}  // namespace
}  // namespace dpone
