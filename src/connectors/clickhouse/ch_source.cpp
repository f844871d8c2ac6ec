// The clickhouse source: a table (or one SELECT) read with SELECT ... FORMAT
// TabSeparated, streamed over HTTP and decoded into record batches of canonical text.
//   full:   every run reads everything.
//   cursor: rows with low < cursor <= high, where high = max(cursor) when the run starts
//           (positions are kept as the cursor's ClickHouse text, or a number for integers).
#include <fmt/format.h>

#include <cstring>

#include "connectors/clickhouse/ch_connector.hpp"
#include "core/errors.hpp"

namespace dpone {

namespace {

using ch::Client;
using ch::quote_ident;
using ch::quote_literal;

bool is_integer(const LogicalType& t) {
  return t.id == TypeId::Int16 || t.id == TypeId::Int32 || t.id == TypeId::Int64;
}

// Decodes TabSeparated bytes into batches.
class TsvBatchReader : public BatchReader {
 public:
  TsvBatchReader(Schema schema, std::vector<ch::ReadType> reads, std::unique_ptr<ByteReader> in,
                 size_t batch_rows, std::string where)
      : schema_(std::move(schema)),
        reads_(std::move(reads)),
        in_(std::move(in)),
        batch_rows_(batch_rows ? batch_rows : 8192),
        where_(std::move(where)) {}

  const Schema& schema() const override { return schema_; }

  std::optional<RecordBatch> next() override {
    RecordBatch batch(schema_.columns.size());
    size_t rows = 0;
    std::string line;
    while (rows < batch_rows_ && next_line(line)) {
      add_row(batch, line);
      ++rows;
    }
    if (rows == 0) return std::nullopt;
    return batch;
  }

 private:
  bool next_line(std::string& line) {
    line.clear();
    while (true) {
      if (pos_ < buf_.size()) {
        const char* start = buf_.data() + pos_;
        const char* nl = static_cast<const char*>(std::memchr(start, '\n', buf_.size() - pos_));
        if (nl) {
          line.append(start, static_cast<size_t>(nl - start));
          pos_ = static_cast<size_t>(nl - buf_.data()) + 1;
          return true;
        }
        line.append(start, buf_.size() - pos_);
      }
      buf_.resize(256 * 1024);
      size_t n = in_->read(buf_.data(), buf_.size());
      buf_.resize(n);
      pos_ = 0;
      if (n == 0) return !line.empty();
    }
  }

  void add_row(RecordBatch& batch, const std::string& line) {
    ++row_;
    size_t col = 0, start = 0;
    for (size_t i = 0; i <= line.size(); ++i) {
      if (i < line.size() && line[i] != '\t') continue;
      std::string_view f(line.data() + start, i - start);
      if (col >= schema_.columns.size()) break;
      if (f == "\\N") {
        batch.append_null();
      } else {
        batch.append(ch::to_canonical(ch::tsv_unescape(f), reads_[col]));
      }
      ++col;
      start = i + 1;
    }
    if (col != schema_.columns.size()) {
      throw Error(ErrorCode::SourceReadFailed,
                  fmt::format("{}: result row {} has {} fields, expected {} (the server may have "
                              "failed mid-stream: '{}')",
                              where_, row_, col, schema_.columns.size(), line.substr(0, 200)),
                  "see the ClickHouse server log");
    }
  }

