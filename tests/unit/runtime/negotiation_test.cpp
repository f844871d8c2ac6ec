// Artifact negotiation with the internal query (runtime/negotiation.hpp) and the state
// locations of module stores (runtime/project.hpp).
#include "runtime/negotiation.hpp"

#include <gtest/gtest.h>

#include "core/connector/connection.hpp"
#include "core/errors.hpp"
#include "runtime/project.hpp"

namespace {

using dpone::ArtifactContext;
using dpone::ArtifactKind;
using dpone::ArtifactSpec;
using dpone::WireFormat;

const ArtifactSpec kInternal{ArtifactKind::InternalQuery};
const ArtifactSpec kBinary{ArtifactKind::StreamingRows, WireFormat::PgCopyBinary};
const ArtifactSpec kText{ArtifactKind::StreamingRows, WireFormat::PgCopyText};
const ArtifactSpec kBatches{ArtifactKind::StreamingRows, WireFormat::RecordBatch};

const std::vector<ArtifactSpec> kOffered{kInternal, kText, kBatches};
const std::vector<ArtifactSpec> kAccepted{kInternal, kBinary, kText, kBatches};
const std::string kDb = "postgres:app@10.0.0.5:5432/shop";

TEST(Negotiation, InternalQueryWhenBothSidesAreTheSameDatabase) {
  auto d = dpone::negotiate(kOffered, kAccepted, ArtifactContext{kDb, kDb, ""});
  EXPECT_EQ(d.sink_spec, kInternal);
  EXPECT_EQ(d.source_spec, kInternal);
  EXPECT_EQ(d.reason.rfind("source and sink are the same PostgreSQL database "
                           "app@10.0.0.5:5432/shop:",
                           0),
            0u)
      << d.reason;
  EXPECT_EQ(d.to_json()["sink_receives"], "internal_query");
}

TEST(Negotiation, OtherDatabasesFallBackToCopyAndSayWhy) {
  auto d = dpone::negotiate(kOffered, kAccepted,
                            ArtifactContext{kDb, "postgres:app@10.0.0.6:5432/shop", ""});
  EXPECT_EQ(d.sink_spec, kText);
  EXPECT_NE(d.reason.find("internal_query not used: source and sink are different databases"),
            std::string::npos)
      << d.reason;
  // An empty identity (e.g. no connection) never matches, not even another empty one.
  EXPECT_EQ(dpone::negotiate(kOffered, kAccepted, ArtifactContext{"", "", ""}).sink_spec, kText);
  // The lists recorded are the eligible ones: the sink's first is its native COPY input
  // (what `perf advise` compares with the path taken).
  EXPECT_EQ(d.offered, (std::vector<ArtifactSpec>{kText, kBatches}));
  EXPECT_EQ(d.accepted, (std::vector<ArtifactSpec>{kBinary, kText, kBatches}));
}

TEST(Negotiation, ARefusalWinsOverTheSameDatabase) {
  auto d = dpone::negotiate(kOffered, kAccepted,
                            ArtifactContext{kDb, kDb, "gate rc (row_count) must see the rows"});
  EXPECT_EQ(d.sink_spec, kText);
  EXPECT_NE(d.reason.find("internal_query not used: gate rc (row_count)"), std::string::npos);
}

TEST(Negotiation, OneSidedInternalQueryIsIgnoredQuietly) {
  // A sink that opted out (internal_query: false) lists no internal query.
  auto d = dpone::negotiate(kOffered, {kBinary, kText, kBatches}, ArtifactContext{kDb, kDb, ""});
  EXPECT_EQ(d.sink_spec, kText);
  EXPECT_EQ(d.reason.find("internal_query"), std::string::npos) << d.reason;
  // A source that cannot offer anything else still fails clearly.
  EXPECT_THROW(dpone::negotiate({kInternal}, {kBatches}, ArtifactContext{kDb, kDb, ""}),
               dpone::Error);
}

TEST(ConnectionIdentity, NamesUserServerAndDatabaseWithoutSecrets) {
  dpone::ResolvedConnection c;
  c.type = "postgres";
  c.fields = {{"host", "db1"}, {"port", "5433"}, {"user", "etl"}, {"dbname", "dw"}, {"sslmode", "require"}};
  c.secrets["password"] = dpone::Secret("hunter2");
  EXPECT_EQ(dpone::connection_identity(c), "postgres:etl@db1:5433/dw");
  dpone::ResolvedConnection files;
  files.type = "files";
  EXPECT_EQ(dpone::connection_identity(files), "");
}

TEST(StateLocation, ModuleStoresAreNamedByConnectionAndSchema) {
  auto pg = dpone::state_location(
      nlohmann::json{{"state", {{"type", "postgres"}, {"connection", "wh"}, {"schema", "ops"}}}}, "/p");
  EXPECT_EQ(pg.type, "postgres");
  EXPECT_EQ(pg.connection, "wh");
  EXPECT_EQ(pg.describe(), "postgres:wh/ops.state");
  auto pg_default = dpone::state_location(
      nlohmann::json{{"state", {{"type", "postgres"}, {"connection", "wh"}}}}, "/p");
  EXPECT_EQ(pg_default.describe(), "postgres:wh/dpone.state");
  EXPECT_FALSE(pg == pg_default);
  auto lite = dpone::state_location(nlohmann::json::object(), "/p");
  EXPECT_EQ(lite.describe(), "sqlite:/p/.dpone/state.db");
  // A module store without a connection is a configuration error, before any module loads.
  auto bad = dpone::state_location(nlohmann::json{{"state", {{"type", "postgres"}}}}, "/p");
  try {
    dpone::open_state(bad);
    FAIL() << "expected ConfigMissingKey";
  } catch (const dpone::Error& e) {
    EXPECT_EQ(e.code(), dpone::ErrorCode::ConfigMissingKey);
    EXPECT_NE(std::string(e.what()).find("state.connection"), std::string::npos) << e.what();
  }
}

}  // namespace
