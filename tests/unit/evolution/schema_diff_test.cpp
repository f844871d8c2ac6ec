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
