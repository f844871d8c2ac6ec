// The kafka connector (README.md): a bounded batch source and an append-only event sink
// on librdkafka. Shared pieces: registration, RAII handles, client configuration, the
// Java-compatible murmur2 partitioner and offset positions.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/registry.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"
#include "core/errors.hpp"

namespace dpone {

// Registers the "kafka" source and sink factories (the module entry point calls it).
void register_kafka_connector(ConnectorRegistry& registry);

std::unique_ptr<Source> make_kafka_source(const SourceContext& context);
std::unique_ptr<Sink> make_kafka_sink(const SinkContext& context);

namespace kafka {

// RAII owners of librdkafka handles.
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
  void operator()(rd_kafka_t* h) const { rd_kafka_destroy(h); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// Client configuration in librdkafka property names, built from (in this order, later
// wins): dpone's defaults for the role, the connection (bootstrap_servers,
// security_protocol, sasl_mechanism, username, password) or the `bootstrap_servers`
// option, then the stream's `properties` map. Secrets are only read with reveal().
// Defaults of the connection fields connect_timeout and request_timeout (seconds).
inline constexpr double kDefaultConnectTimeout = 10;
inline constexpr double kDefaultRequestTimeout = 30;

struct ClientSettings {
  std::vector<std::pair<std::string, std::string>> properties;
  std::string bootstrap;  // for messages
  void set(const std::string& key, const std::string& value);
};

ClientSettings client_settings(const nlohmann::json& options, const ResolvedConnection* connection,
                               const std::string& where);

// dpone's defaults for a consumer that reads assigned partitions to their end and never
// joins or commits to a group (`group_id` only names it to the brokers): partition EOF
// reported, read_committed, no auto-created topics, librdkafka's own log quiet.
ClientSettings assigned_reader_defaults(const std::string& group_id);

// A configured client handle; `failure` is the code thrown when librdkafka refuses a
// property (ConfigBadValue) or the handle cannot be created.
HandlePtr make_client(rd_kafka_type_t type, const ClientSettings& settings,
                      const std::string& where, rd_kafka_conf_t* extra = nullptr);
// Same, starting from a conf the caller prepared (callbacks, opaque).
HandlePtr make_client(rd_kafka_type_t type, const ClientSettings& settings,
                      const std::string& where, ConfPtr conf);

// Partitions of `topic` from the cluster's metadata, sorted. Throws
// TIMED_OUT (naming `bootstrap`) when the cluster does not answer in timeout_ms, and
// Error(unavailable_code) when the topic does not exist (hint: create it; dpone never
// creates topics).
std::vector<int32_t> topic_partitions(rd_kafka_t* handle, const std::string& topic, int timeout_ms,
                                      ErrorCode unavailable_code, const std::string& where,
                                      const std::string& bootstrap);

// Java client's Utils.murmur2 (seed 0x9747b28c) over the key bytes.
int32_t murmur2(std::string_view key);
// The partition Kafka's Java DefaultPartitioner (and librdkafka's murmur2 partitioners)
// pick for a non-null key: (murmur2(key) & 0x7fffffff) % partitions.
int32_t java_partition(std::string_view key, int32_t partitions);

// Integer option (JSON integer or integer text), or `fallback` when absent.
int64_t int_option(const nlohmann::json& options, const char* key, int64_t fallback,
                   const std::string& where);

// Offsets positions: {"<topic>": {"<partition>": next offset, ...}, ...}.
using Offsets = std::map<std::string, std::map<int32_t, int64_t>>;
nlohmann::json offsets_to_json(const Offsets& offsets);
Offsets offsets_from_json(const nlohmann::json& position, const std::string& where);

}  // namespace kafka
}  // namespace dpone
