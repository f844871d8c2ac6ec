// The kafka source: a bounded batch read of one or more topics.
//
// Window: at run start, for every partition read, low = the offset stored in dpone state
// (the next offset to read; a partition not yet in state starts at its low watermark, or
// at its high watermark with `start: latest` on the very first run) and high = the
// partition's high watermark. The run reads exactly [low, high) of each partition and
// stops; messages produced meanwhile belong to the next run. next_position() is the high
// watermarks (merged into the stored position), which the runtime commits only after the
// sink promoted the rows: a run that dies re-reads its whole window.
//
// Rows: _topic, _partition, _offset (the primary key), _timestamp, _key, _headers, then
// the value: its JSON fields as columns (declared under `columns` or inferred from the
// first `infer_rows` messages of the window; nested values as json), or one `value`
// column (value_format string or bytes). A null value (a tombstone) gives NULL value
// columns.
//
// The source never joins a consumer group: it assigns partitions explicitly, so runs do
// not wait for group rebalances. With `consumer_group`, committed() mirrors the offsets
// dpone state just committed to that group (rd_kafka_commit of an explicit partition
// list, no subscribe), for lag monitoring only; a failure there is a warning.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "connectors/kafka/kafka_common.hpp"
#include "core/codecs/inference.hpp"
#include "core/codecs/jsonl.hpp"
#include "core/codecs/values.hpp"
#include "core/connector/options.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;
using kafka::HandlePtr;
using kafka::Offsets;

enum class ValueFormat { Json, String, Bytes };

constexpr int kMetaColumns = 6;  // _topic, _partition, _offset, _timestamp, _key, _headers

struct PartitionRange {
  std::string topic;
  int32_t partition = 0;
  int64_t low = 0;
  int64_t high = 0;
};

