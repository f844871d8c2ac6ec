#include "core/evolution/schema_diff.hpp"

#include <gtest/gtest.h>

using namespace dpone;

namespace {
Schema make(std::vector<Column> cols) { return Schema{std::move(cols), {}}; }
Column col(std::string n, std::string t, bool nullable = true) {
  return Column{std::move(n), *LogicalType::parse(t), nullable};
}
}  // namespace

TEST(SchemaDiff, MissingTargetIsCreate) {
  auto d = compare_schemas(make({col("id", "int64")}), std::nullopt, EvolutionPolicy::Widening);
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0].kind, ChangeKind::CreateTable);
  EXPECT_FALSE(d.has_unsafe());
}

TEST(SchemaDiff, IdenticalHasNoChanges) {
  auto s = make({col("id", "int64"), col("name", "string")});
  EXPECT_TRUE(compare_schemas(s, s, EvolutionPolicy::Strict).changes.empty());
}

TEST(SchemaDiff, NewNullableColumnIsSafeExceptStrict) {
  auto target = make({col("id", "int64")});
  auto source = make({col("id", "int64"), col("tier", "string")});
  auto d = compare_schemas(source, target, EvolutionPolicy::Widening);
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0].kind, ChangeKind::AddColumn);
  EXPECT_TRUE(d.changes[0].safe);
  EXPECT_EQ(d.to_apply().size(), 1u);
  EXPECT_TRUE(compare_schemas(source, target, EvolutionPolicy::Additive).changes[0].safe);
  EXPECT_FALSE(compare_schemas(source, target, EvolutionPolicy::Strict).changes[0].safe);
}

TEST(SchemaDiff, NewNotNullColumnIsUnsafe) {
  auto d = compare_schemas(make({col("id", "int64"), col("x", "int64", false)}),
                           make({col("id", "int64")}), EvolutionPolicy::Widening);
  EXPECT_TRUE(d.has_unsafe());
}

TEST(SchemaDiff, WideningOnlyUnderWideningPolicy) {
  auto target = make({col("n", "int32"), col("s", "varchar(10)"), col("d", "decimal(10,2)")});
  auto source = make({col("n", "int64"), col("s", "varchar(20)"), col("d", "decimal(12,2)")});
  auto d = compare_schemas(source, target, EvolutionPolicy::Widening);
  ASSERT_EQ(d.changes.size(), 3u);
  for (auto& c : d.changes) {
    EXPECT_EQ(c.kind, ChangeKind::WidenType);
    EXPECT_TRUE(c.safe);
  }
  EXPECT_TRUE(compare_schemas(source, target, EvolutionPolicy::Additive).has_unsafe());
}

TEST(SchemaDiff, NarrowingDropTypeChangeAreUnsafe) {
  auto target = make({col("n", "int64"), col("gone", "string"), col("t", "date")});
  auto source = make({col("n", "int32"), col("t", "bool")});
  auto d = compare_schemas(source, target, EvolutionPolicy::Widening);
  ASSERT_EQ(d.unsafe().size(), 3u);
  EXPECT_EQ(d.changes[0].kind, ChangeKind::NarrowType);
  EXPECT_EQ(d.changes[1].kind, ChangeKind::ChangeType);
  EXPECT_EQ(d.changes[2].kind, ChangeKind::DropColumn);
  EXPECT_NE(d.changes[2].to_string().find("gone"), std::string::npos);
}

TEST(SchemaDiff, RenameIsReportedAsOneChange) {
  auto d = compare_schemas(make({col("id", "int64"), col("email_address", "string")}),
                           make({col("id", "int64"), col("email", "string")}),
                           EvolutionPolicy::Widening);
  ASSERT_EQ(d.changes.size(), 1u);
  EXPECT_EQ(d.changes[0].kind, ChangeKind::PossibleRename);
  EXPECT_EQ(d.changes[0].detail, "email -> email_address");
  EXPECT_FALSE(d.changes[0].safe);
}

TEST(SchemaDiff, NullabilityChangesAreUnsafe) {
  auto d1 = compare_schemas(make({col("a", "int64", true)}), make({col("a", "int64", false)}),
                            EvolutionPolicy::Widening);
  EXPECT_TRUE(d1.has_unsafe());
  auto d2 = compare_schemas(make({col("a", "int64", false)}), make({col("a", "int64", true)}),
                            EvolutionPolicy::Widening);
  EXPECT_TRUE(d2.has_unsafe());
}

TEST(LogicalType, ParseAndPrintRoundTrip) {
  for (std::string t : {"bool", "int16", "int32", "int64", "float32", "float64", "decimal(12,2)",
                        "string", "varchar(20)", "bytes", "date", "time", "timestamp",
                        "timestamp(3)", "timestamptz", "json", "uuid"}) {
    auto p = LogicalType::parse(t);
    ASSERT_TRUE(p) << t;
    EXPECT_EQ(p->to_string(), t);
  }
  EXPECT_FALSE(LogicalType::parse("varchar(x)"));
  EXPECT_FALSE(LogicalType::parse("decimal(2,5)"));
  EXPECT_FALSE(LogicalType::parse("integr"));
}

