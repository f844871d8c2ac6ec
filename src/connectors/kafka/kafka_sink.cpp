// The kafka sink: appends one event per row to a topic.
//
// Kafka has no staging object and no transaction the runtime could promote, so stage()
// produces: every row becomes one message (value: the row as a JSON object, key: the
// `unique_key` columns or none, headers only on request), with an idempotent producer
// (no duplicates from the producer's own retries) and Java-compatible partitions (keyed
// messages land where Kafka's Java client puts them). Events without headers go to
// librdkafka in batches, their partitions chosen by dpone (kafka::Outbox,
// kafka_producer.hpp); with headers, one by one through librdkafka's murmur2_random
// partitioner.
// stage() returns only after every delivery report came back; one negative report fails
// the stage with the count of undelivered events, so the runtime never promotes and
// never advances state.
// Delivery (README "Exactly-once"):
//   exactly_once (default): a transactional producer whose transactional.id is stable per
//   stream and topic, so a new run fences a dead one (the broker aborts its open
//   transaction). stage() = begin_transaction + produce (invisible to read_committed
//   consumers); promote() = the load receipt produced to the receipts topic (default
//   __dpone_receipts, keyed by stream) in the same transaction, then commit_transaction;
//   abort() = abort_transaction. latest_receipt() reads the newest committed receipt of
//   the stream and topic back from the receipts topic.
//   at_least_once: the idempotent producer without transactions; events delivered before
//   a failure stay in the topic and the re-run sends them again. promote() writes the
//   load receipt to a local file (.dpone/kafka-receipts/<stream>.json under the
//   manifest's directory).
// Input: JSON lines (WireFormat::Jsonl, preferred: each validated line is an event's value
// byte for byte, no decoding) or record batches (each row encoded as one JSON object, one
// header-less CSV line, or one column's text: `value_format`). An input error after some
// events were produced (a malformed line, a NULL key) fails the stage with the input's own
// code and the count of events already delivered.
// Deletes: rows whose `tombstone_column` (bool) is true are sent as tombstones (the key and
// a null value); with value_format string a NULL value is one too. Both need a key.
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "connectors/kafka/kafka_common.hpp"
#include "connectors/kafka/kafka_producer.hpp"
#include "core/codecs/csv.hpp"
#include "core/codecs/jsonl.hpp"
#include "core/connector/options.hpp"
#include "core/util/failpoint.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

enum class ValueKind { Number, Bool, Json, Bytes, Text };
enum class ValueFormat { Json, Csv, String };

ValueKind kind_of(const LogicalType& t) {
  switch (t.id) {
    case TypeId::Int16:
    case TypeId::Int32:
    case TypeId::Int64:
    case TypeId::Float32:
    case TypeId::Float64:
    case TypeId::Decimal:
      return ValueKind::Number;
    case TypeId::Bool:
      return ValueKind::Bool;
    case TypeId::Json:
      return ValueKind::Json;
    case TypeId::Bytes:
      return ValueKind::Bytes;
    default:
      return ValueKind::Text;
  }
}