// Kafka's millisecond timestamps in the canonical timestamptz form.
void append_timestamp_ms(std::string& out, int64_t ms) {
  using namespace std::chrono;
  sys_time<milliseconds> tp{milliseconds(ms)};
  auto day = floor<days>(tp);
  year_month_day ymd(day);
  hh_mm_ss<milliseconds> hms(tp - day);
  out += fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
  int64_t frac = hms.subseconds().count();
  if (frac != 0) {
    std::string f = fmt::format("{:03}", frac);
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  out += "Z";
}

std::string describe_ranges(const std::vector<PartitionRange>& ranges) {
  int64_t total = 0;
  std::set<std::string> topics;
  std::vector<std::string> parts;
  for (const auto& r : ranges) {
    total += r.high - r.low;
    topics.insert(r.topic);
    if (parts.size() < 6)
      parts.push_back(fmt::format("{}[{}] [{}, {})", r.topic, r.partition, r.low, r.high));
  }
  if (ranges.size() > parts.size())
    parts.push_back(fmt::format("... {} more", ranges.size() - parts.size()));
  return fmt::format("{} messages in {} partitions of {}: {}", total, ranges.size(),
                     fmt::join(topics, ", "), fmt::join(parts, ", "));
}

// Reads exactly the ranges, in arrival order, with an assigned (group-less) consumer.
class RangeConsumer {
 public:
  RangeConsumer(HandlePtr consumer, std::vector<PartitionRange> ranges, int timeout_ms,
                std::string where)
      : consumer_(std::move(consumer)), timeout_ms_(timeout_ms), where_(std::move(where)) {
    kafka::PartitionListPtr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(ranges.size())));
    for (auto& r : ranges) {
      if (r.low >= r.high) continue;
      rd_kafka_topic_partition_list_add(list.get(), r.topic.c_str(), r.partition)->offset = r.low;
      open_[{r.topic, r.partition}] = r;
    }
    if (open_.empty()) return;
    rd_kafka_resp_err_t err = rd_kafka_assign(consumer_.get(), list.get());
    if (err) {
      throw Error(ErrorCode::SourceReadFailed,
                  fmt::format("{}: cannot assign the window's partitions: {}", where_,
                              rd_kafka_err2str(err)));
    }
  }
  RangeConsumer(const RangeConsumer&) = delete;
  RangeConsumer& operator=(const RangeConsumer&) = delete;
  ~RangeConsumer() {
    if (consumer_) rd_kafka_assign(consumer_.get(), nullptr);
  }

  // Calls fn(message) for the next message inside the window; false when every range
  // is complete. Throws SourceReadFailed when no progress is made for timeout_ms.
  template <typename Fn>
  bool next(Fn&& fn) {
    auto last_progress = std::chrono::steady_clock::now();
    while (!open_.empty()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 100);
      if (!m) {
        auto idle = std::chrono::steady_clock::now() - last_progress;
        if (idle > std::chrono::milliseconds(timeout_ms_)) throw stalled();
        continue;
      }
      std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
          m, rd_kafka_message_destroy);
      last_progress = std::chrono::steady_clock::now();
      if (!m->rkt) {
        if (m->err) throw read_error(m);
        continue;
      }
      auto it = open_.find({rd_kafka_topic_name(m->rkt), m->partition});
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // The end of the log: with transactions the last offsets can be control records
        // that are never delivered, so EOF at or past the window end completes it.
        if (it != open_.end() && m->offset >= it->second.high) close(it);
        continue;
      }
      if (m->err) throw read_error(m);
      if (it == open_.end() || m->offset >= it->second.high) continue;  // past the window
      if (m->offset + 1 >= it->second.high) close(it);
      fn(*m);
      return true;
    }
    return false;
  }

 private:
  using Key = std::pair<std::string, int32_t>;

  void close(std::map<Key, PartitionRange>::iterator it) {
    kafka::PartitionListPtr one(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(one.get(), it->first.first.c_str(), it->first.second);
    rd_kafka_pause_partitions(consumer_.get(), one.get());
    open_.erase(it);
  }

  Error read_error(const rd_kafka_message_t* m) const {
    std::string at =
        m->rkt ? fmt::format(" at {}[{}]@{}", rd_kafka_topic_name(m->rkt), m->partition, m->offset)
               : std::string();
    std::string hint = "re-run the stream; if it persists check the brokers";
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
        m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
      hint =
          "messages of the window were deleted by retention while the run read them; re-run to "
          "start from the oldest message still kept (the deleted ones are lost to dpone)";
    }
    return Error(ErrorCode::SourceReadFailed,
                 fmt::format("{}: reading failed{}: {}", where_, at, rd_kafka_message_errstr(m)),
                 hint);
  }

  Error stalled() const {
    std::vector<std::string> short_of;
    for (const auto& [key, r] : open_)
      short_of.push_back(fmt::format("{}[{}] window end {}", key.first, key.second, r.high));
    return Error(
        ErrorCode::SourceReadFailed,
        fmt::format("{}: no message for {} ms before reaching the window end of: {}", where_,
                    timeout_ms_, fmt::join(short_of, ", ")),
        "the brokers may be unreachable, or an open transaction holds the partition below its "
        "high watermark (read_committed); raise `timeout_ms` or re-run later");
  }

  HandlePtr consumer_;
  int timeout_ms_;
  std::string where_;
  std::map<Key, PartitionRange> open_;
};

class KafkaBatchReader : public BatchReader {
 public:
  KafkaBatchReader(std::unique_ptr<RangeConsumer> consumer, Schema schema, ValueFormat format,
                   bool key_bytes, size_t batch_rows, Diagnostics* diagnostics, std::string where)
      : consumer_(std::move(consumer)),
        schema_(std::move(schema)),
        format_(format),
        key_bytes_(key_bytes),
        batch_rows_(batch_rows == 0 ? 8192 : batch_rows),
        diagnostics_(diagnostics),
        where_(std::move(where)) {
    for (size_t c = kMetaColumns; c < schema_.columns.size(); ++c)
      value_columns_.emplace(schema_.columns[c].name, c);
  }

  const Schema& schema() const override { return schema_; }

