// The postgres sink: staged loads into a table.
//
//   stage    -> CREATE UNLOGGED TABLE "<table>__dpone_stg_<run>" (no constraints), then
//               one COPY ... FROM STDIN in text format, fed batch by batch, or, for a
//               pg_copy_text byte stream (pass-through), with the source's bytes as is
//   check    -> not_null / unique as SQL on the staging table
//   promote  -> BEGIN; evolution DDL; strategy; receipt row in <schema>.__dpone__loads;
//               drop staging; COMMIT. Any failure rolls all of it back.
//
// Strategies (README.md "Strategies" has the SQL):
//   full_refresh truncate_insert: TRUNCATE + INSERT ... SELECT
//   full_refresh exchange: shadow table (LIKE target INCLUDING ALL), filled, then the
//     target is renamed away, the shadow renamed in, owner and grants copied, the old
//     table dropped; all in the promotion transaction
//   append [only_new_rows]: INSERT ... SELECT [WHERE NOT EXISTS (same key)]
//   merge: INSERT ... ON CONFLICT (keys) DO UPDATE when a PK or a full unique index on
//     exactly the keys exists, else DELETE ... USING staging + INSERT
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "connectors/postgres/pg_connector.hpp"
#include "core/connector/sql_gates.hpp"
#include "core/errors.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

using pg::PgConnection;
using pg::PgResult;
using pg::PgTransaction;
using pg::quote_ident;

constexpr int kMaxSamples = 5;
constexpr size_t kCopyChunk = 1 << 20;
constexpr const char* kLoadsTable = "__dpone__loads";
constexpr const char* kStagingInfix = "__dpone_stg_";
constexpr const char* kShadowInfix = "__dpone_new_";
constexpr const char* kOldInfix = "__dpone_old_";

struct TargetShape {
  bool exists = false;
  std::vector<std::string> primary_key;
  bool key_unique = false;          // PK or full unique index exactly on the merge key
  std::string owner;                // exchange: owner of the target
  std::vector<std::string> grants;  // exchange: GRANT statements re-creating its ACL
};

enum class StepKind { Exec, CountPrevious, CountStaged, CountUpdated, Insert };

struct Step {
  StepKind kind;
  std::string sql;
};

std::string join_quoted(const std::vector<std::string>& names, const std::string& prefix = {}) {
  std::vector<std::string> out;
  for (const auto& n : names) out.push_back(prefix + quote_ident(n));
  return fmt::format("{}", fmt::join(out, ", "));
}