void append_base64(std::string& out, std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

class KafkaSink : public Sink {
 public:
  explicit KafkaSink(const SinkContext& ctx)
      : stream_(ctx.stream), run_id_(ctx.run_id), on_progress_(ctx.on_progress) {
    ConnectorOptions options(ctx.options, fmt::format("stream '{}': kafka sink", ctx.stream));
    where_ = options.where();
    settings_ = kafka::client_settings(ctx.options, ctx.connection, where_);
    topic_ = options.string("topic").value_or("");
    if (topic_.empty()) throw Error(ErrorCode::ConfigMissingKey, where_ + " needs `topic`");
    key_ = options.string_list("key");
    // Which dpone headers every event carries (default: none; the run record keeps the
    // delivered offset ranges instead). Each header
    // costs librdkafka allocations per event: see README "Headers".
    std::vector<std::string> headers = ctx.options.contains("headers")
                                           ? options.string_list("headers")
                                           : std::vector<std::string>{};
    for (const auto& h : headers) {
      if (h == "run_id") {
        headers_.emplace_back("dpone-run-id", run_id_);
      } else if (h == "stream") {
        headers_.emplace_back("dpone-stream", stream_);
      } else {
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: headers: unknown header '{}'", where_, h),
                    "use any of run_id, stream (or [] for none)");
      }
    }
    json strategy = ctx.options.value("strategy", json::object());
    std::string mode = strategy.is_object() ? strategy.value("mode", "append") : "append";
    if (mode != "append") {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format(
              "{}: strategy mode '{}' is not supported: a Kafka topic is an append-only log, and "
              "merge, snapshot reconciliation, snapshot_diff and scd2 need to read the target, "
              "which a topic cannot answer",
              where_, mode),
          "use strategy: {mode: append}; set `unique_key` to key the events, and "
          "`tombstone_column` to send deletes as tombstones");
    }
    if (strategy.is_object() && strategy.value("only_new_rows", false)) {
      throw Error(ErrorCode::ConfigBadValue,
                  where_ +
                      ": append.only_new_rows needs to look up keys in the target, and a topic "
                      "cannot be queried",
                  "remove only_new_rows; consumers dedupe on the event key");
    }
    if (key_.empty() && strategy.is_object() && strategy.contains("unique_key")) {
      const auto& k = strategy["unique_key"];
      if (k.is_string())
        key_.push_back(k.get<std::string>());
      else if (k.is_array())
        for (const auto& v : k)
          if (v.is_string()) key_.push_back(v.get<std::string>());
    }
    std::string format = options.string("value_format").value_or("json");
    if (format == "json")
      value_format_ = ValueFormat::Json;
    else if (format == "csv")
      value_format_ = ValueFormat::Csv;
    else if (format == "string")
      value_format_ = ValueFormat::String;
    else
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: value_format is '{}'", where_, format),
                  "use json (the default), csv or string");
    value_column_ = options.string("value_column").value_or("");
    if (!value_column_.empty() && value_format_ != ValueFormat::String)
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: value_column is set but value_format is {}", where_, format),
                  "value_column names the column of value_format: string; remove it");
    tombstone_column_ = options.string("tombstone_column").value_or("");
    if (!tombstone_column_.empty() && key_.empty())
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: tombstone_column '{}' needs a key: a tombstone deletes the "
                              "events of its key, and an event without key has none",
                              where_, tombstone_column_),
                  "set the strategy's unique_key (or the sink's `key`)");
    if (!tombstone_column_.empty() &&
        std::find(key_.begin(), key_.end(), tombstone_column_) != key_.end())
      throw Error(
          ErrorCode::ConfigInvalid,
          fmt::format("{}: tombstone_column '{}' is also a key column", where_, tombstone_column_),
          "name a separate bool column");
    timeout_ms_ = static_cast<int>(kafka::int_option(ctx.options, "timeout_ms", 30000, where_));
    delivery_timeout_ms_ = kafka::int_option(ctx.options, "delivery_timeout_ms", 120000, where_);
    linger_ms_ = kafka::int_option(ctx.options, "linger_ms", 5, where_);
    batch_size_ = kafka::int_option(ctx.options, "batch_size", 1000000, where_);
    compression_ = options.string("compression").value_or("none");
    receipt_path_ = ctx.base_dir / ".dpone" / "kafka-receipts" / (sanitize(stream_) + ".json");
    std::string delivery = options.string("delivery").value_or("exactly_once");
    if (delivery != "exactly_once" && delivery != "at_least_once")
      throw Error(ErrorCode::ConfigBadValue, fmt::format("{}: delivery is '{}'", where_, delivery),
                  "use exactly_once (the default: transactions) or at_least_once");
    exactly_once_ = delivery == "exactly_once";
    receipts_topic_ = options.string("receipts_topic").value_or("__dpone_receipts");
    if (receipts_topic_.empty() || receipts_topic_ == topic_)
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: receipts_topic must name a topic other than `topic`", where_),
                  "leave it unset (__dpone_receipts) or name a separate topic");
    // Stable per stream and target: the next run of the same stream into the same topic
    // uses the same id, and its init_transactions fences a run that died mid-transaction.
    transactional_id_ = "dpone-" + stream_ + "-" + topic_;
  }

  TargetInfo inspect() override {
    TargetInfo t;
    t.name = topic_;
    t.schemaless = true;  // JSON values: the events carry the columns of each run
    rd_kafka_t* rk = producer();
    partitions_ = kafka::topic_partitions(rk, topic_, timeout_ms_, ErrorCode::SinkUnavailable,
                                          where_, settings_.bootstrap);
    t.exists = true;
    const rd_kafka_metadata_t* raw = nullptr;
    int brokers = 0;
    if (rd_kafka_metadata(rk, 0, nullptr, &raw, timeout_ms_) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      kafka::MetadataPtr md(raw);
      brokers = md->broker_cnt;
    }
    t.server =
        fmt::format("Kafka cluster of {} brokers (librdkafka {})", brokers, rd_kafka_version_str());
    t.capabilities = {exactly_once_ ? "transactional producer (exactly-once, read_committed)"
                                    : "idempotent producer (at-least-once)",
                      "murmur2 partitioner (Java-compatible)",
                      fmt::format("{} partitions", partitions_.size()), "delivery reports checked"};
    if (exactly_once_) receipts_partitions();
    return t;
  }

  // JSON lines first: a source that offers them (a JSONL file needing no conversion)
  // hands each line through as the event's value, with no decoding and re-encoding.
  // Only JSON values without a tombstone column can take lines unchanged.
  std::vector<ArtifactSpec> accepts() const override {
    if (value_format_ != ValueFormat::Json || !tombstone_column_.empty())
      return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
    return {ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::Jsonl},
            ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  }

  std::vector<std::string> render_ddl(const Schema&,
                                      const std::vector<const SchemaChange*>&) override {
    return {};  // a topic has no schema to evolve
  }

  std::vector<std::string> describe_promotion(const StrategySpec&, const Schema& schema) override {
    std::string key = key_.empty()
                          ? "no key (partitions chosen at random, sticky per batch)"
                          : fmt::format("key {} (murmur2 partition, as Kafka's Java client)",
                                        fmt::join(key_, ", "));
    std::string value = value_format_ == ValueFormat::Json
                            ? fmt::format("a JSON object of {} fields", schema.columns.size())
                        : value_format_ == ValueFormat::Csv ? "one header-less CSV line"
                                                            : "the text of one column";
    if (!tombstone_column_.empty())
      value += fmt::format(" (a tombstone where {} is true)", tombstone_column_);
    if (exactly_once_)
      return {fmt::format("begin a transaction (transactional.id {}); produce each row to topic "
                          "{} as {}; {}; {}; compression {}, linger {} ms",
                          transactional_id_, topic_, value, key, header_names(), compression_,
                          linger_ms_),
              "wait for every delivery report: one failure aborts the transaction",
              fmt::format("produce the load receipt to {} (key {}) in the same transaction, then "
                          "commit: the events become visible to read_committed consumers",
                          receipts_topic_, stream_)};
    return {fmt::format("produce each row to topic {} as {}; {}; {}; idempotent "
                        "producer, compression {}, linger {} ms",
                        topic_, value, key, header_names(), compression_, linger_ms_),
            "wait for every delivery report: one failure fails the run (state not advanced)",
            "write the load receipt " + receipt_path_.string()};
  }

  std::vector<std::string> cleanup_abandoned(const std::vector<std::string>&) override {
    return {};
  }

  // exactly_once: the events go out inside a transaction that promote() commits; a stage
  // that fails aborts it, so nothing of it ever becomes visible to read_committed readers.
  // doctor's probe (no rows) opens no transaction: init_transactions would fence a run of
  // this stream that is producing right now.
  StagedLoad stage(Artifact artifact, const Schema& schema) override {
    const auto* probe = std::get_if<InMemoryRows>(&artifact);
    if (!exactly_once_ || (probe && probe->batches.empty()))
      return produce_events(std::move(artifact), schema);
    rd_kafka_t* rk = producer();
    if (!transactions_ready_) {
      // Fences every earlier producer of this transactional.id: a run that died inside its
      // transaction has it aborted by the coordinator here, and one that died while
      // committing has it completed first. Only here, not when receipts are read (plan,
      // doctor, recovery): those must not fence a run that is producing.
      txn_call(rd_kafka_init_transactions(rk, timeout_ms_), "initialize transactions",
               ErrorCode::SinkUnavailable);
      transactions_ready_ = true;
    }
    txn_call(rd_kafka_begin_transaction(rk), "begin the transaction", ErrorCode::StageFailed);
    in_transaction_ = true;
    try {
      StagedLoad s = produce_events(std::move(artifact), schema);
      s.staging_name = fmt::format(
          "open transaction {} (events invisible to read_committed consumers until promotion)",
          transactional_id_);
      s.details["transactional_id"] = transactional_id_;
      return s;
    } catch (...) {
      abort_transaction();
      throw;
    }
  }

  StagedLoad produce_events(Artifact artifact, const Schema& schema) {
    auto* streaming = std::get_if<StreamingRows>(&artifact);
    auto* in_memory = std::get_if<InMemoryRows>(&artifact);  // e.g. doctor's empty probe
    const bool lines = streaming && streaming->format == WireFormat::Jsonl && streaming->bytes;
    const bool batches =
        streaming && streaming->format == WireFormat::RecordBatch && streaming->batches;
    if (!lines && !batches && !in_memory)
      throw Error(ErrorCode::Internal, where_ + ": expected record batches or JSON lines, got " +
                                           spec_of(artifact).to_string());
    prepare_encoding(schema);
    rd_kafka_t* rk = producer();
    if (partitions_.empty())
      partitions_ = kafka::topic_partitions(rk, topic_, timeout_ms_, ErrorCode::SinkUnavailable,
                                            where_, settings_.bootstrap);
    kafka::TopicPtr topic(rd_kafka_topic_new(rk, topic_.c_str(), nullptr));
    // Events go out in batches, unless each carries headers (see kafka::Outbox).
    if (headers_.empty())
      outbox_.emplace(rk, topic.get(), static_cast<int32_t>(partitions_.size()), where_);
    struct OutboxReset {
      std::optional<kafka::Outbox>& outbox;
      ~OutboxReset() { outbox.reset(); }
    } outbox_reset{outbox_};
    int64_t rows = 0, bytes = 0;
    try {
      if (lines) {
        produce_lines(rk, topic.get(), *streaming->bytes, rows, bytes);
      } else if (batches) {
        while (auto batch = streaming->batches->next()) {
          produce_batch(rk, topic.get(), *batch, rows, bytes);
          if (!between_blocks(rk, rows, bytes)) break;
        }
      } else {
        for (const auto& batch : in_memory->batches) {
          produce_batch(rk, topic.get(), batch, rows, bytes);
          if (!between_blocks(rk, rows, bytes)) break;
        }
      }
      if (outbox_) outbox_->flush();
    } catch (const Error& e) {
      // The input failed (a malformed line, a file changed, a NULL key) after `rows`
      // events were handed to the producer: wait for their reports, so the message says
      // how many are in the topic now, and fail with the input's own code.
      flush_outbox_quietly();  // the events read before the error, as if produced one by one
      rd_kafka_flush(rk, static_cast<int>(delivery_timeout_ms_ + 10000));
      throw Error(e.code(),
                  fmt::format("{} ({} events produced before this were delivered to topic {}, "
                              "and stay there)",
                              e.what(), tally_.delivered, topic_),
                  e.hint().empty() ? leftover_note() : e.hint() + "; " + leftover_note());
    }
    // Every report must be back before the stage may succeed.
    rd_kafka_resp_err_t flushed =
        rd_kafka_flush(rk, static_cast<int>(delivery_timeout_ms_ + 10000));
    int64_t pending = rd_kafka_outq_len(rk);
    char fatal[512] = "";
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    int64_t undelivered = rows - tally_.delivered;
    if (tally_.failed > 0 || pending > 0 || fatal_err || flushed || undelivered != 0) {
      std::string why = tally_.first_error;
      if (fatal_err) why = std::string("fatal producer error: ") + fatal;
      if (why.empty())
        why = fmt::format("{} reports still outstanding after the delivery timeout", pending);
      throw Error(
          ErrorCode::StageFailed,
          fmt::format(
              "{}: {} of {} events were not delivered to topic {} (first error: {}); {} were "
              "delivered",
              where_, undelivered, rows, topic_, why, tally_.delivered),
          exactly_once_
              ? leftover_note()
              : fmt::format(
                    "the run failed and state did not advance: the re-run sends the whole "
                    "window again, so the events already delivered arrive twice (at-least-once; "
                    "they are at these offsets, by partition: {}; dedupe on the key, on those "
                    "offsets, or on the dpone-run-id header with `headers: [run_id]`)",
                    tally_.offsets_json().dump()));
    }
    StagedLoad s;
    s.staging_name = "(none: Kafka has no staging; events delivered to " + topic_ + ")";
    s.rows = rows;
    s.bytes = bytes;
    s.details = {{"topic", topic_},
                 {"delivered", tally_.delivered},
                 {"key", key_},
                 {"tombstones", tombstones_},
                 {"offsets", tally_.offsets_json()}};
    if (value_format_ != ValueFormat::Json)
      s.details["value_format"] = value_format_ == ValueFormat::Csv ? "csv" : "string";
    return s;
  }

  std::vector<GateResult> check(const StagedLoad&, const std::vector<GateSpec>& gates) override {
    std::vector<std::string> names;
    for (const auto& g : gates) names.push_back(g.name);
    throw Error(
        ErrorCode::ConfigInvalid,
        fmt::format(
            "{}: quality gates ({}) cannot run on a Kafka sink: gates query the staged rows, "
            "and a topic (even an open transaction's events) cannot be queried",
            where_, fmt::join(names, ", ")),
        "remove `quality` from the stream, or check the data upstream");
  }

  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override {
    PromoteResult r;
    const int64_t tombstones = staged.details.value("tombstones", int64_t{0});
    r.inserted = staged.rows - tombstones;
    r.deleted = tombstones;  // a tombstone is a delete of its key
    if (exactly_once_) {
      promote_transaction(request);
      r.atomic = true;  // the events and the receipt commit together
      r.sql = {fmt::format("{} events produced to {} ({} tombstones) in transaction {}",
                           staged.rows, topic_, tombstones, transactional_id_),
               fmt::format("receipt produced to {} (key {}) in the same transaction",
                           receipts_topic_, stream_),
               "commit_transaction"};
      return r;
    }
    r.atomic = false;
    write_receipt(request.receipt);
    r.sql = {
        fmt::format("{} events delivered to {} ({} tombstones)", staged.rows, topic_, tombstones),
        "receipt written to " + receipt_path_.string()};
    return r;
  }

  void abort(const StagedLoad&) noexcept override { abort_transaction(); }

  std::optional<LoadReceipt> latest_receipt() override {
    if (exactly_once_) return read_receipt();
    std::ifstream in(receipt_path_);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(ErrorCode::StateStoreFailed,
                  where_ + ": the load receipt " + receipt_path_.string() + " is corrupt",
                  "delete it if no run is in progress (the next run then re-sends what it cannot "
                  "prove was sent)");
    return receipt_of(j);
  }

 private:
  static LoadReceipt receipt_of(const json& j) {
    LoadReceipt rc;
    rc.stream = j.value("stream", "");
    rc.run_id = j.value("run_id", "");
    rc.base_revision = j.value("base_revision", int64_t{0});
    rc.window = j.value("window", json());
    rc.new_position = j.value("new_position", json());
    rc.rows = j.value("rows", int64_t{0});
    rc.loaded_at = j.value("loaded_at", "");
    return rc;
  }

  static std::string sanitize(const std::string& s) {
    std::string out = s;
    for (auto& c : out)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
    return out;
  }

  rd_kafka_t* producer() {
    if (producer_) return producer_.get();
    kafka::ClientSettings s;
    s.set("enable.idempotence", "true");     // acks=all, ordered, no duplicates from retries
    s.set("partitioner", "murmur2_random");  // Java's partitioner for keys, random for null keys
    s.set("linger.ms", std::to_string(linger_ms_));
    s.set("batch.size", std::to_string(batch_size_));
    s.set("compression.type", compression_);
    s.set("message.timeout.ms", std::to_string(delivery_timeout_ms_));
    s.set("queue.buffering.max.kbytes", "65536");  // bounds memory: 64 MiB of queued events
    s.set("queue.buffering.max.messages", "500000");
    s.set("allow.auto.create.topics", "false");  // dpone never creates topics
    s.set("log_level", "2");  // connection errors reach the operator as dpone errors instead
    if (exactly_once_) {
      s.set("transactional.id", transactional_id_);
      // librdkafka wants message.timeout.ms <= transaction.timeout.ms. The broker aborts a
      // transaction open longer than this, and a dead run's transaction holds
      // read_committed consumers back at most this long when no re-run fences it.
      s.set("transaction.timeout.ms",
            std::to_string(std::max<int64_t>(delivery_timeout_ms_, 60000)));
    }
    for (const auto& [k, v] : settings_.properties) s.set(k, v);
    kafka::ConfPtr conf(rd_kafka_conf_new());
    rd_kafka_conf_set_dr_msg_cb(conf.get(), kafka::on_delivery);
    rd_kafka_conf_set_opaque(conf.get(), &tally_);
    producer_ = kafka::make_client(RD_KAFKA_PRODUCER, s, where_, std::move(conf));
    return producer_.get();
  }

  // Throws for a failed transactional call (the error object is consumed). A fenced
  // producer means another run of this stream and topic started transactions since:
  // StateConflict, as for any run that lost its stream to another.
  void txn_call(rd_kafka_error_t* error, const char* what, ErrorCode code) {
    if (!error) return;
    const std::string text = rd_kafka_error_string(error);
    const bool fenced = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__FENCED ||
                        rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
    rd_kafka_error_destroy(error);
    if (fenced)
      throw Error(ErrorCode::StateConflict,
                  fmt::format("{}: cannot {}: transactional.id {} was fenced by a newer run of "
                              "this stream and topic: {}",
                              where_, what, transactional_id_, text),
                  "nothing of this run became visible to read_committed consumers; check that "
                  "one run at a time loads this stream");
    throw Error(code,
                fmt::format("{}: cannot {} (transactional.id {}): {}", where_, what,
                            transactional_id_, text),
                code == ErrorCode::SinkUnavailable
                    ? "check bootstrap_servers, that the brokers support transactions (Kafka "
                      ">= 0.11, transaction.state.log.* settings) and the ACLs of the id"
                    : leftover_note());
  }

  // Aborts the open transaction, if any: its events stay in the log, marked aborted,
  // which read_committed consumers skip. Never throws (abort() and error paths).
  void abort_transaction() noexcept {
    if (!in_transaction_ || !producer_) return;
    in_transaction_ = false;
    if (rd_kafka_error_t* e =
            rd_kafka_abort_transaction(producer_.get(), static_cast<int>(timeout_ms_)))
      rd_kafka_error_destroy(e);  // the next run's init_transactions fences it anyway
  }

  // What became of a failed run's events, for error hints.
  std::string leftover_note() const {
    if (exactly_once_)
      return "the run failed and state did not advance; its transaction is aborted (or is "
             "fenced by the next run), so none of its events is visible to read_committed "
             "consumers, and the re-run sends the window once";
    return "the run failed and state did not advance; the re-run sends the whole window "
           "again (at-least-once)";
  }

  // promote() in exactly_once: compare-and-set on the newest receipt, the receipt
  // produced to the receipts topic in the open transaction, then the commit.
  void promote_transaction(const PromoteRequest& request) {
    rd_kafka_t* rk = producer();
    if (!in_transaction_)
      throw Error(ErrorCode::Internal, where_ + ": promote() without an open transaction");
    try {
      // Kafka has no transaction spanning this read and the commit: the stream lease
      // excludes a concurrent run, this check catches one that promoted since this run
      // planned (a bypassed lease, a holder paused past its TTL), and the shared
      // transactional.id fences the older of two producers still alive (README).
      if (auto latest = read_receipt()) {
        if (latest->run_id != request.expected_latest_receipt)
          throw_receipt_conflict(where_, stream_, latest->run_id, request.expected_latest_receipt);
      } else if (!request.expected_latest_receipt.empty()) {
        throw_receipt_conflict(where_, stream_, "", request.expected_latest_receipt);
      }
      const std::string value = receipt_json(request.receipt).dump();
      const int32_t partition =
          kafka::java_partition(stream_, static_cast<int32_t>(receipts_partitions()));
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(receipts_topic_.c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_KEY(stream_.data(), stream_.size()), RD_KAFKA_V_END);
      if (err)
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: cannot produce the load receipt to {}: {}", where_,
                                receipts_topic_, rd_kafka_err2str(err)),
                    leftover_note());
      rd_kafka_flush(rk, static_cast<int>(delivery_timeout_ms_ + 10000));
      failpoint("inside_promote");
      txn_call(rd_kafka_commit_transaction(rk, static_cast<int>(delivery_timeout_ms_ + 10000)),
               "commit the transaction", ErrorCode::PromoteFailed);
      in_transaction_ = false;
    } catch (...) {
      abort_transaction();
      throw;
    }
  }

  // Partition count of the receipts topic (which must exist: dpone never creates topics).
  size_t receipts_partitions() {
    if (receipts_partition_count_ == 0)
      receipts_partition_count_ =
          kafka::topic_partitions(receipts_reader(), receipts_topic_, timeout_ms_,
                                  ErrorCode::SinkUnavailable, where_ + " (receipts_topic)", settings_.bootstrap)
              .size();
    return receipts_partition_count_;
  }

  // The read_committed consumer of the receipts topic (partitions assigned, never a group
  // member), also used for its metadata: no transactional call, so reading receipts never
  // fences a run.
  rd_kafka_t* receipts_reader() {
    if (receipts_reader_) return receipts_reader_.get();
    kafka::ClientSettings s = kafka::assigned_reader_defaults("dpone-receipts");
    s.set("auto.offset.reset", "earliest");  // a compacted-away offset: read on from the next
    for (const auto& [k, v] : settings_.properties)
      if (k.rfind("sasl.", 0) == 0 || k.rfind("ssl.", 0) == 0 || k == "security.protocol" ||
          k == "bootstrap.servers")
        s.set(k, v);  // only the connection's settings: the rest are producer properties
    receipts_reader_ = kafka::make_client(RD_KAFKA_CONSUMER, s, where_);
    return receipts_reader_.get();
  }

  // The newest committed receipt of this stream and topic: the receipts of a stream all
  // go to one partition (keyed by the stream), read with isolation.level=read_committed
  // from its end backwards in growing windows, so a long history costs one window.
  // A transaction still open in the partition (a run promoting right now, or one that died
  // while committing and whose commit the coordinator is completing) holds the last stable
  // offset back: the read waits for it up to timeout_ms rather than miss a receipt that
  // is about to be committed (which would make the re-run produce the window again).
  std::optional<LoadReceipt> read_receipt() {
    const int32_t partition =
        kafka::java_partition(stream_, static_cast<int32_t>(receipts_partitions()));
    rd_kafka_t* consumer = receipts_reader();
    int64_t low = 0, high = 0;
    if (rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            consumer, receipts_topic_.c_str(), partition, &low, &high, timeout_ms_))
      throw Error(ErrorCode::SinkUnavailable,
                  fmt::format("{}: cannot read the offsets of {} partition {}: {}", where_,
                              receipts_topic_, partition, rd_kafka_err2str(err)));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    int64_t stop = high, window = 64;
    for (int64_t from = std::max(low, high - window); stop > low;
         stop = from, window *= 8, from = std::max(low, from - window)) {
      kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(list.get(), receipts_topic_.c_str(), partition)->offset =
          from;
      if (rd_kafka_assign(consumer, list.get()))
        throw Error(ErrorCode::SinkUnavailable, where_ + ": cannot assign " + receipts_topic_);
      std::optional<LoadReceipt> newest;
      for (bool done = false; !done;) {
        if (std::chrono::steady_clock::now() > deadline)
          throw Error(ErrorCode::SinkUnavailable,
                      fmt::format("{}: {} partition {} was not readable to offset {} within {} "
                                  "ms (read_committed: an open transaction of another stream "
                                  "holds its last stable offset back)",
                                  where_, receipts_topic_, partition, stop, timeout_ms_),
                      "re-run: the broker aborts an abandoned transaction after "
                      "transaction.timeout.ms");
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
        if (!m) continue;
        std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> hold(
            m, rd_kafka_message_destroy);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          // EOF is at the last stable offset: below `stop` while a transaction is open.
          if (m->offset >= stop) done = true;
          continue;
        }
        if (m->err)
          throw Error(ErrorCode::SinkUnavailable,
                      fmt::format("{}: cannot read {}: {}", where_, receipts_topic_,
                                  rd_kafka_message_errstr(m)));
        if (m->offset >= stop) {
          done = true;
          continue;
        }
        json j = json::parse(static_cast<const char*>(m->payload),
                             static_cast<const char*>(m->payload) + m->len, nullptr, false);
        if (j.is_object() && j.value("stream", "") == stream_ && j.value("topic", "") == topic_)
          newest = receipt_of(j);
        if (m->offset + 1 >= stop) done = true;
      }
      if (newest) return newest;
    }
    return std::nullopt;
  }

  // `value` null (data() == nullptr, as `std::string_view{}`) produces a null value.
  // Through the outbox when there is one (no headers), else one event at a time.
  void produce(rd_kafka_t* rk, rd_kafka_topic_t* topic, std::string_view value,
               const std::string* key, rd_kafka_headers_t* headers) {
    if (outbox_) {
      outbox_->add(value, key);
      return;
    }
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.data() ? value.size() : 0),
          RD_KAFKA_V_KEY(key ? key->data() : nullptr, key ? key->size() : 0),
          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
      if (!err) return;
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 50);  // serve delivery reports until the queue has room
        continue;
      }
      if (headers) rd_kafka_headers_destroy(headers);  // not taken over on failure
      throw Error(ErrorCode::StageFailed, fmt::format("{}: cannot produce to topic {}: {}", where_,
                                                      topic_, rd_kafka_err2str(err)));
    }
  }

  // On an error path: hands over what the outbox holds; a refusal there changes nothing
  // (the run fails with the first error either way).
  void flush_outbox_quietly() noexcept {
    if (!outbox_) return;
    try {
      outbox_->flush();
    } catch (...) {
    }
  }

  // The configured dpone headers of one event, or null when there are none (librdkafka
  // takes ownership of the list on a successful produce).
  rd_kafka_headers_t* run_headers() const {
    if (headers_.empty()) return nullptr;
    rd_kafka_headers_t* headers = rd_kafka_headers_new(headers_.size());
    for (const auto& [name, value] : headers_)
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    return headers;
  }
  std::string header_names() const {
    if (headers_.empty()) return "no headers";
    std::vector<std::string> names;
    for (const auto& h : headers_) names.push_back(h.first);
    return fmt::format("headers {}", fmt::join(names, ", "));
  }

  // Between input blocks: serve delivery reports, stop early on a fatal producer error
  // (stage() then reports it), tell the runtime how far the run is.
  bool between_blocks(rd_kafka_t* rk, int64_t rows, int64_t bytes) {
    if (outbox_) outbox_->flush();
    rd_kafka_poll(rk, 0);
    if (rd_kafka_fatal_error(rk, nullptr, 0)) return false;
    if (on_progress_) on_progress_(rows, bytes);
    return true;
  }

  // Record batches: each row encoded by value_format (encode_value, encode_csv,
  // encode_string), or a tombstone (null value) where the tombstone column is true.
  void produce_batch(rd_kafka_t* rk, rd_kafka_topic_t* topic, const RecordBatch& batch,
                     int64_t& rows, int64_t& bytes) {
    for (size_t r = 0; r < batch.num_rows(); ++r) {
      bool tombstone = tombstone_index_ >= 0 &&
                       !batch.is_null(r, static_cast<size_t>(tombstone_index_)) &&
                       batch.cell(r, static_cast<size_t>(tombstone_index_)) == "true";
      bool keyed = encode_key(batch, r, key_text_);
      std::string_view value;  // null: a tombstone
      if (!tombstone) {
        switch (value_format_) {
          case ValueFormat::Json:
            encode_value(batch, r, value_);
            value = value_;
            break;
          case ValueFormat::Csv:
            encode_csv(batch, r, value_);
            value = value_;
            break;
          case ValueFormat::String:
            if (batch.is_null(r, value_index_)) {
              if (!keyed)
                throw Error(ErrorCode::TypeMismatch,
                            fmt::format("{}: row {} has NULL in the value column '{}': "
                                        "value_format string sends NULL as a tombstone, which "
                                        "needs a key",
                                        where_, rows + 1, column_names_[value_index_]),
                            "set a key (the strategy's unique_key or `key`), or fix the data");
              tombstone = true;
            } else {
              value = batch.cell(r, value_index_);
              if (!value.data()) value = std::string_view("", 0);  // empty, not null
            }
            break;
        }
      }
      if (tombstone) ++tombstones_;
      produce(rk, topic, value, keyed ? &key_text_ : nullptr, run_headers());
      bytes += static_cast<int64_t>(value.size());
      ++rows;
    }
  }

  // JSON lines (WireFormat::Jsonl, e.g. a JSONL file without declared columns): the
  // source validated every line as one JSON object and names file:line when one is not;
  // each line's bytes are the event's value, unchanged. A key column is read from the
  // line (json_key_text). Memory: one input block.
  void produce_lines(rd_kafka_t* rk, rd_kafka_topic_t* topic, ByteReader& reader, int64_t& rows,
                     int64_t& bytes) {
    std::vector<char> buf(size_t{1} << 20);
    size_t have = 0;
    std::string key;
    try {
      for (;;) {
        if (have == buf.size()) buf.resize(buf.size() * 2);  // one line longer than the block
        size_t n = reader.read(buf.data() + have, buf.size() - have);
        const bool end = n == 0;
        have += n;
        size_t start = 0;
        for (;;) {
          const char* from = buf.data() + start;
          const void* nl = std::memchr(from, '\n', have - start);
          size_t len = nl ? static_cast<size_t>(static_cast<const char*>(nl) - from) : have - start;
          if (!nl && !(end && len > 0)) break;
          std::string_view value(from, len);
          ++rows;
          bool keyed = !key_columns_.empty();
          if (keyed) line_key(value, rows, key);
          if (outbox_)
            outbox_->add_view(value, keyed ? &key : nullptr);  // buf holds until the flush below
          else
            produce(rk, topic, value, keyed ? &key : nullptr, run_headers());
          bytes += static_cast<int64_t>(len);
          start += nl ? len + 1 : len;
        }
        if (outbox_) outbox_->flush();
        if (end) return;
        std::memmove(buf.data(), buf.data() + start, have - start);
        have -= start;
        if (!between_blocks(rk, rows, bytes)) return;
      }
    } catch (...) {
      flush_outbox_quietly();  // now, while buf (the outbox's views point into it) exists
      throw;
    }
  }

  // The key of one JSON line: like encode_key, from the line's fields: a string's text,
  // a number's or bool's JSON text (integers exact, other numbers shortest round-trip),
  // an object or array as compact JSON; missing or null fails with KEY_NULL.
  void line_key(std::string_view line, int64_t event, std::string& out) {
    simdjson::dom::element doc;
    if (auto error = key_parser_.parse(line.data(), line.size()).get(doc);
        error || !doc.is_object())
      throw Error(ErrorCode::InputMalformed,
                  fmt::format("{}: event {} of the input is not a JSON object{}", where_, event,
                              error ? std::string(": ") + simdjson::error_message(error) : ""),
                  "each line must hold one complete JSON object");
    out.clear();
    if (key_.size() > 1) out += '[';
    for (size_t i = 0; i < key_.size(); ++i) {
      simdjson::dom::element v;
      if (doc.at_key(key_[i]).get(v) || v.is_null())
        throw Error(ErrorCode::KeyNull,
                    fmt::format("{}: event {} of the input has no value for key column '{}'",
                                where_, event, key_[i]),
                    "fix the source data or the key");
      if (key_.size() == 1) {
        append_key_text(out, v);
      } else {
        if (i) out += ',';
        scratch_.clear();
        append_key_text(scratch_, v);
        append_json_string(out, scratch_);
      }
    }
    if (key_.size() > 1) out += ']';
  }

  static void append_key_text(std::string& out, const simdjson::dom::element& v) {
    char num[32];
    switch (v.type()) {
      case simdjson::dom::element_type::STRING:
        out.append(std::string_view(v.get_string().value_unsafe()));
        return;
      case simdjson::dom::element_type::INT64: {
        auto r = std::to_chars(num, num + sizeof num, v.get_int64().value_unsafe());
        out.append(num, r.ptr);
        return;
      }
      case simdjson::dom::element_type::UINT64: {
        auto r = std::to_chars(num, num + sizeof num, v.get_uint64().value_unsafe());
        out.append(num, r.ptr);
        return;
      }
      case simdjson::dom::element_type::DOUBLE: {
        auto r = std::to_chars(num, num + sizeof num, v.get_double().value_unsafe());
        out.append(num, r.ptr);
        return;
      }
      case simdjson::dom::element_type::BOOL:
        out += v.get_bool().value_unsafe() ? "true" : "false";
        return;
      default:
        out += simdjson::minify(v);
        return;
    }
  }

  void prepare_encoding(const Schema& schema) {
    names_.clear();
    column_names_ = schema.names();
    kinds_.clear();
    key_columns_.clear();
    value_columns_.clear();
    tombstone_index_ = -1;
    if (!tombstone_column_.empty()) {
      tombstone_index_ = schema.find(tombstone_column_);
      if (tombstone_index_ < 0)
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: tombstone_column '{}' is not a column of the source "
                                "(columns: {})",
                                where_, tombstone_column_, fmt::join(schema.names(), ", ")));
      const auto& type = schema.columns[static_cast<size_t>(tombstone_index_)].type;
      if (type.id != TypeId::Bool)
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: tombstone_column '{}' is {}, not bool", where_,
                                tombstone_column_, type.to_string()),
                    "name a bool column that is true for the rows to delete");
    }
    for (const auto& c : schema.columns) {
      std::string name;
      append_json_string(name, c.name);
      names_.push_back(name + ":");
      kinds_.push_back(kind_of(c.type));
    }
    // The value's columns: every column but the tombstone column, in schema order.
    for (size_t i = 0; i < schema.columns.size(); ++i)
      if (static_cast<int>(i) != tombstone_index_) value_columns_.push_back(i);
    for (const auto& k : key_) {
      int i = schema.find(k);
      if (i < 0)
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: the key column '{}' is not a column of the source (columns: {})",
                        where_, k, fmt::join(schema.names(), ", ")));
      key_columns_.push_back(static_cast<size_t>(i));
    }
    if (value_format_ == ValueFormat::String) value_index_ = string_value_column(schema);
  }

  // value_format string: `value_column`, or the one column that is neither a key column
  // nor the tombstone column.
  size_t string_value_column(const Schema& schema) const {
    if (!value_column_.empty()) {
      int i = schema.find(value_column_);
      if (i < 0)
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: value_column '{}' is not a column of the source (columns: {})",
                                where_, value_column_, fmt::join(schema.names(), ", ")));
      return static_cast<size_t>(i);
    }
    std::vector<size_t> candidates;
    for (size_t i : value_columns_)
      if (std::find(key_columns_.begin(), key_columns_.end(), i) == key_columns_.end())
        candidates.push_back(i);
    if (candidates.size() != 1) {
      std::vector<std::string> names;
      for (size_t i : candidates) names.push_back(schema.columns[i].name);
      throw Error(ErrorCode::ConfigInvalid,
                  fmt::format("{}: value_format string sends one column as the value, but the "
                              "source has {} columns besides the key and tombstone columns: {}",
                              where_, candidates.size(), fmt::join(names, ", ")),
                  "name the column with `value_column`, or use value_format json or csv");
    }
    return candidates[0];
  }

  // The row as one JSON object, like the JSONL writer: numbers as numbers (NaN and
  // infinities as strings), json embedded, bytes as base64, everything else as strings.
  void encode_value(const RecordBatch& batch, size_t row, std::string& out) const {
    out.clear();
    out += '{';
    bool first = true;
    for (size_t c : value_columns_) {
      if (!first) out += ',';
      first = false;
      out += names_[c];
      if (batch.is_null(row, c)) {
        out += "null";
        continue;
      }
      std::string_view v = batch.cell(row, c);
      switch (kinds_[c]) {
        case ValueKind::Number:
          if (v == "NaN" || v == "Infinity" || v == "-Infinity")
            append_json_string(out, v);
          else
            out += v;
          break;
        case ValueKind::Bool:
        case ValueKind::Json:
          out += v;
          break;
        case ValueKind::Bytes:
          out += '"';
          append_base64(out, v);
          out += '"';
          break;
        case ValueKind::Text:
          append_json_string(out, v);
          break;
      }
    }
    out += '}';
  }

  // One header-less CSV line (no line end) of the value columns' canonical texts, as the
  // files sink writes CSV: NULL an empty unquoted field, the empty string "".
  void encode_csv(const RecordBatch& batch, size_t row, std::string& out) const {
    out.clear();
    bool first = true;
    for (size_t c : value_columns_) {
      if (!first) out += ',';
      first = false;
      if (!batch.is_null(row, c)) append_csv_field(out, batch.cell(row, c), csv_);
    }
  }

  // One key column: its text (bytes raw). Several: a JSON array of their texts. A key
  // with a NULL column is refused: the event's partition would be arbitrary.
  bool encode_key(const RecordBatch& batch, size_t row, std::string& out) const {
    if (key_columns_.empty()) return false;
    out.clear();
    if (key_columns_.size() == 1) {
      size_t c = key_columns_[0];
      if (batch.is_null(row, c)) throw null_key(c);
      out.append(batch.cell(row, c));
      return true;
    }
    out += '[';
    for (size_t i = 0; i < key_columns_.size(); ++i) {
      size_t c = key_columns_[i];
      if (batch.is_null(row, c)) throw null_key(c);
      if (i) out += ',';
      append_json_string(out, batch.cell(row, c));
    }
    out += ']';
    return true;
  }

  const std::string& key_name(size_t c) const { return column_names_[c]; }

  Error null_key(size_t c) const {
    return Error(ErrorCode::KeyNull,
                 fmt::format("{}: a row has NULL in key column '{}'", where_, key_name(c)),
                 "fix the source data or the key");
  }

  json receipt_json(const LoadReceipt& r) const {
    return json{{"stream", r.stream},
                {"run_id", r.run_id},
                {"base_revision", r.base_revision},
                {"window", r.window},
                {"new_position", r.new_position},
                {"rows", r.rows},
                {"loaded_at", r.loaded_at},
                {"topic", topic_}};
  }

  void write_receipt(const LoadReceipt& r) {
    const json j = receipt_json(r);
    std::error_code ec;
    fs::create_directories(receipt_path_.parent_path(), ec);
    fs::path tmp = receipt_path_;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << j.dump(2) << "\n";
      out.flush();
      if (!out)
        throw Error(ErrorCode::PromoteFailed,
                    fmt::format("{}: cannot write the load receipt {}", where_, tmp.string()),
                    "the events were delivered; check the directory's permissions and free space");
    }
    fs::rename(tmp, receipt_path_, ec);
    if (ec)
      throw Error(ErrorCode::PromoteFailed,
                  fmt::format("{}: cannot write the load receipt {}: {}", where_,
                              receipt_path_.string(), ec.message()));
  }

  std::string stream_, run_id_, where_, topic_;
  std::function<void(int64_t, int64_t)> on_progress_;
  kafka::ClientSettings settings_;
  std::vector<std::string> key_;
  int timeout_ms_ = 30000;
  std::vector<std::pair<std::string, std::string>> headers_;  // name, value
  int64_t delivery_timeout_ms_ = 120000, linger_ms_ = 5, batch_size_ = 1000000;
  std::string compression_;
  fs::path receipt_path_;
  bool exactly_once_ = true;
  std::string receipts_topic_, transactional_id_;
  size_t receipts_partition_count_ = 0;
  bool in_transaction_ = false;
  bool transactions_ready_ = false;  // init_transactions done
  kafka::HandlePtr receipts_reader_;
  kafka::DeliveryTally tally_;
  kafka::HandlePtr producer_;
  std::optional<kafka::Outbox> outbox_;  // during stage(), unless events carry headers
  std::vector<int32_t> partitions_;
  std::vector<std::string> names_;  // `"name":` ready to copy
  std::vector<std::string> column_names_;
  std::vector<ValueKind> kinds_;
  simdjson::dom::parser key_parser_;
  std::string scratch_, value_, key_text_;
  std::vector<size_t> key_columns_;
  ValueFormat value_format_ = ValueFormat::Json;
  std::string value_column_, tombstone_column_;
  std::vector<size_t> value_columns_;  // every column but the tombstone column
  int tombstone_index_ = -1;           // the tombstone column, -1: none
  size_t value_index_ = 0;             // value_format string: the value's column
  int64_t tombstones_ = 0;
  const CsvOptions csv_{};  // value_format csv: RFC 4180 defaults (`,`, `"`, NULL empty)
};

}  // namespace

std::unique_ptr<Sink> make_kafka_sink(const SinkContext& context) {
  return std::make_unique<KafkaSink>(context);
}

}  // namespace dpone
