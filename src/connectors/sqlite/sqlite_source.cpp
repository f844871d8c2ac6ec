// The sqlite source: a table (or one SELECT) of a database file, read in full or by a
// cursor column.
//
// Windows (cursor mode): high = max(cursor) read at plan time and fixed for the run;
// low = the committed position; the run reads cursor > low AND cursor <= high in cursor
// order. Rows whose cursor is NULL are never read in cursor mode. Positions keep the
// SQLite value's type (integers stay JSON integers) so the comparison in SQL is the same
// one SQLite did when it computed max().
//
// The source opens the file read-only and never writes. The reader that extract()
// returns owns its own connection, so it outlives the source if the runtime wants.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "connectors/sqlite/sqlite_connector.hpp"
#include "connectors/sqlite/sqlite_types.hpp"
#include "core/errors.hpp"
#include "core/state/sqlite_handle.hpp"

namespace dpone {

namespace {

using sqlite::TypeSide;

SqliteDb open_read_only(const std::string& path, const std::string& where) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorCode::SourceUnavailable,
                fmt::format("{}: the SQLite database {} does not exist", where, path),
                "check the `path` (a relative path resolves against the manifest's directory)");
  }
  SqliteDb db(path, SQLITE_OPEN_READONLY, ErrorCode::SourceUnavailable);
  // The first read proves the file is a database (open_v2 is lazy about that).
  db.query_int64("SELECT count(*) FROM sqlite_master");
  db.set_failure_code(ErrorCode::SourceReadFailed);
  return db;
}

// Rethrows a conversion error with the row and column it happened at.
[[noreturn]] void rethrow_at(const Error& e, const std::string& where, int64_t row,
                             const std::string& column) {
  throw Error(e.code(), fmt::format("{}: row {} column '{}': {}", where, row, column, e.what()),
              e.hint());
}

class SqliteBatchReader : public BatchReader {
 public:
  SqliteBatchReader(SqliteDb db, const std::string& sql, const nlohmann::json& low,
                    const nlohmann::json& high, int params, Schema schema, size_t batch_rows,
                    std::string where)
      : db_(std::move(db)),
        stmt_(db_.prepare(sql)),
        schema_(std::move(schema)),
        batch_rows_(batch_rows == 0 ? 8192 : batch_rows),
        where_(std::move(where)) {
    if (params >= 1) sqlite::bind_json(stmt_, 1, low);
    if (params >= 2) sqlite::bind_json(stmt_, 2, high);
    if (stmt_.column_count() != static_cast<int>(schema_.columns.size())) {
      throw Error(ErrorCode::SourceReadFailed,
                  fmt::format("{}: the query returns {} columns but {} were discovered; the "
                              "table changed during the run",
                              where_, stmt_.column_count(), schema_.columns.size()),
                  "re-run the stream");
    }
  }

  const Schema& schema() const override { return schema_; }

  std::optional<RecordBatch> next() override {
    if (done_) return std::nullopt;
    RecordBatch batch(schema_.columns.size());
    size_t rows = 0;
    int cols = static_cast<int>(schema_.columns.size());
    while (rows < batch_rows_) {
      if (!stmt_.step()) {
        done_ = true;
        break;
      }
      ++row_;
      for (int c = 0; c < cols; ++c) {
        try {
          sqlite::append_cell(stmt_, c, schema_.columns[c].type, batch);
        } catch (const Error& e) {
          rethrow_at(e, where_, row_, schema_.columns[c].name);
        }
      }
      ++rows;
    }
    if (rows == 0) return std::nullopt;
    return batch;
  }

 private:
  SqliteDb db_;  // declared before stmt_: the statement is finalized first
  SqliteStmt stmt_;
  Schema schema_;
  size_t batch_rows_;
  std::string where_;
  int64_t row_ = 0;
  bool done_ = false;
};

// A reader for a window known to be empty: no query at all.
class EmptyBatchReader : public BatchReader {
 public:
  explicit EmptyBatchReader(Schema schema) : schema_(std::move(schema)) {}
  const Schema& schema() const override { return schema_; }
  std::optional<RecordBatch> next() override { return std::nullopt; }

 private:
  Schema schema_;
};