  std::optional<RecordBatch> next() override {
    if (done_) return std::nullopt;
    RecordBatch batch(schema_.columns.size());
    size_t rows = 0;
    while (rows < batch_rows_) {
      bool more = consumer_->next([&](const rd_kafka_message_t& m) { append_row(batch, m); });
      if (!more) {
        done_ = true;
        if (unknown_fields_ > 0 && diagnostics_) {
          diagnostics_->warn(fmt::format(
              "{}: {} messages carried JSON fields that are not columns of the stream, and those "
              "fields were not loaded (e.g. '{}'); declare them under `columns` or raise "
              "`infer_rows`",
              where_, unknown_fields_, unknown_example_));
        }
        break;
      }
      ++rows;
    }
    if (rows == 0) return std::nullopt;
    return batch;
  }

 private:
  void append_row(RecordBatch& batch, const rd_kafka_message_t& m) {
    const char* topic = rd_kafka_topic_name(m.rkt);
    batch.append(topic);
    batch.append(std::to_string(m.partition));
    batch.append(std::to_string(m.offset));
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(&m, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0) {
      batch.append_null();
    } else {
      cell_.clear();
      append_timestamp_ms(cell_, ts);
      batch.append(cell_);
    }
    if (!m.key) {
      batch.append_null();
    } else {
      std::string_view key(static_cast<const char*>(m.key), m.key_len);
      if (key_bytes_) {
        batch.append(key);
      } else {
        if (auto err = canonicalize(LogicalType::of(TypeId::String), key, cell_))
          throw Error(err->code,
                      fmt::format("{}: {}[{}]@{}: the key is not UTF-8 text: {}", where_, topic,
                                  m.partition, m.offset, err->reason),
                      "set key_format: bytes");
        batch.append(cell_);
      }
    }
    append_headers(batch, m);
    if (format_ != ValueFormat::Json) {
      if (!m.payload) {
        batch.append_null();
        return;
      }
      std::string_view value(static_cast<const char*>(m.payload), m.len);
      if (format_ == ValueFormat::String) {
        if (auto err = canonicalize(LogicalType::of(TypeId::String), value, cell_))
          throw Error(err->code,
                      fmt::format("{}: {}[{}]@{}: the value is not UTF-8 text: {}", where_, topic,
                                  m.partition, m.offset, err->reason),
                      "set value_format: bytes");
        batch.append(cell_);
      } else {
        batch.append(value);
      }
      return;
    }
    const size_t first = kMetaColumns, count = schema_.columns.size() - kMetaColumns;
    if (!m.payload) {  // a tombstone
      for (size_t i = 0; i < count; ++i) batch.append_null();
      return;
    }
    json object = json::parse(static_cast<const char*>(m.payload),
                              static_cast<const char*>(m.payload) + m.len, nullptr, false);
    if (object.is_discarded() || !object.is_object()) {
      throw Error(
          ErrorCode::InputMalformed,
          fmt::format("{}: {}[{}]@{}: the value is not a JSON object: {}", where_, topic,
                      m.partition, m.offset,
                      quote_value(std::string_view(static_cast<const char*>(m.payload), m.len))),
          "set value_format: string (or bytes) to load such values as one column");
    }
    for (size_t c = first; c < first + count; ++c) {
      auto it = object.find(schema_.columns[c].name);
      if (it == object.end()) {
        batch.append_null();
        continue;
      }
      bool is_null = false;
      if (auto err = json_to_cell(schema_.columns[c].type, *it, cell_, is_null)) {
        throw Error(err->code,
                    fmt::format("{}: {}[{}]@{} field '{}': {}", where_, topic, m.partition,
                                m.offset, schema_.columns[c].name, err->reason),
                    "declare the field's type under `columns`, or fix the producer");
      }
      if (is_null)
        batch.append_null();
      else
        batch.append(cell_);
    }
    if (object.size() > count || object.size() > value_columns_.size()) {
      for (const auto& [k, v] : object.items()) {
        if (!value_columns_.count(k)) {
          if (unknown_example_.empty()) unknown_example_ = k;
          ++unknown_fields_;
          break;
        }
      }
    }
  }