std::string escape_like(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

const char* mode_name(StrategyMode mode) {
  switch (mode) {
    case StrategyMode::FullRefresh:
      return "full_refresh";
    case StrategyMode::Append:
      return "append";
    case StrategyMode::Merge:
      return "merge";
    case StrategyMode::Replace:
      return "replace";
    case StrategyMode::PartitionReplace:
      return "partition_replace";
    case StrategyMode::SnapshotDiff:
      return "snapshot_diff";
    case StrategyMode::Scd2:
      return "scd2";
  }
  return "unknown";
}

class PgSink : public Sink {
 public:
  explicit PgSink(const SinkContext& ctx)
      : stream_(ctx.stream),
        run_id_(ctx.run_id),
        diagnostics_(ctx.diagnostics),
        on_progress_(ctx.on_progress) {
    pg::Options options(ctx.options, fmt::format("stream '{}': postgres sink", ctx.stream));
    where_ = options.where();
    connection_ = pg::require_connection(ctx.connection, where_);
    auto table = options.string("table");
    if (!table) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{} needs the `table` option (the target table)", where_));
    }
    table_ = *table;
    schema_ = options.string("schema").value_or("public");
  }

  // --- plan-time ------------------------------------------------------------------

  TargetInfo inspect() override {
    TargetInfo info;
    info.name = target_name();
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    info.server = "PostgreSQL " + db.query_value("SHOW server_version").value_or("?");
    info.capabilities = {"COPY FROM STDIN into UNLOGGED staging", "transactional DDL",
                         "INSERT ... ON CONFLICT", "pg_copy_text pass-through"};
    check_schema(db);
    auto kind = pg::relation_kind(db, schema_, table_);
    if (!kind) return info;
    if (*kind != 'r' && *kind != 'p') {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: {} is not a table (relkind '{}'); the postgres sink loads "
                              "tables",
                              where_, target_name(), *kind));
    }
    info.exists = true;
    for (const auto& c : pg::table_columns(db, schema_, table_)) {
      auto mapped = pg::map_pg_type(c.formatted, c.category);
      if (!mapped.known && diagnostics_ && warned_.insert(c.name).second) {
        diagnostics_->warn(
            fmt::format("{}: column '{}' of {} has the type '{}', which dpone does not map; it is "
                        "compared as {}",
                        where_, c.name, target_name(), c.formatted, mapped.type.to_string()));
      }
      info.schema.columns.push_back(Column{c.name, mapped.type, !c.notnull});
    }
    info.schema.primary_key = pg::primary_key(db, schema_, table_);
    info.rows = db.query_int64("SELECT count(*) FROM " + qualified(table_));
    return info;
  }

  // pg_copy_text first: a postgres source that offers it (pass-through) is staged
  // without decoding or re-encoding a single row.
  std::vector<ArtifactSpec> accepts() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::PgCopyText},
            ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  std::vector<std::string> render_ddl(const Schema& source_schema,
                                      const std::vector<const SchemaChange*>& changes) override {
    std::vector<std::string> out;
    for (const SchemaChange* change : changes) {
      const Column* col = change->to ? &*change->to : nullptr;
      int idx = source_schema.find(change->column);
      if (!col && idx >= 0) col = &source_schema.columns[static_cast<size_t>(idx)];
      switch (change->kind) {
        case ChangeKind::CreateTable:
          if (source_schema.columns.empty()) {
            throw Error(ErrorCode::Internal,
                        fmt::format("{}: cannot create {} from a schema without columns", where_,
                                    target_name()));
          }
          out.push_back(create_table_sql(qualified(table_), source_schema, true, false));
          break;
        case ChangeKind::AddColumn:
          if (!col) missing_definition(*change);
          // Added columns are nullable: existing rows have no value.
          out.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", qualified(table_),
                                    quote_ident(col->name), pg::declared_type(col->type)));
          break;
        case ChangeKind::WidenType:
          if (!col) missing_definition(*change);
          out.push_back(fmt::format("ALTER TABLE {} ALTER COLUMN {} TYPE {}", qualified(table_),
                                    quote_ident(col->name), pg::declared_type(col->type)));
          break;
        case ChangeKind::MakeNotNull:
          break;  // the source promises no NULLs where the target allows them
        case ChangeKind::MakeNullable:
          out.push_back(fmt::format("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                                    qualified(table_), quote_ident(change->column)));
          break;
        default:
          throw Error(ErrorCode::SchemaUnsafeChange,
                      fmt::format("{}: cannot apply '{}' to column '{}' of {}{}", where_,
                                  to_string(change->kind), change->column, target_name(),
                                  change->detail.empty() ? "" : " (" + change->detail + ")"),
                      "change the target table by hand, or keep the source type unchanged");
      }
    }
    return out;
  }

  std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                              const Schema& source_schema) override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    TargetShape shape = target_shape(db, strategy);
    if (!shape.exists) shape = shape_from_schema(source_schema, strategy);
    std::vector<std::string> out = {"BEGIN"};
    for (const auto& step : strategy_steps(strategy, source_schema, shape, staging_name()))
      out.push_back(step.sql);
    for (const auto& sql : receipt_sql()) out.push_back(sql);
    out.push_back("DROP TABLE " + qualified(staging_name()));
    out.push_back("COMMIT");
    return out;
  }

  std::optional<LoadReceipt> latest_receipt() override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    if (!pg::relation_kind(db, schema_, kLoadsTable)) return std::nullopt;
    PgResult r = db.exec_params(
        fmt::format("SELECT \"stream\", \"run_id\", \"base_revision\", \"window\", "
                    "\"new_position\", \"rows\", \"loaded_at\" FROM {} WHERE \"stream\" = $1 "
                    "ORDER BY \"loaded_at\" DESC, \"run_id\" DESC LIMIT 1",
                    qualified(kLoadsTable)),
        {stream_});
    if (r.rows() == 0) return std::nullopt;
    LoadReceipt out;
    out.stream = std::string(r.value(0, 0));
    out.run_id = std::string(r.value(0, 1));
    out.base_revision = std::stoll(std::string(r.value(0, 2)));
    out.window = parse_receipt_json(r.optional_value(0, 3), out.run_id);
    out.new_position = parse_receipt_json(r.optional_value(0, 4), out.run_id);
    out.rows = std::stoll(std::string(r.value(0, 5)));
    out.loaded_at = std::string(r.value(0, 6));
    return out;
  }

  // --- run-time -------------------------------------------------------------------

  std::vector<std::string> cleanup_abandoned() override {
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    PgResult r = db.exec_params(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND (c.relname LIKE $2 OR "
        "c.relname LIKE $3 OR c.relname LIKE $4) ORDER BY 1",
        {schema_, escape_like(table_ + kStagingInfix) + "%",
         escape_like(table_ + kShadowInfix) + "%", escape_like(table_ + kOldInfix) + "%"});
    std::vector<std::string> removed;
    for (int i = 0; i < r.rows(); ++i) {
      std::string name(r.value(i, 0));
      if (name == staging_name() || name == shadow_name() || name == old_name()) continue;
      db.exec("DROP TABLE IF EXISTS " + qualified(name));
      removed.push_back(schema_ + "." + name);
    }
    return removed;
  }

  // A stage() that throws leaves nothing behind: the staging table is dropped here.
  StagedLoad stage(Artifact artifact, const Schema& source_schema) override {
    try {
      return stage_rows(std::move(artifact), source_schema);
    } catch (...) {
      abort(StagedLoad{staging_name(), 0, 0, nullptr});
      throw;
    }
  }

  std::vector<GateResult> check(const StagedLoad& staged,
                                const std::vector<GateSpec>& gates) override {
    PgConnection& db = handle(ErrorCode::StageFailed);
    db.set_failure_code(ErrorCode::StageFailed);
    std::set<std::string> staged_columns;
    for (const auto& c : pg::table_columns(db, schema_, staged.staging_name))
      staged_columns.insert(c.name);
    if (staged_columns.empty()) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: staging table {} is missing", where_, staged.staging_name));
    }
    const std::string stg = qualified(staged.staging_name);
    validate_sql_gates(gates, staged_columns, where_, "postgres");
    SqlGateDialect dialect{
        [](const std::string& c) { return quote_ident(c); },
        [](const std::string& c) {
          return fmt::format("{} || '=' || coalesce(quote_literal({}::text), 'NULL')", pg::quote_literal(c),
                             quote_ident(c));
        },
        [](const std::vector<std::string>& parts) { return fmt::format("concat_ws(', ', {})", fmt::join(parts, ", ")); },
        ""};
    std::vector<GateResult> out;
    for (const auto& gate : gates) {
      GateResult r;
      r.name = gate.name;
      r.type = gate.type;
      r.severity = gate.severity;
      GateSql q = render_sql_gate(gate, stg, dialect, kMaxSamples);
      r.failing_rows = db.query_int64(q.count_sql);
      PgResult samples = db.exec(q.sample_sql);
      for (int i = 0; i < samples.rows(); ++i) {
        r.samples.push_back(gate.type == "not_null"
                                ? shorten(samples.value(i, 0))
                                : fmt::format("{} ({} rows)", shorten(samples.value(i, 1)), samples.value(i, 0)));
      }
      r.sql = q.count_sql + ";\n" + q.sample_sql;
      r.passed = r.failing_rows == 0;
      out.push_back(std::move(r));
    }
    return out;
  }

  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override {
    check_staging_name(staged.staging_name);
    // Configuration errors surface with their own code before anything starts.
    render_ddl(request.source_schema, request.changes);
    strategy_steps(request.strategy, request.source_schema,
                   shape_from_schema(request.source_schema, request.strategy), staged.staging_name);
    PgConnection& db = handle(ErrorCode::SinkUnavailable);
    db.set_failure_code(ErrorCode::PromoteFailed);
    PromoteResult result;
    result.atomic = true;
    std::optional<PgTransaction> txn;
    try {
      txn.emplace(db, "BEGIN");
      result.sql.push_back("BEGIN");
      for (const auto& ddl : render_ddl(request.source_schema, request.changes)) {
        db.exec(ddl);
        result.sql.push_back(ddl);
      }
      TargetShape shape = target_shape(db, request.strategy);
      if (!shape.exists) {
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: the target {} does not exist and no create-table change "
                                "was planned",
                                where_, target_name()));
      }
      int64_t staged_rows = 0;
      for (const auto& step :
           strategy_steps(request.strategy, request.source_schema, shape, staged.staging_name)) {
        switch (step.kind) {
          case StepKind::Exec:
            db.exec(step.sql);
            break;
          case StepKind::CountPrevious:
            result.deleted = db.query_int64(step.sql);
            break;
          case StepKind::CountStaged:
            staged_rows = db.query_int64(step.sql);
            break;
          case StepKind::CountUpdated:
            result.updated = db.query_int64(step.sql);
            result.inserted = staged_rows - result.updated;
            break;
          case StepKind::Insert:
            result.inserted += db.exec(step.sql).affected();
            break;
        }
        result.sql.push_back(step.sql);
      }
      write_receipt(db, request.receipt, result.sql);
      std::string drop = "DROP TABLE " + qualified(staged.staging_name);
      db.exec(drop);
      result.sql.push_back(drop);
      failpoint("inside_promote");
      txn->commit();
      result.sql.push_back("COMMIT");
      return result;
    } catch (const std::exception& e) {
      if (txn) txn->rollback();
      const auto* err = dynamic_cast<const Error*>(&e);
      if (err && err->code() == ErrorCode::FailpointTriggered) throw;
      throw Error(
          ErrorCode::PromoteFailed,
          fmt::format("{}: promotion into {} failed and was rolled back (target, receipt and "
                      "staging unchanged): [{}] {}",
                      where_, target_name(),
                      err ? std::string(err->code_name()) : std::string("INTERNAL"), e.what()),
          err ? err->hint() : std::string());
    }
  }

  void abort(const StagedLoad& staged) noexcept override {
    // Best effort by contract: what survives is removed by the next cleanup_abandoned().
    try {
      if (staged.staging_name.find(kStagingInfix) == std::string::npos) return;
      PgConnection& db = handle(ErrorCode::SinkUnavailable);
      db.copy_in_abort();
      if (PQtransactionStatus(db.get()) == PQTRANS_INERROR ||
          PQtransactionStatus(db.get()) == PQTRANS_INTRANS)
        PQclear(PQexec(db.get(), "ROLLBACK"));
      db.exec("DROP TABLE IF EXISTS " + qualified(staged.staging_name));
    } catch (...) {
    }
  }

 private:
  PgConnection& handle(ErrorCode code) {
    if (!conn_) conn_ = PgConnection::connect(connection_, ErrorCode::SinkUnavailable, where_);
    conn_->set_failure_code(code);
    return *conn_;
  }

  void check_schema(PgConnection& db) {
    if (checked_schema_) return;
    if (!db.query_value("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema_})) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: schema '{}' does not exist on {}", where_, schema_, db.target()),
                  fmt::format("create it (CREATE SCHEMA {}) or set the sink's `schema` option",
                              quote_ident(schema_)));
    }
    checked_schema_ = true;
  }

  [[noreturn]] void missing_definition(const SchemaChange& change) const {
    throw Error(ErrorCode::Internal,
                fmt::format("{}: {} of column '{}' without a column definition", where_,
                            to_string(change.kind), change.column));
  }

  StagedLoad stage_rows(Artifact artifact, const Schema& source_schema) {
    if (source_schema.columns.empty()) {
      throw Error(ErrorCode::Internal, fmt::format("{}: nothing to stage: no columns", where_));
    }
    BatchReader* reader = nullptr;
    ByteReader* copy_text = nullptr;
    InMemoryRows* in_memory = nullptr;
    if (auto* rows = std::get_if<StreamingRows>(&artifact)) {
      if (rows->format == WireFormat::RecordBatch) reader = rows->batches.get();
      if (rows->format == WireFormat::PgCopyText) copy_text = rows->bytes.get();
    } else {
      in_memory = std::get_if<InMemoryRows>(&artifact);
    }
    if (!reader && !in_memory && !copy_text) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{} cannot stage {}: it accepts streaming_rows/pg_copy_text and "
                              "streaming_rows/record_batch",
                              where_, spec_of(artifact).to_string()));
    }
    PgConnection& db = handle(ErrorCode::StageFailed);
    check_schema(db);
    const std::string stg = staging_name();
    db.exec("DROP TABLE IF EXISTS " + qualified(stg));
    db.exec(create_table_sql(qualified(stg), source_schema, false, true));
    db.copy_in_start(
        fmt::format("COPY {} ({}) FROM STDIN", qualified(stg), join_quoted(source_schema.names())));
    StagedLoad staged;
    staged.staging_name = stg;
    if (copy_text) {
      try {
        pass_through(db, *copy_text, staged);
      } catch (...) {
        db.copy_in_abort();
        throw;
      }
      db.copy_in_end();
      db.exec("ANALYZE " + qualified(stg));
      staged.details = {{"target", db.target()}, {"schema", schema_}, {"table", stg}};
      return staged;
    }
    const size_t ncols = source_schema.columns.size();
    std::string buffer;
    auto write = [&](const RecordBatch& batch) {
      if (batch.num_columns() != ncols) {
        throw Error(ErrorCode::Internal, fmt::format("{}: a batch has {} columns, the schema {}",
                                                     where_, batch.num_columns(), ncols));
      }
      buffer.clear();
      buffer.reserve(
          std::min(batch.byte_size() + batch.num_rows() * ncols * 2 + 64, kCopyChunk * 2));
      for (size_t r = 0; r < batch.num_rows(); ++r) {
        for (size_t c = 0; c < ncols; ++c) {
          if (c) buffer.push_back('\t');
          if (batch.is_null(r, c)) {
            buffer.append("\\N");
          } else {
            pg::append_copy_cell(buffer, source_schema.columns[c].type, batch.cell(r, c));
          }
        }
        buffer.push_back('\n');
        if (buffer.size() >= kCopyChunk) {
          db.copy_in_put(buffer);
          buffer.clear();
        }
      }
      db.copy_in_put(buffer);
      staged.rows += static_cast<int64_t>(batch.num_rows());
      staged.bytes += static_cast<int64_t>(batch.byte_size());
      if (on_progress_) on_progress_(staged.rows, staged.bytes);
    };
    try {
      if (reader) {
        while (auto batch = reader->next()) write(*batch);
      } else {
        for (const auto& batch : in_memory->batches) write(batch);
      }
    } catch (...) {
      db.copy_in_abort();
      throw;
    }
    db.copy_in_end();
    db.exec("ANALYZE " + qualified(stg));
    staged.details = {{"target", db.target()}, {"schema", schema_}, {"table", stg}};
    return staged;
  }

  // Pass-through: the source's COPY text goes to COPY FROM STDIN as it comes, in reads
  // of kCopyChunk bytes. COPY text escapes newlines inside values (\n), so every raw
  // '\n' ends one row; a last row without its '\n' counts too. staged.bytes counts
  // the COPY text. on_progress after the first read and then every kProgressRows rows.
  void pass_through(PgConnection& db, ByteReader& in, StagedLoad& staged) {
    constexpr int64_t kProgressRows = 65536;
    std::string buffer(kCopyChunk, '\0');
    int64_t next_report = 0;
    char last = '\n';
    while (size_t n = in.read(buffer.data(), buffer.size())) {
      const char* p = buffer.data();
      const char* end = p + n;
      while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p))))) {
        ++staged.rows;
        ++p;
      }
      last = buffer[n - 1];
      staged.bytes += static_cast<int64_t>(n);
      db.copy_in_put(std::string_view(buffer.data(), n));
      if (on_progress_ && staged.rows >= next_report) {
        on_progress_(staged.rows, staged.bytes);
        next_report = staged.rows + kProgressRows;
      }
    }
    if (last != '\n') ++staged.rows;
    if (on_progress_) on_progress_(staged.rows, staged.bytes);
  }

  // --- names ----------------------------------------------------------------------

  std::string target_name() const { return schema_ + "." + table_; }
  std::string qualified(const std::string& name) const {
    return quote_ident(schema_) + "." + quote_ident(name);
  }
  std::string staging_name() const { return table_ + kStagingInfix + pg::sanitize_run_id(run_id_); }
  std::string shadow_name() const { return table_ + kShadowInfix + pg::sanitize_run_id(run_id_); }
  std::string old_name() const { return table_ + kOldInfix + pg::sanitize_run_id(run_id_); }

  void check_staging_name(const std::string& name) const {
    if (name.find(kStagingInfix) == std::string::npos) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{}: '{}' is not a dpone staging table", where_, name));
    }
  }

  static std::string shorten(std::string_view v) {
    constexpr size_t kMax = 80;
    if (v.size() <= kMax) return std::string(v);
    return std::string(v.substr(0, kMax)) + "...";
  }

  // --- catalog --------------------------------------------------------------------

  // Is there a PRIMARY KEY or a full (non-partial, non-expression) UNIQUE index on
  // exactly `keys`?
  bool key_is_unique(PgConnection& db, const std::vector<std::string>& keys) {
    if (keys.empty()) return false;
    PgResult r = db.exec_params(
        "SELECT array_to_string(array_agg(a.attname::text ORDER BY a.attname), chr(1)) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL "
        "AND i.indexprs IS NULL AND i.indimmediate GROUP BY i.indexrelid",
        {schema_, table_});
    std::vector<std::string> wanted = keys;
    std::sort(wanted.begin(), wanted.end());
    std::string want;
    for (size_t i = 0; i < wanted.size(); ++i) {
      if (i) want.push_back('\1');
      want += wanted[i];
    }
    for (int i = 0; i < r.rows(); ++i)
      if (r.value(i, 0) == want) return true;
    return false;
  }

  TargetShape target_shape(PgConnection& db, const StrategySpec& strategy) {
    TargetShape shape;
    auto kind = pg::relation_kind(db, schema_, table_);
    shape.exists = kind.has_value();
    if (!shape.exists) return shape;
    shape.primary_key = pg::primary_key(db, schema_, table_);
    if (strategy.mode == StrategyMode::Merge)
      shape.key_unique = key_is_unique(db, strategy.unique_key);
    if (strategy.mode == StrategyMode::FullRefresh &&
        strategy.overwrite == OverwriteMethod::Exchange) {
      shape.owner = db.query_value(
                          "SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                          "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                          {schema_, table_})
                        .value_or("");
      // The ACL without the owner's own entry (the owner keeps all rights implicitly).
      PgResult acl = db.exec_params(
          "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid("
          "a.grantee)) END, a.privilege_type, a.is_grantable "
          "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
          "WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner "
          "ORDER BY 1, 2",
          {schema_, table_});
      for (int i = 0; i < acl.rows(); ++i) {
        shape.grants.push_back(fmt::format("GRANT {} ON {} TO {}{}", acl.value(i, 1),
                                           qualified(table_), acl.value(i, 0),
                                           acl.value(i, 2) == "t" ? " WITH GRANT OPTION" : ""));
      }
    }
    return shape;
  }

  TargetShape shape_from_schema(const Schema& schema, const StrategySpec& strategy) const {
    TargetShape shape;
    shape.exists = true;
    shape.primary_key = schema.primary_key;
    if (strategy.mode == StrategyMode::Merge) {
      std::set<std::string> pk(schema.primary_key.begin(), schema.primary_key.end());
      std::set<std::string> keys(strategy.unique_key.begin(), strategy.unique_key.end());
      shape.key_unique = !keys.empty() && pk == keys;
    }
    return shape;
  }

  // --- SQL ------------------------------------------------------------------------

  std::string create_table_sql(const std::string& name, const Schema& schema, bool constraints,
                               bool unlogged) const {
    std::vector<std::string> defs;
    for (const auto& c : schema.columns) {
      std::string def = quote_ident(c.name) + " " + pg::declared_type(c.type);
      if (constraints && !c.nullable) def += " NOT NULL";
      defs.push_back(std::move(def));
    }
    if (constraints && !schema.primary_key.empty())
      defs.push_back("PRIMARY KEY (" + join_quoted(schema.primary_key) + ")");
    return fmt::format("CREATE {}TABLE {} ({})", unlogged ? "UNLOGGED " : "", name,
                       fmt::join(defs, ", "));
  }

  void check_keys(const std::vector<std::string>& keys, const Schema& source_schema,
                  const char* what) const {
    if (keys.empty()) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: {} needs `unique_key` (the columns that identify a row)", where_, what));
    }
    for (const auto& k : keys) {
      if (source_schema.find(k) < 0) {
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: unique_key column '{}' is not a column of the stream", where_, k),
            fmt::format("columns: {}", fmt::join(source_schema.names(), ", ")));
      }
    }
  }

  std::vector<Step> strategy_steps(const StrategySpec& strategy, const Schema& source_schema,
                                   const TargetShape& shape, const std::string& staging) const {
    const std::string target = qualified(table_);
    const std::string stg = qualified(staging);
    const std::string cols = join_quoted(source_schema.names());
    const std::string insert_all =
        fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}", target, cols, cols, stg);
    std::vector<Step> steps;
    switch (strategy.mode) {
      case StrategyMode::FullRefresh:
        steps.push_back({StepKind::CountPrevious, "SELECT count(*) FROM " + target});
        if (strategy.overwrite == OverwriteMethod::TruncateInsert) {
          steps.push_back({StepKind::Exec, "TRUNCATE TABLE " + target});
          steps.push_back({StepKind::Insert, insert_all});
        } else {
          const std::string shadow = qualified(shadow_name());
          steps.push_back({StepKind::Exec,
                           fmt::format("CREATE TABLE {} (LIKE {} INCLUDING ALL)", shadow, target)});
          steps.push_back({StepKind::Insert, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}",
                                                         shadow, cols, cols, stg)});
          steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} RENAME TO {}", target,
                                                       quote_ident(old_name()))});
          steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} RENAME TO {}", shadow,
                                                       quote_ident(table_))});
          if (!shape.owner.empty()) {
            steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} OWNER TO {}", target,
                                                         quote_ident(shape.owner))});
          }
          for (const auto& g : shape.grants) steps.push_back({StepKind::Exec, g});
          steps.push_back({StepKind::Exec, "DROP TABLE " + qualified(old_name())});
        }
        break;
      case StrategyMode::Append:
        if (strategy.only_new_rows) {
          check_keys(strategy.unique_key, source_schema, "append with only_new_rows");
          std::vector<std::string> match;
          for (const auto& k : strategy.unique_key)
            match.push_back(
                fmt::format("t.{} IS NOT DISTINCT FROM s.{}", quote_ident(k), quote_ident(k)));
          steps.push_back(
              {StepKind::Insert,
               fmt::format("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE NOT EXISTS "
                           "(SELECT 1 FROM {} AS t WHERE {})",
                           target, cols, join_quoted(source_schema.names(), "s."), stg, target,
                           fmt::join(match, " AND "))});
        } else {
          steps.push_back({StepKind::Insert, insert_all});
        }
        break;
      case StrategyMode::Merge: {
        check_keys(strategy.unique_key, source_schema, "merge");
        std::vector<std::string> match;
        for (const auto& k : strategy.unique_key)
          match.push_back(fmt::format("t.{} = s.{}", quote_ident(k), quote_ident(k)));
        const std::string on = fmt::format("{}", fmt::join(match, " AND "));
        steps.push_back({StepKind::CountStaged, "SELECT count(*) FROM " + stg});
        steps.push_back(
            {StepKind::CountUpdated,
             fmt::format("SELECT count(*) FROM {} AS s WHERE EXISTS (SELECT 1 FROM {} AS t "
                         "WHERE {})",
                         stg, target, on)});
        if (shape.key_unique) {
          std::vector<std::string> sets;
          for (const auto& c : source_schema.columns) {
            if (std::find(strategy.unique_key.begin(), strategy.unique_key.end(), c.name) !=
                strategy.unique_key.end())
              continue;
            sets.push_back(
                fmt::format("{} = EXCLUDED.{}", quote_ident(c.name), quote_ident(c.name)));
          }
          std::string action = sets.empty()
                                   ? std::string("DO NOTHING")
                                   : fmt::format("DO UPDATE SET {}", fmt::join(sets, ", "));
          steps.push_back({StepKind::Exec, fmt::format("{} ON CONFLICT ({}) {}", insert_all,
                                                       join_quoted(strategy.unique_key), action)});
        } else {
          steps.push_back({StepKind::Exec, fmt::format("DELETE FROM {} AS t USING {} AS s WHERE {}",
                                                       target, stg, on)});
          steps.push_back({StepKind::Exec, insert_all});
        }
        break;
      }
      default:
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the postgres sink does not support the strategy '{}'", where_,
                                mode_name(strategy.mode)),
                    "use full_refresh, append or merge");
    }
    return steps;
  }

  std::vector<std::string> receipt_sql() const {
    return {
        fmt::format("CREATE TABLE IF NOT EXISTS {} (\"stream\" text NOT NULL, \"run_id\" text "
                    "NOT NULL, \"base_revision\" bigint, \"window\" text, \"new_position\" text, "
                    "\"rows\" bigint, \"loaded_at\" text, PRIMARY KEY (\"stream\", \"run_id\"))",
                    qualified(kLoadsTable)),
        fmt::format("INSERT INTO {} (\"stream\", \"run_id\", \"base_revision\", \"window\", "
                    "\"new_position\", \"rows\", \"loaded_at\") VALUES ($1, $2, $3, $4, $5, $6, "
                    "$7)",
                    qualified(kLoadsTable))};
  }

  void write_receipt(PgConnection& db, const LoadReceipt& receipt, std::vector<std::string>& log) {
    auto sql = receipt_sql();
    db.exec(sql[0]);
    log.push_back(sql[0]);
    db.exec_params(sql[1], {receipt.stream.empty() ? stream_ : receipt.stream,
                            receipt.run_id.empty() ? run_id_ : receipt.run_id,
                            std::to_string(receipt.base_revision), receipt.window.dump(),
                            receipt.new_position.dump(), std::to_string(receipt.rows),
                            receipt.loaded_at.empty() ? now_iso8601() : receipt.loaded_at});
    log.push_back(sql[1]);
  }

  nlohmann::json parse_receipt_json(const std::optional<std::string>& text,
                                    const std::string& run_id) const {
    if (!text) return nullptr;
    try {
      return nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::SinkUnavailable,
                  fmt::format("{}: the load receipt of run {} in {}.{} is not valid JSON ({})",
                              where_, run_id, schema_, kLoadsTable, e.what()),
                  fmt::format("delete that row from {} and re-run", kLoadsTable));
    }
  }

  std::string stream_;
  std::string run_id_;
  Diagnostics* diagnostics_;
  std::function<void(int64_t, int64_t)> on_progress_;
  std::string where_;
  ResolvedConnection connection_;
  std::string table_;
  std::string schema_;
  std::unique_ptr<PgConnection> conn_;
  bool checked_schema_ = false;
  std::set<std::string> warned_;
};

}  // namespace

std::unique_ptr<Sink> make_postgres_sink(const SinkContext& context) {
  return std::make_unique<PgSink>(context);
}

}  // namespace dpone
