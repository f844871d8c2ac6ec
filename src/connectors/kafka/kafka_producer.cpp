#include "connectors/kafka/kafka_producer.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "connectors/kafka/kafka_common.hpp"
#include "core/errors.hpp"

namespace dpone::kafka {

nlohmann::json DeliveryTally::offsets_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (size_t p = 0; p < offsets.size(); ++p)
    if (offsets[p].first >= 0) out[std::to_string(p)] = {offsets[p].first, offsets[p].second};
  return out;
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* tally = static_cast<DeliveryTally*>(opaque);
  if (m->err) {
    if (tally->failed++ == 0)
      tally->first_error = fmt::format("{}[{}]: {}", m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
                                       m->partition, rd_kafka_err2str(m->err));
    return;
  }
  ++tally->delivered;
  if (m->partition >= 0 && m->offset >= 0) {
    auto p = static_cast<size_t>(m->partition);
    if (p >= tally->offsets.size()) tally->offsets.resize(p + 1, {-1, -1});
    auto& [first, last] = tally->offsets[p];
    if (first < 0 || m->offset < first) first = m->offset;
    if (m->offset > last) last = m->offset;
  }
}

Outbox::Outbox(rd_kafka_t* rk, rd_kafka_topic_t* topic, int32_t partitions, std::string where)
    : rk_(rk),
      topic_(topic),
      partitions_(std::max(partitions, 1)),
      random_(std::random_device{}()),
      where_(std::move(where)) {
  entries_.reserve(kMaxEvents);
  messages_.reserve(kMaxEvents);
}

void Outbox::add(std::string_view value, const std::string* key) {
  Entry e{nullptr, data_.size(), value.size(), 0, 0, value.data() == nullptr, key != nullptr, -1};
  data_.append(value);
  push(e, key);
}

void Outbox::add_view(std::string_view value, const std::string* key) {
  push(Entry{value.data(), 0, value.size(), 0, 0, value.data() == nullptr, key != nullptr, -1},
       key);
}

void Outbox::push(Entry e, const std::string* key) {
  if (key) {
    e.key_at = data_.size();
    e.key_len = key->size();
    data_.append(*key);
    e.partition = java_partition(*key, partitions_);
  }
  entries_.push_back(e);
  if (entries_.size() >= kMaxEvents || data_.size() >= kMaxBytes) flush();
}

// Orders messages_ by partition, each partition's events in the order added (a stable
// counting sort). librdkafka looks the partition up again whenever consecutive events of
// a batch call change partition: keyed events, grouped, cost 14% less CPU (SQLite ->
// Kafka, 1M keyed events, 16 partitions). The order across partitions means nothing.
void Outbox::group_by_partition() {
  if (messages_.empty()) return;
  starts_.assign(static_cast<size_t>(partitions_) + 1, 0);
  for (const auto& m : messages_) ++starts_[static_cast<size_t>(m.partition) + 1];
  if (starts_[static_cast<size_t>(messages_.front().partition) + 1] == messages_.size())
    return;  // one partition (events without key): already in order
  for (size_t p = 1; p < starts_.size(); ++p) starts_[p] += starts_[p - 1];
  grouped_.resize(messages_.size());
  for (const auto& m : messages_) grouped_[starts_[static_cast<size_t>(m.partition)]++] = m;
  messages_.swap(grouped_);
}

void Outbox::flush() {
  struct Clear {  // also when librdkafka refuses an event: the rest is dropped, never re-sent
    Outbox& o;
    ~Clear() {
      o.entries_.clear();
      o.data_.clear();
    }
  } clear{*this};
  messages_.clear();
  const auto sticky = static_cast<int32_t>(random_() % static_cast<uint32_t>(partitions_));
  for (const Entry& e : entries_) {
    rd_kafka_message_t m{};
    m.payload = e.null_value ? nullptr
                : e.value    ? const_cast<char*>(e.value)
                             : data_.data() + e.value_at;
    m.len = e.null_value ? 0 : e.value_len;
    m.key = e.has_key ? data_.data() + e.key_at : nullptr;
    m.key_len = e.has_key ? e.key_len : 0;
    m.partition = e.partition >= 0 ? e.partition : sticky;
    messages_.push_back(m);
  }
  group_by_partition();
  size_t start = 0;  // the first message not yet accepted
  while (start < messages_.size()) {
    const int count = static_cast<int>(messages_.size() - start);
    const int accepted = rd_kafka_produce_batch(topic_, RD_KAFKA_PARTITION_UA,
                                                RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_PARTITION,
                                                messages_.data() + start, count);
    handed_events_ += accepted;
    if (accepted == count) return;
    size_t refused = start;
    while (messages_[refused].err == RD_KAFKA_RESP_ERR_NO_ERROR) ++refused;
    bool later_accepted = false;
    for (size_t k = refused + 1; k < messages_.size(); ++k)
      later_accepted = later_accepted || messages_[k].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    const rd_kafka_resp_err_t err = messages_[refused].err;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !later_accepted) {
      for (size_t k = refused; k < messages_.size(); ++k)
        messages_[k].err = RD_KAFKA_RESP_ERR_NO_ERROR;
      start = refused;
      rd_kafka_poll(rk_, 100);  // serve delivery reports until the queue has room
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)  // and yet a later event was accepted
      throw Error(ErrorCode::StageFailed,
                  fmt::format("{}: librdkafka refused an event of topic {} (queue full) but "
                              "accepted later ones of the same batch, whose order is then not "
                              "kept",
                              where_, rd_kafka_topic_name(topic_)));
    throw Error(ErrorCode::StageFailed,
                fmt::format("{}: cannot produce an event ({} bytes) to topic {}: {}{}", where_,
                            messages_[refused].len + messages_[refused].key_len,
                            rd_kafka_topic_name(topic_), rd_kafka_err2str(err),
                            later_accepted ? " (the events after it in the same batch of up to "
                                             "1024 were handed over)"
                                           : ""));
  }
}

}  // namespace dpone::kafka
