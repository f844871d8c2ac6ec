// The sqlite sink: staged loads into a table of a database file.
//
//   stage    -> "<table>__dpone_stg_<run>" (no constraints), one prepared INSERT,
//               committed every kCommitEveryRows rows so the WAL stays bounded
//   check    -> not_null / unique as SQL on the staging table
//   promote  -> BEGIN IMMEDIATE; evolution DDL; strategy; receipt row in __dpone__loads;
//               drop staging; COMMIT. Any failure rolls all of it back.
//
// plan-time calls (inspect, render_ddl, describe_promotion, latest_receipt) never create
// the database file nor change its journal mode; the first write (stage) does both.
// The file is switched to WAL so a source reading the same file does not block us.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "connectors/sqlite/sqlite_connector.hpp"
#include "connectors/sqlite/sqlite_types.hpp"
#include "core/connector/reconcile_sql.hpp"
#include "core/connector/sql_gates.hpp"
#include "core/errors.hpp"
#include "core/state/sqlite_handle.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/interrupt.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

namespace fs = std::filesystem;
using sqlite::TypeSide;

constexpr int64_t kCommitEveryRows = 50'000;
constexpr int kMaxSamples = 5;
constexpr const char* kLoadsTable = "__dpone__loads";
constexpr const char* kStagingInfix = "__dpone_stg_";
constexpr const char* kShadowInfix = "__dpone_new_";

struct TableColumn {
  std::string name;
  std::string declared;
  bool notnull = false;
  int pk = 0;  // position in the primary key (1-based), 0 = not part of it
};

// What promote() and describe_promotion() need to know about the target.
struct TargetShape {
  bool exists = false;
  std::vector<TableColumn> columns;
  std::string create_sql;                  // sqlite_master.sql of the table
  std::vector<std::string> dependent_sql;  // its indexes and triggers
  bool key_unique = false;                 // a PK or UNIQUE index exactly on the merge key
};

enum class StepKind {
  Exec,           // run, nothing to count
  CountPrevious,  // full_refresh: rows replaced
  CountStaged,    // merge: staged rows
  CountUpdated,   // merge: staged rows whose key exists in the target
  Insert,         // rows inserted = changes()
};

struct Step {
  StepKind kind;
  std::string sql;
};

std::string join_quoted(const std::vector<std::string>& names, const std::string& prefix = {}) {
  std::vector<std::string> out;
  out.reserve(names.size());
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

std::string kind_text(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::CreateTable:
      return "create table";
    case ChangeKind::AddColumn:
      return "add column";
    case ChangeKind::WidenType:
      return "widen type";
    case ChangeKind::DropColumn:
      return "drop column";
    case ChangeKind::NarrowType:
      return "narrow type";
    case ChangeKind::ChangeType:
      return "change type";
    case ChangeKind::MakeNotNull:
      return "make not null";
    case ChangeKind::MakeNullable:
      return "make nullable";
    case ChangeKind::PossibleRename:
      return "possible rename";
  }
  return "change";
}

// Replaces the table name in a stored "CREATE TABLE <name> (...)" with `new_name`.
// sqlite_master keeps the text from the name on as the user wrote it (schema prefix and
// IF NOT EXISTS removed), so the name is the first token after the keywords. Returns
// nullopt for anything unexpected; the caller then renders the definition itself.
std::optional<std::string> rename_create_table(const std::string& sql,
                                               const std::string& new_name) {
  const std::string prefix = "CREATE TABLE ";
  if (sql.size() <= prefix.size()) return std::nullopt;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(sql[i])) != prefix[i]) return std::nullopt;
  }
  size_t pos = prefix.size();
  while (pos < sql.size() && sql[pos] == ' ') ++pos;
  if (pos >= sql.size()) return std::nullopt;
  char open = sql[pos];
  size_t end = pos;
  if (open == '"' || open == '`' || open == '\'' || open == '[') {
    char close = open == '[' ? ']' : open;
    end = pos + 1;
    while (true) {
      end = sql.find(close, end);
      if (end == std::string::npos) return std::nullopt;
      // A doubled quote is an escaped quote inside the name.
      if (close != ']' && end + 1 < sql.size() && sql[end + 1] == close) {
        end += 2;
        continue;
      }
      ++end;
      break;
    }
  } else {
    while (end < sql.size() &&
           (std::isalnum(static_cast<unsigned char>(sql[end])) || sql[end] == '_' ||
            sql[end] == '$' || static_cast<unsigned char>(sql[end]) >= 0x80)) {
      ++end;
    }
    if (end == pos) return std::nullopt;
  }
  return prefix + new_name + sql.substr(end);
}