  Schema schema_;
  std::vector<ch::ReadType> reads_;
  std::unique_ptr<ByteReader> in_;
  size_t batch_rows_;
  std::string where_;
  std::string buf_;
  size_t pos_ = 0;
  int64_t row_ = 0;
};

class ChSource : public Source {
 public:
  explicit ChSource(const SourceContext& ctx) {
    ConnectorOptions options(ctx.options,
                             fmt::format("stream '{}': clickhouse source", ctx.stream));
    where_ = options.where();
    endpoint_ = ch::endpoint_from(ch::require_connection(ctx.connection, where_), where_);
    table_ = options.string("table").value_or("");
    query_ = options.string("query").value_or("");
    if (table_.empty() == query_.empty()) {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{} needs exactly one of `table` and `query`", where_));
    }
    db_ = options.string("database")
              .value_or(endpoint_.database.empty() ? "default" : endpoint_.database);
    cursor_ = options.string("cursor").value_or("");
    std::string inc = options.string("incremental").value_or(cursor_.empty() ? "full" : "cursor");
    if (inc != "full" && inc != "cursor") {
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: incremental '{}' is not full or cursor", where_, inc));
    }
    incremental_cursor_ = inc == "cursor";
    if (incremental_cursor_ && cursor_.empty()) {
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format("{}: incremental: cursor needs the `cursor` option (a column)", where_));
    }
    primary_key_ = options.string_list("primary_key");
  }