class SqliteSource : public Source {
 public:
  explicit SqliteSource(const SourceContext& ctx) : diagnostics_(ctx.diagnostics) {
    sqlite::Options options(ctx.options, fmt::format("stream '{}': sqlite source", ctx.stream));
    where_ = options.where();
    path_ = sqlite::resolve_database_path(options, ctx.connection, ctx.base_dir, ctx.diagnostics);
    table_ = options.string("table").value_or("");
    query_ = options.string("query").value_or("");
    // The query is wrapped in a subquery for counting and windows: no trailing ';'.
    while (!query_.empty() &&
           (query_.back() == ';' || std::isspace(static_cast<unsigned char>(query_.back())))) {
      query_.pop_back();
    }
    schema_name_ = options.string("schema").value_or("main");
    cursor_ = options.string("cursor").value_or("");
    primary_key_ = options.string_list("primary_key");
    std::string mode = options.string("incremental").value_or(cursor_.empty() ? "full" : "cursor");
    if (mode != "full" && mode != "cursor") {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{} option `incremental` is '{}'; the sqlite source supports full "
                              "and cursor",
                              where_, mode));
    }
    cursor_mode_ = mode == "cursor";
    if (table_.empty() == query_.empty()) {
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{} needs exactly one of the options `table` and `query`", where_),
                  "`table: name` reads a table or view; `query: SELECT ...` reads one query");
    }
    if (cursor_mode_ && cursor_.empty()) {
      throw Error(ErrorCode::ConfigMissingKey,
                  fmt::format("{}: incremental: cursor needs the `cursor` option (the column "
                              "whose growth marks new rows)",
                              where_));
    }
    if (!cursor_mode_ && !cursor_.empty()) {
      throw Error(
          ErrorCode::ConfigInvalid,
          fmt::format("{}: `cursor: {}` is set but `incremental` is full", where_, cursor_));
    }
    object_ = table_.empty() ? std::string("query") : schema_name_ + "." + table_;
  }

  Window plan_window(const nlohmann::json& position) override {
    SqliteDb& db = handle();
    discover();  // proves the table or query is readable before anything is counted
    position_ = position;
    Window w;
    if (!cursor_mode_) {
      w.description = table_.empty() ? "full query" : "full table " + object_;
      w.estimated_rows = db.query_int64("SELECT count(*) FROM " + from_clause());
      return w;
    }
    check_cursor_column();
    if (position.is_object() && position.contains("cursor")) {
      w.low = position["cursor"];
    } else if (!position.is_null()) {
      throw Error(
          ErrorCode::StateStoreFailed,
          fmt::format("{}: the stored position {} has no `cursor` value", where_, position.dump()),
          "fix it with `dpone state set` or start over with `dpone state reset`");
    }
    {
      SqliteStmt max =
          db.prepare(fmt::format("SELECT max({}) FROM {}", quote_ident(cursor_), from_clause()));
      max.step();
      w.high = sqlite::column_json(max, 0);
    }
    std::string low_text = w.low.is_null() ? "-inf" : sqlite::json_display(w.low);
    if (w.high.is_null()) {
      w.empty = true;
      w.estimated_rows = 0;
      w.description = fmt::format("({}, {}] (empty: {} holds no {} values)", low_text, low_text,
                                  object_, cursor_);
      return w;
    }
    w.description = fmt::format("({}, {}]", low_text, sqlite::json_display(w.high));
    if (!w.low.is_null()) {
      // Compared in SQL, with SQLite's own rules for mixed types.
      SqliteStmt cmp = db.prepare("SELECT ?1 <= ?2");
      sqlite::bind_json(cmp, 1, w.high);
      sqlite::bind_json(cmp, 2, w.low);
      cmp.step();
      if (cmp.column_int64(0) != 0) {
        w.empty = true;
        w.estimated_rows = 0;
        return w;
      }
    }
    SqliteStmt count = db.prepare("SELECT count(*) FROM " + from_clause() + window_predicate(w));
    bind_window(count, w);
    count.step();
    w.estimated_rows = count.column_int64(0);
    if (*w.estimated_rows == 0) w.empty = true;
    return w;
  }

  Schema discover() override {
    if (schema_) return *schema_;
    SqliteDb& db = handle();
    Schema schema = table_.empty() ? discover_query(db) : discover_table(db);
    if (!primary_key_.empty()) {
      for (const auto& k : primary_key_) {
        if (schema.find(k) < 0) {
          throw Error(
              ErrorCode::ConfigBadValue,
              fmt::format("{}: primary_key column '{}' is not a column of {}", where_, k, object_),
              fmt::format("columns: {}", fmt::join(schema.names(), ", ")));
        }
      }
      schema.primary_key = primary_key_;
    }
    schema_ = schema;
    return schema;
  }

  std::vector<ArtifactSpec> produces() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  Artifact extract(const Window& window, const ArtifactSpec& spec,
                   const ExtractOptions& options) override {
    if (spec.kind != ArtifactKind::StreamingRows || spec.format != WireFormat::RecordBatch) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{} cannot produce {}; it produces streaming_rows/record_batch",
                              where_, spec.to_string()));
    }
    Schema schema = discover();
    StreamingRows out;
    out.format = WireFormat::RecordBatch;
    if (window.empty) {
      out.batches = std::make_unique<EmptyBatchReader>(std::move(schema));
      return out;
    }
    std::string sql;
    int params = 0;
    if (!cursor_mode_) {
      sql = table_.empty() ? query_
                           : fmt::format("SELECT {} FROM {}", column_list(schema), from_clause());
    } else {
      sql = fmt::format("SELECT {} FROM {}{} ORDER BY {}",
                        table_.empty() ? std::string("*") : column_list(schema), from_clause(),
                        window_predicate(window), quote_ident(cursor_));
      params = 2;
    }
    // Its own connection: the artifact owns what it reads from.
    SqliteDb db = open_read_only(path_, where_);
    out.batches = std::make_unique<SqliteBatchReader>(
        std::move(db), sql, window.low, window.high, params, std::move(schema), options.batch_rows,
        fmt::format("{} ({} in {})", where_, object_, path_));
    return out;
  }

  nlohmann::json next_position(const Window& window) override {
    if (!cursor_mode_) return nullptr;
    if (window.empty || window.high.is_null()) return position_;
    return nlohmann::json{{"cursor", window.high}};
  }

 private:
  SqliteDb& handle() {
    if (!db_) db_.emplace(open_read_only(path_, where_));
    return *db_;
  }

  std::string from_clause() const {
    if (!table_.empty()) return quote_ident(schema_name_) + "." + quote_ident(table_);
    // A newline before the ")" keeps a trailing "-- comment" in the query from eating it.
    return "(" + query_ + "\n) AS " + quote_ident("q");
  }

  // " WHERE c > ?1 AND c <= ?2" (the low bound only once there is one). ?1 stays in the
  // text either way so the parameter numbers never shift.
  std::string window_predicate(const Window& w) const {
    std::string c = quote_ident(cursor_);
    if (w.low.is_null()) return fmt::format(" WHERE (?1 IS NULL) AND {} <= ?2", c);
    return fmt::format(" WHERE {} > ?1 AND {} <= ?2", c, c);
  }

  void bind_window(SqliteStmt& stmt, const Window& w) const {
    sqlite::bind_json(stmt, 1, w.low);
    sqlite::bind_json(stmt, 2, w.high);
  }

  static std::string column_list(const Schema& schema) {
    std::vector<std::string> cols;
    for (const auto& c : schema.columns) cols.push_back(quote_ident(c.name));
    return fmt::format("{}", fmt::join(cols, ", "));
  }

  void check_cursor_column() {
    Schema schema = discover();
    if (schema.find(cursor_) < 0) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: cursor column '{}' is not a column of {}", where_, cursor_, object_),
          fmt::format("columns: {}", fmt::join(schema.names(), ", ")));
    }
  }

  void warn_type(const std::string& column, const std::string& declared) {
    if (!diagnostics_) return;
    if (declared.empty()) {
      diagnostics_->warn(
          fmt::format("{}: column '{}' of {} has no declared type; its values "
                      "are read as string",
                      where_, column, object_));
    } else {
      diagnostics_->warn(
          fmt::format("{}: column '{}' of {} has the declared type '{}', which "
                      "dpone does not map; its values are read as string",
                      where_, column, object_, declared));
    }
  }

  Schema discover_table(SqliteDb& db) {
    {
      SqliteStmt dbs = db.prepare("SELECT 1 FROM pragma_database_list WHERE name = ?1");
      dbs.bind_text(1, schema_name_);
      if (!dbs.step()) {
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: schema '{}' is not a database of {}", where_, schema_name_, path_),
            "leave `schema` unset to read the main database");
      }
    }
    SqliteStmt info = db.prepare(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, ?2) ORDER BY cid");
    info.bind_text(1, table_).bind_text(2, schema_name_);
    Schema schema;
    std::vector<std::pair<int, std::string>> pk;
    while (info.step()) {
      Column col;
      col.name = std::string(info.column_text(0));
      std::string declared(info.column_text(1));
      auto mapped = sqlite::logical_type_of(declared, TypeSide::Source);
      if (!mapped.known) warn_type(col.name, declared);
      col.type = mapped.type;
      col.nullable = info.column_int64(2) == 0;
      if (info.column_int64(3) > 0)
        pk.emplace_back(static_cast<int>(info.column_int64(3)), col.name);
      schema.columns.push_back(std::move(col));
    }
    if (schema.columns.empty()) {
      std::vector<std::string> names;
      SqliteStmt list = db.prepare(fmt::format(
          "SELECT name FROM {}.sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE "
          "'sqlite\\_%' ESCAPE '\\' ORDER BY name LIMIT 20",
          quote_ident(schema_name_)));
      while (list.step()) names.emplace_back(list.column_text(0));
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: table {} does not exist in {}", where_, object_, path_),
                  names.empty() ? std::string("the database has no tables")
                                : fmt::format("tables there: {}", fmt::join(names, ", ")));
    }
    std::sort(pk.begin(), pk.end());
    for (auto& [i, name] : pk) schema.primary_key.push_back(name);
    return schema;
  }

  Schema discover_query(SqliteDb& db) {
    SqliteStmt stmt = db.prepare(query_);
    if (sqlite3_stmt_readonly(stmt.get()) == 0) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: the `query` must only read (one SELECT statement)", where_));
    }
    Schema schema;
    std::set<std::string> seen;
    bool stepped = false;
    bool has_row = false;
    for (int c = 0; c < stmt.column_count(); ++c) {
      Column col;
      col.name = stmt.column_name(c);
      if (!seen.insert(col.name).second) {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: the query returns two columns named '{}'", where_, col.name),
                    "give each result column its own name with AS");
      }
      auto declared = stmt.column_decltype(c);
      if (declared) {
        auto mapped = sqlite::logical_type_of(*declared, TypeSide::Source);
        if (!mapped.known) warn_type(col.name, *declared);
        col.type = mapped.type;
      } else {
        // An expression has no declared type: take the first row's value type.
        if (!stepped) {
          has_row = stmt.step();
          stepped = true;
        }
        int storage = has_row ? stmt.column_type(c) : SQLITE_NULL;
        col.type = LogicalType::of(storage == SQLITE_INTEGER ? TypeId::Int64
                                   : storage == SQLITE_FLOAT ? TypeId::Float64
                                   : storage == SQLITE_BLOB  ? TypeId::Bytes
                                                             : TypeId::String);
        if (diagnostics_) {
          diagnostics_->warn(fmt::format(
              "{}: query column '{}' is an expression without a declared type; typed {} from "
              "its first value (CAST it to fix the type)",
              where_, col.name, col.type.to_string()));
        }
      }
      schema.columns.push_back(std::move(col));
    }
    return schema;
  }

  Diagnostics* diagnostics_;
  std::string where_;
  std::string path_;
  std::string table_;
  std::string query_;
  std::string schema_name_;
  std::string cursor_;
  std::vector<std::string> primary_key_;
  bool cursor_mode_ = false;
  std::string object_;
  nlohmann::json position_;
  std::optional<SqliteDb> db_;
  std::optional<Schema> schema_;
};

}  // namespace

std::unique_ptr<Source> make_sqlite_source(const SourceContext& context) {
  return std::make_unique<SqliteSource>(context);
}

}  // namespace dpone