TEST(SchemaDiff, OnTypeChangeNewColumnRoutesIncompatibleChange) {
  auto target = make({col("id", "int64", false), col("qty", "int32"), col("name", "string")});
  auto source = make({col("id", "int64", false), col("qty", "string"), col("name", "string")});
  // Default (fail): one unsafe change_type.
  auto failing = compare_schemas(source, target, EvolutionPolicy::Widening);
  ASSERT_EQ(failing.changes.size(), 1u);
  EXPECT_EQ(failing.changes[0].kind, ChangeKind::ChangeType);
  EXPECT_TRUE(failing.routes.empty());

  auto d = compare_schemas(source, target, EvolutionPolicy::Additive, OnTypeChange::NewColumn);
  ASSERT_EQ(d.routes.size(), 1u);
  EXPECT_EQ(d.routes[0].column, "qty");
  EXPECT_EQ(d.routes[0].target, "__dpone__nc__qty");
  EXPECT_EQ(d.routes[0].detail, "int32 -> string");
  ASSERT_EQ(d.changes.size(), 1u);  // no drop of qty: the target keeps it
  EXPECT_EQ(d.changes[0].kind, ChangeKind::AddColumn);
  EXPECT_EQ(d.changes[0].column, "__dpone__nc__qty");
  EXPECT_EQ(d.changes[0].routed_from, "qty");
  EXPECT_TRUE(d.changes[0].safe);
  EXPECT_EQ(d.changes[0].to_string(),
            "add column __dpone__nc__qty (string, nullable) for the values of qty (on_type_change: new_column)");
  Schema routed = d.route(source);
  EXPECT_EQ(routed.names(), (std::vector<std::string>{"id", "__dpone__nc__qty", "name"}));
  EXPECT_TRUE(routed.columns[1].nullable);
  EXPECT_EQ(d.to_json()[0]["routed_from"], "qty");

  // Strict: the new column is drift, so unsafe.
  EXPECT_TRUE(compare_schemas(source, target, EvolutionPolicy::Strict, OnTypeChange::NewColumn).has_unsafe());
}

TEST(SchemaDiff, OnTypeChangeNewColumnReusesExistingColumn) {
  auto target = make({col("id", "int64"), col("qty", "int32"), col("__dpone__nc__qty", "varchar(10)")});
  // Same type as the routed column: nothing to change, the route stays.
  auto same = compare_schemas(make({col("id", "int64"), col("qty", "varchar(10)")}), target,
                              EvolutionPolicy::Strict, OnTypeChange::NewColumn);
  EXPECT_TRUE(same.changes.empty());
  ASSERT_EQ(same.routes.size(), 1u);
  // A wider type: a widening of the routed column, named as such.
  auto wider = compare_schemas(make({col("id", "int64"), col("qty", "varchar(20)")}), target,
                               EvolutionPolicy::Widening, OnTypeChange::NewColumn);
  ASSERT_EQ(wider.changes.size(), 1u);
  EXPECT_EQ(wider.changes[0].kind, ChangeKind::WidenType);
  EXPECT_EQ(wider.changes[0].column, "__dpone__nc__qty");
  EXPECT_TRUE(wider.changes[0].safe);
}

TEST(SchemaDiff, OnTypeChangeNewColumnDoesNotRouteSafeOrNotNullColumns) {
  // Widening and narrowing are not "type changes": they keep their own classification.
  auto w = compare_schemas(make({col("n", "int64")}), make({col("n", "int32")}), EvolutionPolicy::Additive,
                           OnTypeChange::NewColumn);
  ASSERT_EQ(w.changes.size(), 1u);
  EXPECT_EQ(w.changes[0].kind, ChangeKind::WidenType);
  EXPECT_FALSE(w.changes[0].safe);
  EXPECT_TRUE(w.routes.empty());
  auto n = compare_schemas(make({col("n", "int16")}), make({col("n", "int32")}), EvolutionPolicy::Widening,
                           OnTypeChange::NewColumn);
  ASSERT_EQ(n.changes.size(), 1u);
  EXPECT_EQ(n.changes[0].kind, ChangeKind::NarrowType);
  // A NOT NULL target column cannot be left empty by new rows: the change stays unsafe.
  auto nn = compare_schemas(make({col("k", "string", false)}), make({col("k", "date", false)}),
                            EvolutionPolicy::Widening, OnTypeChange::NewColumn);
  ASSERT_EQ(nn.changes.size(), 1u);
  EXPECT_EQ(nn.changes[0].kind, ChangeKind::ChangeType);
  EXPECT_FALSE(nn.changes[0].safe);
  EXPECT_NE(nn.changes[0].detail.find("NOT NULL"), std::string::npos);
  EXPECT_TRUE(nn.routes.empty());
}

TEST(SchemaDiff, PolicyAndOnTypeChangeParse) {
  EXPECT_EQ(parse_on_type_change("new_column"), OnTypeChange::NewColumn);
  EXPECT_EQ(parse_on_type_change("fail"), OnTypeChange::Fail);
  EXPECT_FALSE(parse_on_type_change("route"));
  EXPECT_EQ(to_string(OnTypeChange::NewColumn), "new_column");
  EXPECT_EQ(parse_policy("additive"), EvolutionPolicy::Additive);
  EXPECT_FALSE(parse_policy("lenient"));
}