  Window plan_window(const nlohmann::json& position) override {
    Window w;
    w.low = position;
    if (!incremental_cursor_) {
      w.description = "full";
      w.estimated_rows = client().int64("SELECT count() FROM " + from());
      return w;
    }
    discover();
    int ci = schema_->find(cursor_);
    if (ci < 0) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{}: cursor column '{}' is not a column of {}", where_, cursor_, what()),
          fmt::format("columns: {}", fmt::join(schema_->names(), ", ")));
    }
    cursor_integer_ = is_integer(schema_->columns[static_cast<size_t>(ci)].type) ||
                      reads_[static_cast<size_t>(ci)].base == "Int64";
    auto high =
        client().value(fmt::format("SELECT toString(max({})) FROM {}{}", quote_ident(cursor_),
                                   from(), position.is_null() ? "" : " WHERE " + above(position)));
    auto count = client().int64(fmt::format("SELECT count() FROM {} WHERE {} IS NOT NULL{}", from(),
                                            quote_ident(cursor_),
                                            position.is_null() ? "" : " AND " + above(position)));
    if (!high || count == 0) {
      w.high = position;
      w.empty = true;
      w.description = fmt::format("({}, {}] empty", position.is_null() ? "-inf" : position.dump(),
                                  position.is_null() ? "-inf" : position.dump());
      w.estimated_rows = 0;
      return w;
    }
    w.high = cursor_integer_ ? nlohmann::json(std::stoll(*high)) : nlohmann::json(*high);
    w.estimated_rows = count;
    w.description =
        fmt::format("({}, {}]", position.is_null() ? "-inf" : position.dump(), w.high.dump());
    return w;
  }

  Schema discover() override {
    if (schema_) return *schema_;
    Schema s;
    if (!table_.empty()) {
      auto cols = ch::table_columns(client(), db_, table_);
      if (cols.empty()) {
        throw Error(ErrorCode::SourceUnavailable,
                    fmt::format("{}: table {}.{} does not exist", where_, db_, table_),
                    "check the table and database options");
      }
      for (const auto& c : cols) add_column(s, c.name, c.type, c.comment);
      if (primary_key_.empty()) {
        auto key = client().value(
            fmt::format("SELECT sorting_key FROM system.tables WHERE database = {} AND name = {}",
                        quote_literal(db_), quote_literal(table_)));
        // A simple column list only; an expression key is no row identity.
        auto names = ch::sorting_key_columns(key.value_or(""));
        bool simple = !names.empty();
        for (const auto& n : names) simple = simple && s.find(n) >= 0;
        if (simple) s.primary_key = names;
      }
    } else {
      ch::Rows rows = client().rows(fmt::format("DESCRIBE TABLE ({})", query_));
      for (const auto& r : rows)
        if (r.size() >= 2) add_column(s, r[0], r[1], "");
    }
    if (!primary_key_.empty()) s.primary_key = primary_key_;
    schema_ = s;
    return s;
  }

  std::vector<ArtifactSpec> produces() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  Artifact extract(const Window& window, const ArtifactSpec& spec,
                   const ExtractOptions& options) override {
    if (!(spec == ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch})) {
      throw Error(ErrorCode::Internal,
                  fmt::format("{}: cannot produce {}", where_, spec.to_string()));
    }
    Schema s = discover();
    std::vector<std::string> cols;
    for (const auto& c : s.columns) cols.push_back(quote_ident(c.name));
    std::string sql = fmt::format("SELECT {} FROM {}", fmt::join(cols, ", "), from());
    if (incremental_cursor_) {
      std::vector<std::string> conds;
      if (!window.low.is_null()) conds.push_back(above(window.low));
      conds.push_back(fmt::format("{} <= {}", quote_ident(cursor_), literal(window.high)));
      sql += fmt::format(" WHERE {}", fmt::join(conds, " AND "));
    }
    sql += " FORMAT TabSeparated";
    // A stream of its own: the metadata client stays usable while this one is read.
    auto stream_client = std::make_shared<Client>(endpoint_, ErrorCode::SourceUnavailable);
    stream_client->set_failure_code(ErrorCode::SourceReadFailed);
    // Decimals keep their scale (12.50, not 12.5) on servers that drop trailing zeros.
    auto [major, minor] = client().version_number();
    ch::Settings settings;
    if (ch::features_of(major, minor, client().version()).decimal_trailing_zeros_setting)
      settings["output_format_decimal_trailing_zeros"] = "1";
    auto bytes = stream_client->select_stream(sql, settings);
    StreamingRows rows;
    rows.format = WireFormat::RecordBatch;
    rows.batches = std::make_unique<TsvBatchReader>(
        s, reads_, std::make_unique<Holder>(stream_client, std::move(bytes)), options.batch_rows,
        where_);
    return rows;
  }

  nlohmann::json next_position(const Window& window) override {
    return window.empty ? window.low : window.high;
  }

 private:
  // Keeps the client alive as long as its stream.
  struct Holder : ByteReader {
    Holder(std::shared_ptr<Client> c, std::unique_ptr<ByteReader> r)
        : client(std::move(c)), reader(std::move(r)) {}
    size_t read(char* b, size_t n) override { return reader->read(b, n); }
    std::shared_ptr<Client> client;
    std::unique_ptr<ByteReader> reader;
  };

  Client& client() {
    if (!client_) client_ = std::make_unique<Client>(endpoint_, ErrorCode::SourceUnavailable);
    client_->set_failure_code(ErrorCode::SourceReadFailed);
    return *client_;
  }

  void add_column(Schema& s, const std::string& name, const std::string& type,
                  const std::string& comment) {
    ch::ReadType r = ch::map_clickhouse(type, comment);
    s.columns.push_back(Column{name, r.type, r.nullable});
    reads_.push_back(r);
  }

  std::string what() const { return table_.empty() ? "the query" : db_ + "." + table_; }
  std::string from() const {
    return table_.empty() ? "(" + query_ + ")" : quote_ident(db_) + "." + quote_ident(table_);
  }
  std::string literal(const nlohmann::json& v) const {
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_string()) return quote_literal(v.get<std::string>());
    return quote_literal(v.dump());
  }
  std::string above(const nlohmann::json& low) const {
    return fmt::format("{} > {}", quote_ident(cursor_), literal(low));
  }

  std::string where_;
  ch::Endpoint endpoint_;
  std::string table_, query_, db_, cursor_;
  bool incremental_cursor_ = false;
  bool cursor_integer_ = false;
  std::vector<std::string> primary_key_;
  std::unique_ptr<Client> client_;
  std::optional<Schema> schema_;
  std::vector<ch::ReadType> reads_;
};

}  // namespace

std::unique_ptr<Source> make_clickhouse_source(const SourceContext& context) {
  return std::make_unique<ChSource>(context);
}

}  // namespace dpone
