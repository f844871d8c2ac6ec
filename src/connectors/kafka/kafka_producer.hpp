// The producing half of the kafka sink: the delivery-report tally and the outbox that
// hands events to librdkafka in batches.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone::kafka {

// Counts delivery reports; librdkafka calls on_delivery() (the opaque is the tally) from
// rd_kafka_poll()/flush() on the producing thread. `offsets` keeps, per partition, the
// first and last offset this run delivered: the run record's provenance of its events (a
// consumer can tell which run wrote an offset, and an at-least-once re-run's duplicates,
// without a header on every event).
struct DeliveryTally {
  int64_t delivered = 0;
  int64_t failed = 0;
  std::string first_error;
  std::vector<std::pair<int64_t, int64_t>> offsets;  // by partition; {-1, -1}: none
  nlohmann::json offsets_json() const;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* tally);

// Events handed to librdkafka in batches (rd_kafka_produce_batch), in the order added.
//
// Why: rd_kafka_producev() reads the clock three times and takes the topic's lock for
// every event; the batch call does both once per batch. For 1M events of ~100 bytes that
// is ~0.08 s of the producing thread, which is the thread a whole produce waits on
// (bench/kafka_produce). The batch call carries no headers: a sink configured with
// `headers` produces one event at a time instead.
//
// Partitions: the outbox picks them (RD_KAFKA_MSG_F_PARTITION), as librdkafka's
// murmur2_random partitioner would: a keyed event goes to java_partition(key), where
// Kafka's Java client puts it; events without key go to one random partition per batch
// (sticky partitioning, KIP-480). librdkafka's own partitioner would read the clock
// twice more per event (its sticky-partition timer and the enqueue time).
//
// Order: librdkafka keeps a partition's events in the order they are enqueued. When its
// queue is full (queue.buffering.max.messages or .kbytes), the batch call refuses that
// event and every later one of the same call (rdkafka_msg.c, rd_kafka_produce_batch), so
// the outbox serves delivery reports (rd_kafka_poll) and hands over the rest from the
// first refused event: order is kept. Should librdkafka ever accept an event after
// refusing an earlier one, flush() fails the run rather than reorder.
//
// Timestamps: an event's CreateTime is the time of its batch call (one batch holds at
// most kMaxEvents events, well under a millisecond of work).
class Outbox {
 public:
  static constexpr size_t kMaxEvents = 1024;
  static constexpr size_t kMaxBytes = size_t{1} << 20;

  // `partitions`: the topic's partition count; `where` prefixes error messages.
  Outbox(rd_kafka_t* rk, rd_kafka_topic_t* topic, int32_t partitions, std::string where);

  // Copies the event. A value whose data() is null is a null value (a tombstone); a null
  // key pointer is no key. Hands the batch over once it is full.
  void add(std::string_view value, const std::string* key);
  // Same without copying the value: its bytes must stay as they are until flush().
  void add_view(std::string_view value, const std::string* key);
  // Hands every added event to librdkafka, waiting for room while its queue is full.
  // Throws Error(StageFailed) when librdkafka refuses an event for another reason (too
  // large, unknown partition): the run fails, and the events not handed over are dropped
  // (a second flush() never sends them).
  void flush();

  int64_t handed_over() const { return handed_events_; }

 private:
  struct Entry {
    const char* value;  // add_view's value, else null: the value is at value_at in data_
    size_t value_at, value_len, key_at, key_len;
    bool null_value, has_key;
    int32_t partition;  // keyed: java_partition(key); else -1 (the batch's random one)
  };
  void push(Entry e, const std::string* key);
  void group_by_partition();

  rd_kafka_t* rk_;
  rd_kafka_topic_t* topic_;
  int32_t partitions_;
  std::minstd_rand random_;
  std::string where_;
  int64_t handed_events_ = 0;
  std::string data_;  // values and keys of the entries
  std::vector<Entry> entries_;
  std::vector<rd_kafka_message_t> messages_, grouped_;
  std::vector<size_t> starts_;  // group_by_partition: where each partition's events go
};

}  // namespace dpone::kafka