class SqliteSink : public Sink {
 public:
  explicit SqliteSink(const SinkContext& ctx)
      : stream_(ctx.stream),
        run_id_(ctx.run_id),
        diagnostics_(ctx.diagnostics),
        on_progress_(ctx.on_progress) {
    sqlite::Options options(ctx.options, fmt::format("stream '{}': sqlite sink", ctx.stream));
    where_ = options.where();
    path_ = sqlite::resolve_database_path(options, ctx.connection, ctx.base_dir, ctx.diagnostics);
    auto table = options.string("table");
    if (!table) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{} needs the `table` option (the target table)", where_));
    }
    table_ = *table;
    schema_ = options.string("schema").value_or("main");
    // scd2 keeps several versions per key: its target gets no primary key on the key.
    if (ctx.options.is_object() && ctx.options.contains("strategy") && ctx.options["strategy"].is_object())
      history_table_ = ctx.options["strategy"].value("mode", "") == "scd2";
  }

  // --- plan-time ------------------------------------------------------------------

  TargetInfo inspect() override {
    TargetInfo info;
    info.name = target_name();
    info.server = std::string("SQLite ") + sqlite3_libversion();
    info.capabilities = {"transactional DDL", "INSERT ... ON CONFLICT", "ALTER TABLE RENAME (exchange)"};
    SqliteDb* db = existing();
    if (!db) return info;
    db->set_failure_code(ErrorCode::SinkUnavailable);
    auto cols = table_info(*db, table_);
    if (cols.empty()) {
      check_not_view(*db);
      return info;
    }
    // Columns dpone maintains (soft delete, scd2, lineage) are not source columns.
    cols.erase(std::remove_if(cols.begin(), cols.end(), [](const TableColumn& c) { return is_system_column(c.name); }),
               cols.end());
    info.exists = true;
    info.schema = schema_of(cols);
    info.rows = db->query_int64("SELECT count(*) FROM " + qualified(table_));
    return info;
  }

  std::vector<ArtifactSpec> accepts() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  std::vector<std::string> render_ddl(const Schema& source_schema,
                                      const std::vector<const SchemaChange*>& changes) override {
    // Widenings first: SQLite cannot change a column's declared type in place, so the
    // table is rebuilt (its columns, keys, indexes and triggers kept); columns added
    // afterwards go onto the rebuilt table.
    std::vector<std::string> out = widen_sql(changes);
    for (const SchemaChange* change : changes) {
      switch (change->kind) {
        case ChangeKind::WidenType:
          break;  // in widen_sql
        case ChangeKind::CreateTable:
          if (source_schema.columns.empty()) {
            throw Error(ErrorCode::Internal,
                        fmt::format("{}: cannot create {} from a schema without columns", where_,
                                    target_name()));
          }
          if (history_table_) {
            Schema history = source_schema;
            history.primary_key.clear();
            out.push_back(create_table_sql(qualified(table_), history, true));
          } else {
            out.push_back(create_table_sql(qualified(table_), source_schema, true));
          }
          break;
        case ChangeKind::AddColumn: {
          const Column* col = change->to ? &*change->to : nullptr;
          int idx = source_schema.find(change->column);
          if (!col && idx >= 0) col = &source_schema.columns[static_cast<size_t>(idx)];
          if (!col) {
            throw Error(ErrorCode::Internal,
                        fmt::format("{}: add column '{}' without a column definition", where_,
                                    change->column));
          }
          // Added columns are nullable whatever the source says: existing rows have no
          // value (SQLite cannot add a NOT NULL column without a default either).
          out.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", qualified(table_),
                                    quote_ident(col->name), sqlite::declared_type(col->type)));
          break;
        }
        case ChangeKind::MakeNotNull:
          // The source promises no NULLs where the target allows them: nothing to change.
          break;
        default:
          throw Error(ErrorCode::SchemaUnsafeChange,
                      fmt::format("{}: cannot apply '{}' to column '{}' of {}{}: SQLite cannot "
                                  "change a column's type or constraints in place",
                                  where_, kind_text(change->kind), change->column, target_name(),
                                  change->detail.empty() ? "" : " (" + change->detail + ")"),
                      "rebuild the table (drop it and let the next run create it), or keep the "
                      "source type unchanged");
      }
    }
    return out;
  }

  // SQLite's rebuild for widened columns (https://sqlite.org/lang_altertable.html, "other
  // kinds of table schema changes"): a new table with the wider declared types, rows
  // copied, the old table dropped, the new one renamed, indexes and triggers recreated.
  // Runs inside the promotion transaction, so a failure leaves the target as it was.
  // Values need no conversion: every widening keeps SQLite's storage class and affinity.
  std::vector<std::string> widen_sql(const std::vector<const SchemaChange*>& changes) {
    std::map<std::string, std::string> wider;  // column -> new declared type
    for (const SchemaChange* change : changes) {
      if (change->kind != ChangeKind::WidenType) continue;
      if (!change->to) {
        throw Error(ErrorCode::SchemaUnsafeChange,
                    fmt::format("{}: cannot widen column '{}' of {}{}: the change does not say the new type",
                                where_, change->column, target_name(),
                                change->detail.empty() ? "" : " (" + change->detail + ")"),
                    "this is a bug in the caller of render_ddl; please report it");
      }
      wider[change->column] = sqlite::declared_type(change->to->type);
    }
    if (wider.empty()) return {};
    SqliteDb* db = existing();
    std::vector<TableColumn> cols;
    if (db) {
      db->set_failure_code(ErrorCode::SinkUnavailable);
      cols = table_info(*db, table_);
    }
    if (cols.empty()) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{}: cannot widen columns of {}: the table does not exist", where_,
                              target_name()));
    }
    std::vector<std::string> defs, names;
    for (const auto& c : cols) {
      auto it = wider.find(c.name);
      std::string def = quote_ident(c.name);
      std::string decl = it != wider.end() ? it->second : c.declared;
      if (!decl.empty()) def += " " + decl;
      if (c.notnull) def += " NOT NULL";
      defs.push_back(std::move(def));
      names.push_back(c.name);
    }
    auto pk = primary_key_of(cols);
    if (!pk.empty()) defs.push_back("PRIMARY KEY (" + join_quoted(pk) + ")");
    std::vector<std::string> dependents;
    {
      SqliteStmt deps = db->prepare(fmt::format(
          "SELECT sql FROM {}.sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ?1 "
          "COLLATE NOCASE AND sql IS NOT NULL ORDER BY type = 'trigger', rowid",
          quote_ident(schema_)));
      deps.bind_text(1, table_);
      while (deps.step()) dependents.emplace_back(deps.column_text(0));
    }
    std::string shadow = table_ + kShadowInfix + "widen";
    std::vector<std::string> out = {
        fmt::format("CREATE TABLE {} ({})", qualified(shadow), fmt::join(defs, ", ")),
        fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}", qualified(shadow), join_quoted(names),
                    join_quoted(names), qualified(table_)),
        "DROP TABLE " + qualified(table_),
        fmt::format("ALTER TABLE {} RENAME TO {}", qualified(shadow), quote_ident(table_))};
    for (auto& sql : dependents) out.push_back(std::move(sql));
    return out;
  }

  std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                              const Schema& source_schema) override {
    TargetShape shape;
    if (SqliteDb* db = existing()) {
      db->set_failure_code(ErrorCode::SinkUnavailable);
      shape = target_shape(*db, strategy);
    }
    if (!shape.exists) {
      // The evolution step creates it from the source schema before the strategy runs.
      shape = shape_from_schema(source_schema, strategy);
    }
    std::vector<std::string> out = {"BEGIN IMMEDIATE"};
    std::optional<ReconcilePlan> reconcile;
    if (strategy.reconciles())
      reconcile = plan_reconcile(strategy, reconcile_tables(shape, source_schema, staging_name()),
                                 reconcile_dialect(), "<run timestamp>");
    for (auto& line : describe_reconcile(strategy, reconcile ? &*reconcile : nullptr))
      out.push_back(std::move(line));
    for (const auto& step : strategy_steps(strategy, source_schema, shape, staging_name()))
      out.push_back(step.sql);
    if (reconcile) {
      for (const auto& sql : reconcile->apply) out.push_back(sql);
      for (const auto& [name, sql] : reconcile->verify) out.push_back(sql);
    }
    for (const auto& sql : receipt_sql()) out.push_back(sql);
    out.push_back("DROP TABLE " + qualified(staging_name()));
    out.push_back("COMMIT");
    return out;
  }

  std::optional<LoadReceipt> latest_receipt() override {
    SqliteDb* db = existing();
    if (!db) return std::nullopt;
    db->set_failure_code(ErrorCode::SinkUnavailable);
    if (!table_exists(*db, kLoadsTable)) return std::nullopt;
    SqliteStmt stmt = db->prepare(fmt::format(
        "SELECT \"stream\", \"run_id\", \"base_revision\", \"window\", \"new_position\", "
        "\"rows\", \"loaded_at\" FROM {} WHERE \"stream\" = ?1 "
        "ORDER BY \"loaded_at\" DESC, rowid DESC LIMIT 1",
        qualified(kLoadsTable)));
    stmt.bind_text(1, stream_);
    if (!stmt.step()) return std::nullopt;
    LoadReceipt r;
    r.stream = std::string(stmt.column_text(0));
    r.run_id = std::string(stmt.column_text(1));
    r.base_revision = stmt.column_int64(2);
    r.window = parse_receipt_json(stmt, 3, r.run_id);
    r.new_position = parse_receipt_json(stmt, 4, r.run_id);
    r.rows = stmt.column_int64(5);
    r.loaded_at = std::string(stmt.column_text(6));
    return r;
  }

  // --- run-time -------------------------------------------------------------------

  std::vector<std::string> cleanup_abandoned(const std::vector<std::string>& live_run_ids) override {
    std::vector<std::string> removed;
    SqliteDb* db = existing();
    if (!db) return removed;
    db->set_failure_code(ErrorCode::SinkUnavailable);
    // Space first: a run that failed for space may have left its WAL full of pages.
    checkpoint(*db);
    std::vector<std::string> names;
    {
      SqliteStmt stmt = db->prepare(
          fmt::format("SELECT name FROM {}.sqlite_master WHERE type = 'table' AND "
                      "(name LIKE ?1 ESCAPE '\\' OR name LIKE ?2 ESCAPE '\\') ORDER BY name",
                      quote_ident(schema_)));
      stmt.bind_text(1, escape_like(table_ + kStagingInfix) + "%");
      stmt.bind_text(2, escape_like(table_ + kShadowInfix) + "%");
      while (stmt.step()) names.emplace_back(stmt.column_text(0));
    }
    for (const auto& name : names) {
      if (name == staging_name() || name == shadow_name()) continue;
      if (names_live_run(name, live_run_ids, sqlite::sanitize_run_id)) continue;
      drop_freeing_space(*db, name);
      removed.push_back(schema_ + "." + name);
    }
    return removed;
  }

  // The Sink contract: a stage() that throws leaves nothing behind. The staging
  // transaction is rolled back when stage_rows() unwinds; the table is dropped here.
  StagedLoad stage(Artifact artifact, const Schema& source_schema) override {
    try {
      return stage_rows(std::move(artifact), source_schema);
    } catch (...) {
      abort(StagedLoad{staging_name(), 0, 0, nullptr});
      throw;
    }
  }

  StagedLoad stage_rows(Artifact artifact, const Schema& source_schema) {
    if (source_schema.columns.empty()) {
      throw Error(ErrorCode::Internal, fmt::format("{}: nothing to stage: no columns", where_));
    }
    BatchReader* reader = nullptr;
    InMemoryRows* in_memory = nullptr;
    if (auto* rows = std::get_if<StreamingRows>(&artifact)) {
      if (rows->format == WireFormat::RecordBatch) reader = rows->batches.get();
    } else {
      in_memory = std::get_if<InMemoryRows>(&artifact);
    }
    if (!reader && !in_memory) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{} cannot stage {}: it accepts streaming_rows/record_batch", where_,
                              spec_of(artifact).to_string()));
    }
    SqliteDb& db = writable();
    db.set_failure_code(ErrorCode::StageFailed);
    const std::string stg = staging_name();
    db.exec("DROP TABLE IF EXISTS " + qualified(stg));
    db.exec(create_table_sql(qualified(stg), source_schema, false));

    std::vector<std::string> params;
    for (size_t i = 1; i <= source_schema.columns.size(); ++i)
      params.push_back("?" + std::to_string(i));
    SqliteStmt insert =
        db.prepare(fmt::format("INSERT INTO {} ({}) VALUES ({})", qualified(stg),
                               join_quoted(source_schema.names()), fmt::join(params, ", ")));
    StagedLoad staged;
    staged.staging_name = stg;
    const size_t ncols = source_schema.columns.size();
    std::optional<SqliteTransaction> txn;
    txn.emplace(db, "BEGIN IMMEDIATE");
    int64_t in_txn = 0;
    auto write = [&](const RecordBatch& batch) {
      if (batch.num_columns() != ncols) {
        throw Error(ErrorCode::Internal, fmt::format("{}: a batch has {} columns, the schema {}",
                                                     where_, batch.num_columns(), ncols));
      }
      for (size_t r = 0; r < batch.num_rows(); ++r) {
        for (size_t c = 0; c < ncols; ++c) {
          int index = static_cast<int>(c) + 1;
          if (batch.is_null(r, c)) {
            insert.bind_null(index);
            continue;
          }
          try {
            sqlite::bind_cell(insert, index, source_schema.columns[c].type, batch.cell(r, c));
          } catch (const Error& e) {
            if (e.code() != ErrorCode::TypeMismatch && e.code() != ErrorCode::TypeOverflow) throw;
            throw Error(e.code(),
                        fmt::format("{}: staging row {} column '{}': {}", where_, staged.rows + 1,
                                    source_schema.columns[c].name, e.what()),
                        e.hint());
          }
        }
        insert.step();
        insert.reset();
        ++staged.rows;
        if (++in_txn >= kCommitEveryRows) {
          txn->commit();
          txn.emplace(db, "BEGIN IMMEDIATE");
          in_txn = 0;
        }
      }
      staged.bytes += static_cast<int64_t>(batch.byte_size());
      if (on_progress_) on_progress_(staged.rows, staged.bytes);
    };
    if (reader) {
      while (auto batch = reader->next()) write(*batch);
    } else {
      for (const auto& batch : in_memory->batches) write(batch);
    }
    txn->commit();
    // The staged pages move into the database file, so the promotion's writes start the
    // WAL over instead of adding to it: the disk holds the window twice, not three times.
    checkpoint(db);
    staged.details = {{"database", path_}, {"schema", schema_}, {"table", stg}};
    return staged;
  }

  // Every gate runs as SQL on the staging table (core/connector/sql_gates.hpp judges it);
  // typed_hash uses two functions registered on this connection.
  std::vector<GateResult> check(const StagedLoad& staged,
                                const std::vector<GateSpec>& gates) override {
    SqliteDb& db = writable();
    db.set_failure_code(ErrorCode::StageFailed);
    Schema staged_columns;  // as the catalog types them; the runtime's annotation refines it
    for (const auto& c : table_info(db, staged.staging_name))
      staged_columns.columns.push_back(Column{c.name, sqlite::logical_type_of(c.declared, TypeSide::Target).type, true});
    if (staged_columns.columns.empty()) {
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: staging table {} is missing", where_, staged.staging_name));
    }
    register_sqlite_gate_functions(db.get());
    SqlGateTarget target{qualified(staged.staging_name), staged_gate_schema(gates, std::move(staged_columns)),
                         where_, "sqlite"};
    SqlGateDialect dialect;
    dialect.quote_ident = [](const std::string& c) { return quote_ident(c); };
    dialect.quote_literal = [](const std::string& v) { return quote_literal(v); };
    dialect.row_id = "rowid";
    // Decimals are stored as canonical text: compare them as numbers.
    dialect.comparable = [](const std::string& c, const LogicalType& t) {
      return t.id == TypeId::Decimal ? "CAST(" + c + " AS NUMERIC)" : c;
    };
    dialect.literal = [](const LogicalType& t, const std::string& v) -> std::string {
      if (t.id == TypeId::Bool) return v == "true" ? "1" : "0";
      switch (t.id) {
        case TypeId::Int16: case TypeId::Int32: case TypeId::Int64:
        case TypeId::Float32: case TypeId::Float64: case TypeId::Decimal:
          return v;
        default:
          return quote_literal(v);
      }
    };
    dialect.hash_form = [](const std::string& c, const LogicalType& t) -> std::string {
      switch (t.id) {
        case TypeId::Bool:
          return "CASE " + c + " WHEN 1 THEN 'true' WHEN 0 THEN 'false' END";
        case TypeId::Float32:
          return "dpone_float_bits(" + c + ", 32)";
        case TypeId::Float64:
          return "dpone_float_bits(" + c + ", 64)";
        case TypeId::Bytes:
          return "CASE WHEN " + c + " IS NULL THEN NULL ELSE lower(hex(" + c + ")) END";
        case TypeId::Time:
          return "CASE WHEN instr(" + c + ", '.') > 0 THEN rtrim(rtrim(" + c + ", '0'), '.') ELSE " + c + " END";
        default:
          return "CAST(" + c + " AS TEXT)";
      }
    };
    dialect.byte_length = [](const std::string& e) { return "length(CAST(" + e + " AS BLOB))"; };
    dialect.hash_query = [](const std::string& row, const std::string& stg) {
      return fmt::format("SELECT count(*), dpone_md5_sum({}) FROM {}", row, stg);
    };
    struct Runner : SqlGateRunner {
      SqliteDb& db;
      explicit Runner(SqliteDb& d) : db(d) {}
      std::vector<SqlRow> query(const std::string& sql) override {
        std::vector<SqlRow> out;
        SqliteStmt stmt = db.prepare(sql);
        while (stmt.step()) {
          SqlRow row;
          for (int i = 0; i < stmt.column_count(); ++i) {
            if (stmt.column_is_null(i)) {
              row.emplace_back(stmt.column_name(i), std::nullopt);
            } else if (stmt.column_type(i) == SQLITE_BLOB) {
              row.emplace_back(stmt.column_name(i), fmt::format("<{} bytes>", stmt.column_blob(i).size()));
            } else {
              row.emplace_back(stmt.column_name(i), std::string(stmt.column_text(i)));
            }
          }
          out.push_back(std::move(row));
        }
        return out;
      }
    } runner(db);
    return run_sql_gates(gates, target, dialect, runner, kMaxSamples);
  }

  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override {
    check_staging_name(staged.staging_name);
    // Configuration errors surface with their own code before anything starts: the DDL
    // and the strategy's statements are rendered once without touching the database.
    render_ddl(request.source_schema, request.changes);
    strategy_steps(request.strategy, request.source_schema,
                   shape_from_schema(request.source_schema, request.strategy), staged.staging_name);
    SqliteDb& db = writable();
    db.set_failure_code(ErrorCode::PromoteFailed);
    PromoteResult result;
    result.atomic = true;
    std::optional<SqliteTransaction> txn;
    try {
      txn.emplace(db, "BEGIN IMMEDIATE");
      result.sql.push_back("BEGIN IMMEDIATE");
      // BEGIN IMMEDIATE holds the file's write lock: no other run can promote between
      // this check and COMMIT.
      check_latest_receipt(db, request.expected_latest_receipt);
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
      const std::string as_of =
          request.receipt.loaded_at.empty() ? now_iso8601() : request.receipt.loaded_at;
      // Lineage columns are filled on staging with SQL, then the strategy copies them like
      // any staged column (core/connector/reconcile_sql.hpp, plan_lineage).
      Schema schema = request.source_schema;
      std::vector<Column> lineage;
      if (request.strategy.lineage.any()) {
        register_sqlite_reconcile_functions(db.get());
        std::set<std::string> staging_columns;
        for (const auto& c : table_info(db, staged.staging_name)) staging_columns.insert(c.name);
        LineagePlan lp = plan_lineage(
            request.strategy, reconcile_tables(shape, request.source_schema, staged.staging_name),
            staging_columns, reconcile_dialect(),
            request.receipt.run_id.empty() ? run_id_ : request.receipt.run_id,
            quote_literal(as_of));
        for (const auto& sql : lp.sql) {
          db.exec(sql);
          result.sql.push_back(sql);
        }
        lineage = lp.columns;
        for (const auto& c : lineage) schema.columns.push_back(c);
        shape = target_shape(db, request.strategy);
      }
      int64_t staged_rows = 0;
      auto run_steps = [&] {
        for (const auto& step :
             strategy_steps(request.strategy, schema, shape, staged.staging_name)) {
          switch (step.kind) {
            case StepKind::Exec:
              db.exec(step.sql);
              break;
            case StepKind::CountPrevious:
              result.deleted = db.query_int64(step.sql).value_or(0);
              break;
            case StepKind::CountStaged:
              staged_rows = db.query_int64(step.sql).value_or(0);
              break;
            case StepKind::CountUpdated:
              result.updated = db.query_int64(step.sql).value_or(0);
              result.inserted = staged_rows - result.updated;
              break;
            case StepKind::Insert:
              db.exec(step.sql);
              result.inserted += db.changes();
              break;
          }
          result.sql.push_back(step.sql);
        }
      };
      if (request.strategy.reconciles()) {
        // snapshot_diff, scd2, merge + key_snapshot (core/connector/reconcile_sql.hpp):
        // counts and delete guards before any row changes, in this transaction.
        register_sqlite_reconcile_functions(db.get());
        ReconcileTables tables =
            reconcile_tables(shape, request.source_schema, staged.staging_name);
        tables.copied = lineage;
        ReconcilePlan plan =
            plan_reconcile(request.strategy, tables, reconcile_dialect(), quote_literal(as_of));
        struct Runner : ReconcileRunner {
          SqliteDb& db;
          explicit Runner(SqliteDb& d) : db(d) {}
          void exec(const std::string& sql) override { db.exec(sql); }
          int64_t count(const std::string& sql) override { return db.query_int64(sql).value_or(0); }
        } runner(db);
        std::function<void()> merge;
        if (request.strategy.mode == StrategyMode::Merge) merge = run_steps;
        run_reconcile(plan, request.strategy, runner, merge, where_, target_name(), as_of, result);
      } else {
        run_steps();
      }
      write_receipt(db, request.receipt, result.sql);
      std::string drop = "DROP TABLE " + qualified(staged.staging_name);
      db.exec(drop);
      result.sql.push_back(drop);
      failpoint("inside_promote");
      // An interrupt that arrived during the promotion rolls it back whole.
      check_interrupt("during the promotion (rolled back)");
      txn->commit();
      result.sql.push_back("COMMIT");
      return result;
    } catch (const std::exception& e) {
      if (txn) txn->rollback();
      // A failed exchange may have left the rename flag on for this connection.
      sqlite3_exec(db.get(), "PRAGMA legacy_alter_table = OFF", nullptr, nullptr, nullptr);
      const auto* err = dynamic_cast<const Error*>(&e);
      // A test-armed failpoint keeps its own code, so crash tests can tell it apart; a
      // delete guard (reconcile_sql) keeps GATE_FAILED: nothing was applied.
      if (err && (err->code() == ErrorCode::FailpointTriggered || err->code() == ErrorCode::GateFailed ||
                  err->code() == ErrorCode::StateConflict || err->code() == ErrorCode::DiskFull ||
                  err->code() == ErrorCode::Interrupted))
        throw;
      throw Error(
          ErrorCode::PromoteFailed,
          fmt::format("{}: promotion into {} failed and was rolled back (target, "
                      "receipt and staging unchanged): [{}] {}",
                      where_, target_name(),
                      err ? std::string(err->code_name()) : std::string("INTERNAL"), e.what()),
          err ? err->hint() : std::string());
    }
  }

  void abort(const StagedLoad& staged) noexcept override {
    // Best effort by contract: a staging table that survives is removed by the next
    // run's cleanup_abandoned(), so a failure here is not worth masking the run's error.
    try {
      if (staged.staging_name.find(kStagingInfix) == std::string::npos) return;
      SqliteDb* db = existing();
      if (!db) return;
      drop_freeing_space(*db, staged.staging_name);
      checkpoint(*db);
    } catch (const std::exception& e) {
      warn_staging_left(diagnostics_, where_, staged.staging_name, e);
    }
  }

 private:
  // --- handles --------------------------------------------------------------------

  // The database if the file exists (opened without creating anything), else null.
  SqliteDb* existing() {
    if (db_) return &*db_;
    std::error_code ec;
    if (!fs::exists(path_, ec)) return nullptr;
    db_.emplace(path_, SQLITE_OPEN_READWRITE, ErrorCode::SinkUnavailable);
    opened();
    return &*db_;
  }

  // The database for writing: creates directories and the file, switches to WAL.
  SqliteDb& writable() {
    if (!db_) {
      fs::path parent = fs::path(path_).parent_path();
      std::error_code ec;
      if (!parent.empty()) fs::create_directories(parent, ec);
      if (ec) {
        throw Error(ErrorCode::SinkUnavailable,
                    fmt::format("{}: cannot create the directory {}: {}", where_, parent.string(),
                                ec.message()),
                    "check the permissions of the path, or point `path` elsewhere");
      }
      db_.emplace(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ErrorCode::SinkUnavailable);
      opened();
    }
    if (!wal_) {
      db_->set_failure_code(ErrorCode::SinkUnavailable);
      db_->enable_wal();
      wal_ = true;
    }
    return *db_;
  }

  void opened() {
    check_schema_name();
    // The WAL shrinks back to nothing each time it starts over (see checkpoint()): a
    // load's WAL does not keep the disk full after the load.
    db_->exec(fmt::format("PRAGMA {}.journal_size_limit = 0", quote_ident(schema_)));
    // Test hook: a database that cannot grow past N pages stands in for a full disk where
    // a test cannot mount a small filesystem (tests/e2e/disk_full_test.cpp).
    if (const char* pages = std::getenv("DPONE_TEST_SQLITE_MAX_PAGE_COUNT"))
      db_->exec(fmt::format("PRAGMA {}.max_page_count = {}", quote_ident(schema_), std::atoll(pages)));
  }

  void check_schema_name() {
    SqliteStmt stmt = db_->prepare("SELECT 1 FROM pragma_database_list WHERE name = ?1");
    stmt.bind_text(1, schema_);
    if (!stmt.step()) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: schema '{}' is not a database of {}", where_, schema_, path_),
                  "leave `schema` unset to write to the main database");
    }
  }

  // --- names ----------------------------------------------------------------------

  std::string target_name() const { return schema_ + "." + table_; }
  std::string qualified(const std::string& name) const {
    return quote_ident(schema_) + "." + quote_ident(name);
  }
  std::string staging_name() const {
    return table_ + kStagingInfix + sqlite::sanitize_run_id(run_id_);
  }
  std::string shadow_name() const {
    return table_ + kShadowInfix + sqlite::sanitize_run_id(run_id_);
  }

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

  std::vector<TableColumn> table_info(SqliteDb& db, const std::string& table) {
    SqliteStmt stmt = db.prepare(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, ?2) ORDER BY cid");
    stmt.bind_text(1, table).bind_text(2, schema_);
    std::vector<TableColumn> out;
    while (stmt.step()) {
      TableColumn c;
      c.name = std::string(stmt.column_text(0));
      c.declared = std::string(stmt.column_text(1));
      c.notnull = stmt.column_int64(2) != 0;
      c.pk = static_cast<int>(stmt.column_int64(3));
      out.push_back(std::move(c));
    }
    return out;
  }

  bool table_exists(SqliteDb& db, const std::string& table) {
    SqliteStmt stmt = db.prepare(fmt::format(
        "SELECT 1 FROM {}.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        quote_ident(schema_)));
    stmt.bind_text(1, table);
    return stmt.step();
  }

  void check_not_view(SqliteDb& db) {
    SqliteStmt stmt = db.prepare(fmt::format(
        "SELECT type FROM {}.sqlite_master WHERE name = ?1 COLLATE NOCASE AND type = 'view'",
        quote_ident(schema_)));
    stmt.bind_text(1, table_);
    if (stmt.step()) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: {} is a view; the sqlite sink loads tables", where_, target_name()));
    }
  }

  static std::vector<std::string> primary_key_of(const std::vector<TableColumn>& cols) {
    std::vector<std::pair<int, std::string>> pk;
    for (const auto& c : cols)
      if (c.pk > 0) pk.emplace_back(c.pk, c.name);
    std::sort(pk.begin(), pk.end());
    std::vector<std::string> out;
    for (auto& p : pk) out.push_back(p.second);
    return out;
  }

  Schema schema_of(const std::vector<TableColumn>& cols) {
    Schema schema;
    for (const auto& c : cols) {
      auto mapped = sqlite::logical_type_of(c.declared, TypeSide::Target);
      if (!mapped.known && diagnostics_ && warned_.insert(c.name).second) {
        diagnostics_->warn(fmt::format(
            "{}: column '{}' of {} has the declared type '{}', which dpone does not map; it "
            "is compared as string",
            where_, c.name, target_name(), c.declared));
      }
      schema.columns.push_back(Column{c.name, mapped.type, !c.notnull});
    }
    schema.primary_key = primary_key_of(cols);
    return schema;
  }

  // Is there a PRIMARY KEY or a full (non-partial) UNIQUE index on exactly `keys`?
  bool key_is_unique(SqliteDb& db, const std::vector<TableColumn>& cols,
                     const std::vector<std::string>& keys) {
    if (keys.empty()) return false;
    auto lower_set = [](const std::vector<std::string>& names) {
      std::set<std::string> out;
      for (auto n : names) {
        for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        out.insert(n);
      }
      return out;
    };
    const auto wanted = lower_set(keys);
    if (lower_set(primary_key_of(cols)) == wanted) return true;
    std::vector<std::string> indexes;
    {
      SqliteStmt list = db.prepare(
          "SELECT name FROM pragma_index_list(?1, ?2) WHERE \"unique\" = 1 AND partial = 0");
      list.bind_text(1, table_).bind_text(2, schema_);
      while (list.step()) indexes.emplace_back(list.column_text(0));
    }
    for (const auto& index : indexes) {
      SqliteStmt info = db.prepare("SELECT name FROM pragma_index_info(?1, ?2)");
      info.bind_text(1, index).bind_text(2, schema_);
      std::vector<std::string> names;
      bool expression = false;
      while (info.step()) {
        if (info.column_is_null(0))
          expression = true;
        else
          names.emplace_back(info.column_text(0));
      }
      if (!expression && lower_set(names) == wanted) return true;
    }
    return false;
  }

  TargetShape target_shape(SqliteDb& db, const StrategySpec& strategy) {
    TargetShape shape;
    shape.columns = table_info(db, table_);
    shape.exists = !shape.columns.empty();
    if (!shape.exists) return shape;
    shape.create_sql =
        db.query_text(
              fmt::format("SELECT sql FROM {}.sqlite_master WHERE type = 'table' AND name = "
                          "{} COLLATE NOCASE",
                          quote_ident(schema_), quote_literal(table_)))
            .value_or("");
    if (strategy.mode == StrategyMode::FullRefresh &&
        strategy.overwrite == OverwriteMethod::Exchange) {
      SqliteStmt deps = db.prepare(fmt::format(
          "SELECT sql FROM {}.sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ?1 "
          "COLLATE NOCASE AND sql IS NOT NULL ORDER BY type = 'trigger', rowid",
          quote_ident(schema_)));
      deps.bind_text(1, table_);
      while (deps.step()) shape.dependent_sql.emplace_back(deps.column_text(0));
    }
    if (strategy.mode == StrategyMode::Merge)
      shape.key_unique = key_is_unique(db, shape.columns, strategy.unique_key);
    return shape;
  }

  // The target as the CreateTable change will make it (for plans of a first run).
  TargetShape shape_from_schema(const Schema& schema, const StrategySpec& strategy) const {
    TargetShape shape;
    shape.exists = true;
    for (const auto& c : schema.columns) {
      TableColumn t{c.name, sqlite::declared_type(c.type), !c.nullable, 0};
      auto it = std::find(schema.primary_key.begin(), schema.primary_key.end(), c.name);
      if (it != schema.primary_key.end())
        t.pk = static_cast<int>(it - schema.primary_key.begin()) + 1;
      shape.columns.push_back(std::move(t));
    }
    if (strategy.mode == StrategyMode::Merge) {
      std::set<std::string> pk(schema.primary_key.begin(), schema.primary_key.end());
      std::set<std::string> keys(strategy.unique_key.begin(), strategy.unique_key.end());
      shape.key_unique = !keys.empty() && pk == keys;
    }
    return shape;
  }

  // --- SQL ------------------------------------------------------------------------

  std::string create_table_sql(const std::string& qualified_name, const Schema& schema,
                               bool constraints) const {
    std::vector<std::string> defs;
    for (const auto& c : schema.columns) {
      std::string def = quote_ident(c.name) + " " + sqlite::declared_type(c.type);
      if (constraints && !c.nullable) def += " NOT NULL";
      defs.push_back(std::move(def));
    }
    if (constraints && !schema.primary_key.empty()) {
      defs.push_back("PRIMARY KEY (" + join_quoted(schema.primary_key) + ")");
    }
    return fmt::format("CREATE TABLE {} ({})", qualified_name, fmt::join(defs, ", "));
  }

  // The shadow table of an exchange: the target's own definition under another name
  // (constraints, defaults and collations kept); rendered from its columns if the stored
  // SQL cannot be rewritten.
  std::string shadow_sql(const TargetShape& shape) const {
    if (!shape.create_sql.empty()) {
      if (auto sql = rename_create_table(shape.create_sql, qualified(shadow_name()))) return *sql;
    }
    std::vector<std::string> defs;
    for (const auto& c : shape.columns) {
      std::string def = quote_ident(c.name);
      if (!c.declared.empty()) def += " " + c.declared;
      if (c.notnull) def += " NOT NULL";
      defs.push_back(std::move(def));
    }
    auto pk = primary_key_of(shape.columns);
    if (!pk.empty()) defs.push_back("PRIMARY KEY (" + join_quoted(pk) + ")");
    return fmt::format("CREATE TABLE {} ({})", qualified(shadow_name()), fmt::join(defs, ", "));
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
    std::vector<Step> steps;
    switch (strategy.mode) {
      case StrategyMode::FullRefresh:
        steps.push_back({StepKind::CountPrevious, "SELECT count(*) FROM " + target});
        if (strategy.overwrite != OverwriteMethod::Exchange) {
          steps.push_back({StepKind::Exec, "DELETE FROM " + target});
          steps.push_back({StepKind::Insert, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}",
                                                         target, cols, cols, stg)});
        } else {
          const std::string shadow = qualified(shadow_name());
          steps.push_back({StepKind::Exec, shadow_sql(shape)});
          steps.push_back({StepKind::Insert, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}",
                                                         shadow, cols, cols, stg)});
          steps.push_back({StepKind::Exec, "DROP TABLE " + target});
          // Legacy rename: the modern one re-parses every view and trigger of the schema
          // and fails on views over the table we just dropped.
          steps.push_back({StepKind::Exec, "PRAGMA legacy_alter_table = ON"});
          steps.push_back({StepKind::Exec, fmt::format("ALTER TABLE {} RENAME TO {}", shadow,
                                                       quote_ident(table_))});
          steps.push_back({StepKind::Exec, "PRAGMA legacy_alter_table = OFF"});
          for (const auto& sql : shape.dependent_sql) steps.push_back({StepKind::Exec, sql});
        }
        break;
      case StrategyMode::Append:
        if (strategy.only_new_rows) {
          check_keys(strategy.unique_key, source_schema, "append with only_new_rows");
          std::vector<std::string> match;
          for (const auto& k : strategy.unique_key)
            match.push_back(fmt::format("t.{} IS s.{}", quote_ident(k), quote_ident(k)));
          steps.push_back(
              {StepKind::Insert,
               fmt::format("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE NOT EXISTS "
                           "(SELECT 1 FROM {} AS t WHERE {})",
                           target, cols, join_quoted(source_schema.names(), "s."), stg, target,
                           fmt::join(match, " AND "))});
        } else {
          steps.push_back({StepKind::Insert, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}",
                                                         target, cols, cols, stg)});
        }
        break;
      case StrategyMode::Merge: {
        check_keys(strategy.unique_key, source_schema, "merge");
        std::vector<std::string> match;
        for (const auto& k : strategy.unique_key)
          match.push_back(fmt::format("t.{} = s.{}", quote_ident(k), quote_ident(k)));
        steps.push_back({StepKind::CountStaged, "SELECT count(*) FROM " + stg});
        steps.push_back({StepKind::CountUpdated,
                         fmt::format("SELECT count(*) FROM {} AS s WHERE EXISTS (SELECT 1 FROM {} "
                                     "AS t WHERE {})",
                                     stg, target, fmt::join(match, " AND "))});
        const std::string keys = join_quoted(strategy.unique_key);
        // DPONE_TEST_BROKEN_MERGE=1 builds a deliberately wrong merge (updates ignored):
        // the switch exists only so tests can show that `connectors certify` catches a
        // broken connector and names the scenario. Never set it otherwise.
        static const bool broken_for_tests = std::getenv("DPONE_TEST_BROKEN_MERGE") != nullptr;
        if (shape.key_unique) {
          std::vector<std::string> sets;
          for (const auto& c : source_schema.columns) {
            if (std::find(strategy.unique_key.begin(), strategy.unique_key.end(), c.name) !=
                strategy.unique_key.end())
              continue;
            sets.push_back(
                fmt::format("{} = excluded.{}", quote_ident(c.name), quote_ident(c.name)));
          }
          std::string action = sets.empty() || broken_for_tests
                                   ? std::string("DO NOTHING")
                                   : fmt::format("DO UPDATE SET {}", fmt::join(sets, ", "));
          steps.push_back(
              {StepKind::Exec, fmt::format("INSERT INTO {} ({}) SELECT {} FROM {} WHERE true "
                                           "ON CONFLICT ({}) {}",
                                           target, cols, cols, stg, keys, action)});
        } else {
          std::string lhs = strategy.unique_key.size() == 1 ? keys : "(" + keys + ")";
          if (!broken_for_tests)
            steps.push_back({StepKind::Exec, fmt::format("DELETE FROM {} WHERE {} IN (SELECT {} FROM {})",
                                                         target, lhs, keys, stg)});
          steps.push_back({StepKind::Exec,
                           fmt::format("INSERT INTO {} ({}) SELECT {} FROM {}{}", target, cols, cols, stg,
                                       broken_for_tests ? fmt::format(" WHERE {} NOT IN (SELECT {} FROM {})",
                                                                      lhs, keys, target)
                                                        : "")});
        }
        break;
      }
      case StrategyMode::SnapshotDiff:
      case StrategyMode::Scd2:
        // All their SQL comes from plan_reconcile (core/connector/reconcile_sql).
        check_keys(strategy.unique_key, source_schema, to_string(strategy.mode).c_str());
        break;
      default:
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the sqlite sink does not support the strategy '{}'", where_,
                                to_string(strategy.mode)),
                    "use full_refresh, append, merge, snapshot_diff or scd2");
    }
    return steps;
  }

  // --- reconciliation (snapshot_diff, scd2, key_snapshot) -----------------------------

  ReconcileTables reconcile_tables(const TargetShape& shape, const Schema& source_schema,
                                   const std::string& staging) const {
    ReconcileTables t;
    t.target = qualified(table_);
    t.staging = qualified(staging);
    t.columns = source_schema.columns;
    for (const auto& c : shape.columns) t.target_columns.insert(c.name);
    return t;
  }

  static ReconcileDialect reconcile_dialect() {
    ReconcileDialect d;
    d.quote_ident = [](const std::string& n) { return quote_ident(n); };
    // quote() tells storage classes apart ('1' vs 1) and is exact but for floats, which
    // get all 17 significant digits.
    d.value_text = [](const std::string& c, const LogicalType& t) {
      if (t.id == TypeId::Float32 || t.id == TypeId::Float64) return "printf('%!.17g', " + c + ")";
      return "quote(" + c + ")";
    };
    d.hash_text = [](const std::string& text) { return "dpone_row_hash(" + text + ")"; };
    d.timestamp_literal = [](const std::string& iso) { return quote_literal(iso); };
    d.timestamp_type = sqlite::declared_type(LogicalType::timestamp(3, true));
    d.bool_type = sqlite::declared_type(LogicalType::of(TypeId::Bool));
    d.text_type = "TEXT";
    d.true_literal = "1";
    d.false_literal = "0";
    // Registered with dpone_row_hash (register_sqlite_reconcile_functions).
    d.hash_sum = [](const std::string& hash) { return "dpone_hash_sum(" + hash + ")"; };
    return d;
  }

  // DROP TABLE on a full disk: dropping writes a few pages to the WAL, which may have no
  // room left after a promotion failed for space. The WAL is checkpointed and truncated
  // (giving its space back to the filesystem) and the drop tried once more; the freed
  // pages go to the database's free list, where the next load reuses them.
  void drop_freeing_space(SqliteDb& db, const std::string& table) {
    const std::string drop = "DROP TABLE IF EXISTS " + qualified(table);
    try {
      db.exec(drop);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::DiskFull) throw;
      checkpoint(db, SQLITE_CHECKPOINT_TRUNCATE);
      db.exec(drop);
    }
  }

  // Moves the WAL's committed pages into the database file. PASSIVE never waits for a
  // reader; once every page is in, the next write starts the WAL over, and the
  // connection's journal_size_limit (0, set in opened()) gives the file's space back.
  // Best effort: a checkpoint that cannot finish (no room to grow the database, a reader
  // on an old snapshot) leaves the WAL as it was, and nothing is lost.
  void checkpoint(SqliteDb& db, int mode = SQLITE_CHECKPOINT_PASSIVE) noexcept {
    sqlite3_wal_checkpoint_v2(db.get(), schema_.c_str(), mode, nullptr, nullptr);
  }

  // The receipt compare-and-set (PromoteRequest::expected_latest_receipt), inside the
  // promotion transaction.
  void check_latest_receipt(SqliteDb& db, const std::string& expected) {
    std::string latest;
    if (table_exists(db, kLoadsTable)) {
      SqliteStmt stmt = db.prepare(fmt::format("SELECT \"run_id\" FROM {} WHERE \"stream\" = ?1 "
                                               "ORDER BY \"loaded_at\" DESC, rowid DESC LIMIT 1",
                                               qualified(kLoadsTable)));
      stmt.bind_text(1, stream_);
      if (stmt.step()) latest = std::string(stmt.column_text(0));
    }
    if (latest != expected) throw_receipt_conflict(where_, stream_, latest, expected);
  }

  std::vector<std::string> receipt_sql() const {
    return {
        fmt::format("CREATE TABLE IF NOT EXISTS {} (\"stream\" TEXT, \"run_id\" TEXT, "
                    "\"base_revision\" INTEGER, \"window\" TEXT, \"new_position\" TEXT, "
                    "\"rows\" INTEGER, \"loaded_at\" TEXT, PRIMARY KEY (\"stream\", \"run_id\"))",
                    qualified(kLoadsTable)),
        fmt::format("INSERT INTO {} (\"stream\", \"run_id\", \"base_revision\", \"window\", "
                    "\"new_position\", \"rows\", \"loaded_at\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                    "?7)",
                    qualified(kLoadsTable))};
  }

  void write_receipt(SqliteDb& db, const LoadReceipt& receipt, std::vector<std::string>& log) {
    auto sql = receipt_sql();
    db.exec(sql[0]);
    log.push_back(sql[0]);
    SqliteStmt insert = db.prepare(sql[1]);
    insert.bind_text(1, receipt.stream.empty() ? stream_ : receipt.stream)
        .bind_text(2, receipt.run_id.empty() ? run_id_ : receipt.run_id)
        .bind_int64(3, receipt.base_revision)
        .bind_text(4, receipt.window.dump())
        .bind_text(5, receipt.new_position.dump())
        .bind_int64(6, receipt.rows)
        .bind_text(7, receipt.loaded_at.empty() ? now_iso8601() : receipt.loaded_at);
    insert.run();
    log.push_back(sql[1]);
  }

  nlohmann::json parse_receipt_json(const SqliteStmt& stmt, int col, const std::string& run_id) {
    if (stmt.column_is_null(col)) return nullptr;
    try {
      return nlohmann::json::parse(stmt.column_text(col));
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
  std::string path_;
  std::string table_;
  std::string schema_;
  std::optional<SqliteDb> db_;
  bool wal_ = false;
  std::set<std::string> warned_;
  bool history_table_ = false;  // strategy scd2
};

}  // namespace

std::unique_ptr<Sink> make_sqlite_sink(const SinkContext& context) {
  return std::make_unique<SqliteSink>(context);
}

}  // namespace dpone