  void append_headers(RecordBatch& batch, const rd_kafka_message_t& m) {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(&m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR || !headers) {
      batch.append_null();
      return;
    }
    // An array of [name, value] pairs: Kafka headers are ordered and may repeat a name.
    cell_ = "[";
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      if (i) cell_ += ',';
      cell_ += '[';
      append_json_string(cell_, name);
      cell_ += ',';
      if (value)
        append_json_string(cell_, std::string_view(static_cast<const char*>(value), size));
      else
        cell_ += "null";
      cell_ += ']';
    }
    cell_ += ']';
    batch.append(cell_);
  }

  std::unique_ptr<RangeConsumer> consumer_;
  Schema schema_;
  ValueFormat format_;
  bool key_bytes_;
  size_t batch_rows_;
  Diagnostics* diagnostics_;
  std::string where_;
  std::map<std::string, size_t, std::less<>> value_columns_;
  std::string cell_;
  int64_t unknown_fields_ = 0;
  std::string unknown_example_;
  bool done_ = false;
};

class KafkaSource : public Source {
 public:
  explicit KafkaSource(const SourceContext& ctx) : diagnostics_(ctx.diagnostics) {
    ConnectorOptions options(ctx.options, fmt::format("stream '{}': kafka source", ctx.stream));
    where_ = options.where();
    stream_ = ctx.stream;
    raw_options_ = ctx.options;
    settings_ = kafka::client_settings(ctx.options, ctx.connection, where_);
    topics_ = options.string_list("topics");
    if (auto t = options.string("topic")) {
      if (!topics_.empty())
        throw Error(ErrorCode::ConfigInvalid, where_ + " sets both `topic` and `topics`",
                    "keep one of them");
      topics_.push_back(*t);
    }
    if (topics_.empty())
      throw Error(ErrorCode::ConfigMissingKey, where_ + " needs `topic` (or `topics`)");
    if (ctx.options.contains("partitions")) {
      const auto& p = ctx.options["partitions"];
      if (!p.is_array())
        throw Error(ErrorCode::ConfigWrongType,
                    where_ + " option `partitions` must be a list of partition numbers");
      for (const auto& v : p) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          throw Error(ErrorCode::ConfigWrongType,
                      where_ + " option `partitions` must list partition numbers, got " + v.dump());
        partitions_.insert(v.get<int32_t>());
      }
    }
    std::string format = options.string("value_format").value_or("json");
    if (format == "json")
      format_ = ValueFormat::Json;
    else if (format == "string")
      format_ = ValueFormat::String;
    else if (format == "bytes")
      format_ = ValueFormat::Bytes;
    else
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{} option `value_format` is '{}'; use json, string or bytes", where_,
                              format));
    std::string key_format = options.string("key_format").value_or("string");
    if (key_format != "string" && key_format != "bytes")
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("{} option `key_format` is '{}'; use string or bytes", where_, key_format));
    key_bytes_ = key_format == "bytes";
    start_ = options.string("start").value_or("earliest");
    if (start_ != "earliest" && start_ != "latest")
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{} option `start` is '{}'; use earliest or latest", where_, start_));
    consumer_group_ = options.string("consumer_group").value_or("");
    infer_rows_ = kafka::int_option(ctx.options, "infer_rows", 10000, where_);
    timeout_ms_ = static_cast<int>(kafka::int_option(ctx.options, "timeout_ms", 30000, where_));
    if (ctx.options.contains("columns")) {
      const auto& cols = ctx.options["columns"];
      if (!cols.is_object())
        throw Error(ErrorCode::ConfigWrongType,
                    where_ + " option `columns` must map field names to types");
      if (format_ != ValueFormat::Json)
        throw Error(ErrorCode::ConfigInvalid,
                    where_ + " declares `columns` but value_format is " + format,
                    "columns describe JSON fields; remove them or use value_format: json");
      for (const auto& [name, spelling] : cols.items()) {
        auto type =
            spelling.is_string() ? LogicalType::parse(spelling.get<std::string>()) : std::nullopt;
        if (!type)
          throw Error(ErrorCode::ConfigBadValue,
                      fmt::format("{}.columns.{}: unknown type {}", where_, name, spelling.dump()),
                      "use a canonical type name: int64, float64, decimal(12,2), string, "
                      "timestamptz, json, ...");
        declared_.columns.push_back(Column{name, *type, true});
      }
    }
  }

  Window plan_window(const json& position) override {
    Offsets stored = kafka::offsets_from_json(position, where_);
    stored_ = stored;
    ranges_.clear();
    rd_kafka_t* rk = client();
    for (const auto& topic : topics_) {
      auto all = kafka::topic_partitions(rk, topic, timeout_ms_, ErrorCode::SourceUnavailable,
                                         where_, settings_.bootstrap);
      for (int32_t p : all) {
        if (!partitions_.empty() && !partitions_.count(p)) continue;
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, timeout_ms_);
        if (err) {
          throw Error(ErrorCode::SourceUnavailable,
                      fmt::format("{}: cannot read the watermarks of {}[{}]: {}", where_, topic, p,
                                  rd_kafka_err2str(err)),
                      "check that the brokers are reachable; re-run");
        }
        PartitionRange r{topic, p, lo, hi};
        auto t = stored.find(topic);
        bool known = t != stored.end() && t->second.count(p);
        if (known) {
          r.low = t->second.at(p);
          if (r.low < lo) {
            if (diagnostics_)
              diagnostics_->warn(
                  fmt::format("{}: {}[{}]: {} messages (offsets {}..{}) were deleted by retention "
                              "before dpone read "
                              "them; reading from {}",
                              where_, topic, p, lo - r.low, r.low, lo - 1, lo));
            r.low = lo;
          }
          if (r.low > hi) {
            throw Error(
                ErrorCode::SourceReadFailed,
                fmt::format(
                    "{}: {}[{}]: the stored offset {} is past the high watermark {}: was the "
                    "topic deleted and re-created?",
                    where_, topic, p, r.low, hi),
                "reset the stream's state (dpone state reset) to read the topic again from the "
                "start");
          }
        } else if (position.is_null() && start_ == "latest") {
          r.low = hi;  // first run with start: latest: only what comes after this run
        }
        ranges_.push_back(r);
      }
    }
    for (const auto& p : partitions_) {
      bool found = false;
      for (const auto& r : ranges_) found = found || r.partition == p;
      if (!found)
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: partition {} listed in `partitions` does not exist", where_, p));
    }
    Window w;
    Offsets low, high;
    int64_t total = 0;
    for (const auto& r : ranges_) {
      low[r.topic][r.partition] = r.low;
      high[r.topic][r.partition] = r.high;
      total += r.high - r.low;
    }
    w.low = position.is_null() ? json() : kafka::offsets_to_json(low);
    w.high = kafka::offsets_to_json(high);
    w.description = describe_ranges(ranges_);
    w.empty = total == 0;
    w.estimated_rows = total;
    return w;
  }

  Schema discover() override {
    Schema s;
    s.columns = {Column{"_topic", LogicalType::of(TypeId::String), false},
                 Column{"_partition", LogicalType::of(TypeId::Int32), false},
                 Column{"_offset", LogicalType::of(TypeId::Int64), false},
                 Column{"_timestamp", LogicalType::timestamp(3, true), true},
                 Column{"_key", LogicalType::of(key_bytes_ ? TypeId::Bytes : TypeId::String), true},
                 Column{"_headers", LogicalType::of(TypeId::Json), true}};
    s.primary_key = {"_topic", "_partition", "_offset"};
    if (format_ != ValueFormat::Json) {
      s.columns.push_back(Column{
          "value", LogicalType::of(format_ == ValueFormat::String ? TypeId::String : TypeId::Bytes),
          true});
      schema_ = s;
      return s;
    }
    std::vector<Column> value = declared_.columns.empty() ? infer() : declared_.columns;
    for (auto& c : value) {
      if (s.find(c.name) >= 0)
        throw Error(ErrorCode::ConfigInvalid,
                    fmt::format("{}: the JSON field '{}' has the name of a metadata column", where_,
                                c.name),
                    "rename the field at the producer (metadata columns start with '_')");
      s.columns.push_back(std::move(c));
    }
    schema_ = s;
    return s;
  }

  std::vector<ArtifactSpec> produces() const override {
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  Artifact extract(const Window& window, const ArtifactSpec&,
                   const ExtractOptions& options) override {
    if (schema_.columns.empty()) discover();
    std::vector<PartitionRange> ranges = ranges_for(window);
    StreamingRows rows;
    rows.format = WireFormat::RecordBatch;
    rows.batches = std::make_unique<KafkaBatchReader>(
        std::make_unique<RangeConsumer>(new_consumer(), std::move(ranges), timeout_ms_, where_),
        schema_, format_, key_bytes_, options.batch_rows, diagnostics_, where_);
    return rows;
  }

  json next_position(const Window& window) override {
    Offsets next = stored_;  // partitions outside this run's selection keep their offsets
    for (const auto& [topic, parts] : kafka::offsets_from_json(window.high, where_))
      for (const auto& [p, off] : parts) next[topic][p] = off;
    return kafka::offsets_to_json(next);
  }

  // After the state commit: the same offsets (next offset to read) committed to
  // `consumer_group`, so lag monitors see dpone. dpone state stays the source of truth;
  // the group is never read back. Any failure is a warning (the run has succeeded).
  void committed(const Window&, const json& position) override {
    if (consumer_group_.empty()) return;
    kafka::Offsets offsets = kafka::offsets_from_json(position, where_);
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(8));
    for (const auto& [topic, parts] : offsets) {
      // Only this stream's topics (a position can keep topics the stream no longer reads).
      if (std::find(topics_.begin(), topics_.end(), topic) == topics_.end()) continue;
      for (const auto& [p, off] : parts)
        rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = off;
    }
    if (list->cnt == 0) return;
    std::string failure = commit_group(list.get());
    if (!failure.empty() && diagnostics_)
      diagnostics_->warn(fmt::format(
          "{}: the offsets were committed to dpone state, but committing them to consumer group "
          "'{}' failed: {}; lag monitors show the group behind until the next successful run "
          "(dpone's own position is not affected)",
          where_, consumer_group_, failure));
  }

 private:
  // Commits `list` to consumer_group_ with a group-less consumer (no subscribe: nothing
  // joins, so no rebalance), waiting at most timeout_ms. Returns "" or what failed.
  std::string commit_group(rd_kafka_topic_partition_list_t* list) {
    kafka::ClientSettings s;
    s.set("enable.auto.commit", "false");
    s.set("allow.auto.create.topics", "false");
    s.set("log_level", "2");
    for (const auto& [k, v] : settings_.properties) s.set(k, v);
    s.set("group.id", consumer_group_);  // the option wins over a `properties` group.id
    HandlePtr consumer;
    try {
      consumer = kafka::make_client(RD_KAFKA_CONSUMER, s, where_);
    } catch (const Error& e) {
      return e.what();
    }
    struct QueueDeleter {
      void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
    };
    struct EventDeleter {
      void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
    };
    std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(consumer.get()));
    rd_kafka_resp_err_t err =
        rd_kafka_commit_queue(consumer.get(), list, queue.get(), nullptr, nullptr);
    if (err) return rd_kafka_err2str(err);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    while (std::chrono::steady_clock::now() < deadline) {
      std::unique_ptr<rd_kafka_event_t, EventDeleter> ev(rd_kafka_queue_poll(queue.get(), 100));
      if (!ev || rd_kafka_event_type(ev.get()) != RD_KAFKA_EVENT_OFFSET_COMMIT) continue;
      if (rd_kafka_event_error(ev.get())) return rd_kafka_event_error_string(ev.get());
      const rd_kafka_topic_partition_list_t* done = rd_kafka_event_topic_partition_list(ev.get());
      for (int i = 0; done && i < done->cnt; ++i)
        if (done->elems[i].err)
          return fmt::format("{}[{}]: {}", done->elems[i].topic, done->elems[i].partition,
                             rd_kafka_err2str(done->elems[i].err));
      return "";
    }
    return fmt::format("no answer from the group coordinator within {} ms (timeout_ms)",
                       timeout_ms_);
  }

  rd_kafka_t* client() {
    if (!client_) client_ = new_consumer();
    return client_.get();
  }

  HandlePtr new_consumer() {
    // Defaults first so the user's `properties` (already in settings_) override them.
    kafka::ClientSettings s = kafka::assigned_reader_defaults("dpone-" + stream_);
    s.set("auto.offset.reset", "error");  // a window offset that vanished is an error, not a skip
    for (const auto& [k, v] : settings_.properties) s.set(k, v);
    return kafka::make_client(RD_KAFKA_CONSUMER, s, where_);
  }

  // The window's ranges (from the window itself, so extract() works on any window).
  std::vector<PartitionRange> ranges_for(const Window& window) {
    Offsets high = kafka::offsets_from_json(window.high, where_);
    Offsets low = kafka::offsets_from_json(window.low, where_);
    std::vector<PartitionRange> out;
    for (const auto& [topic, parts] : high) {
      for (const auto& [p, h] : parts) {
        int64_t l = h;
        auto t = low.find(topic);
        if (t != low.end() && t->second.count(p))
          l = t->second.at(p);
        else
          for (const auto& r : ranges_)
            if (r.topic == topic && r.partition == p) l = r.low;
        out.push_back(PartitionRange{topic, p, l, h});
      }
    }
    return out;
  }

  // Field names and types from the first infer_rows messages of the window (in key
  // order of the JSON objects: nlohmann sorts keys, so the column order is by name).
  std::vector<Column> infer() {
    TypeInferrer inferrer({});
    int64_t seen = 0;
    std::vector<PartitionRange> ranges = ranges_;
    if (infer_rows_ > 0 && !ranges.empty()) {
      RangeConsumer consumer(new_consumer(), ranges, timeout_ms_, where_);
      while (seen < infer_rows_ && consumer.next([&](const rd_kafka_message_t& m) {
        if (!m.payload) return;
        json object = json::parse(static_cast<const char*>(m.payload),
                                  static_cast<const char*>(m.payload) + m.len, nullptr, false);
        if (object.is_discarded() || !object.is_object()) return;  // extract() reports it
        for (const auto& [k, v] : object.items()) {
          int c = inferrer.find(k);
          if (c < 0) {
            inferrer.add_column(k);
            c = static_cast<int>(inferrer.num_columns()) - 1;
          }
          inferrer.observe_json(static_cast<size_t>(c), v);
        }
      })) {
        ++seen;
      }
    }
    std::vector<Column> out = inferrer.result().columns;
    std::sort(out.begin(), out.end(),
              [](const Column& a, const Column& b) { return a.name < b.name; });
    return out;
  }

  Diagnostics* diagnostics_;
  std::string where_, stream_;
  json raw_options_;
  kafka::ClientSettings settings_;
  std::vector<std::string> topics_;
  std::set<int32_t> partitions_;
  ValueFormat format_ = ValueFormat::Json;
  bool key_bytes_ = false;
  std::string start_;
  std::string consumer_group_;  // mirror committed offsets to this group (none: "")
  int64_t infer_rows_ = 10000;
  int timeout_ms_ = 30000;
  Schema declared_;
  Schema schema_;
  HandlePtr client_;
  Offsets stored_;
  std::vector<PartitionRange> ranges_;
};

}  // namespace

std::unique_ptr<Source> make_kafka_source(const SourceContext& context) {
  return std::make_unique<KafkaSource>(context);
}

}  // namespace dpone
