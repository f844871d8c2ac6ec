#include "connectors/kafka/kafka_common.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/connector/timeouts.hpp"

namespace dpone {

void register_kafka_connector(ConnectorRegistry& registry) {
  ConnectorFactory factory;
  factory.name = "kafka";
  factory.make_source = [](const SourceContext& context) { return make_kafka_source(context); };
  factory.make_sink = [](const SinkContext& context) { return make_kafka_sink(context); };
  registry.add(std::move(factory));
}

namespace kafka {

void ClientSettings::set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : properties) {
    if (k == key) {
      v = value;
      return;
    }
  }
  properties.emplace_back(key, value);
}

namespace {

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

}  // namespace

ClientSettings client_settings(const nlohmann::json& options, const ResolvedConnection* connection,
                               const std::string& where) {
  ClientSettings s;
  std::string from_option =
      options.contains("bootstrap_servers") ? scalar_text(options["bootstrap_servers"]) : "";
  std::string from_connection;
  if (connection) {
    from_connection = connection->get("bootstrap_servers").value_or("");
    if (auto v = connection->get("security_protocol")) s.set("security.protocol", *v);
    if (auto v = connection->get("sasl_mechanism")) s.set("sasl.mechanism", *v);
    if (auto v = connection->get("username")) s.set("sasl.username", *v);
    if (const Secret* p = connection->secret("password")) s.set("sasl.password", p->reveal());
  }
  // Broker connection setup (TCP, TLS, SASL, ApiVersion) and any one broker request end
  // after these, so a broker that accepts TCP and never answers is given up quickly;
  // librdkafka then retries the connection in the background until the caller's own
  // wait (timeout_ms, delivery_timeout_ms) ends.
  auto ms = [](double seconds) { return std::to_string(std::llround(seconds * 1000)); };
  ResolvedConnection none;
  const ResolvedConnection& c = connection ? *connection : none;
  s.set("socket.connection.setup.timeout.ms",
        ms(connection_timeout(c, "connect_timeout", kDefaultConnectTimeout, where)));
  s.set("socket.timeout.ms",
        ms(connection_timeout(c, "request_timeout", kDefaultRequestTimeout, where)));
  if (!from_option.empty() && !from_connection.empty()) {
    throw Error(
        ErrorCode::ConfigInvalid,
        fmt::format("{} names the brokers twice: connection '{}' has `bootstrap_servers` and "
                    "the stream sets the `bootstrap_servers` option",
                    where, connection->id),
        "keep one of them");
  }
  s.bootstrap = from_option.empty() ? from_connection : from_option;
  if (s.bootstrap.empty()) {
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("{} needs the brokers: set `bootstrap_servers` on the connection or as "
                            "an option",
                            where),
                "e.g. bootstrap_servers: \"broker1:9092,broker2:9092\"");
  }
  s.set("bootstrap.servers", s.bootstrap);
  if (options.contains("properties")) {
    const auto& props = options["properties"];
    if (!props.is_object()) {
      throw Error(
          ErrorCode::ConfigWrongType,
          fmt::format("{} option `properties` must be a map of librdkafka settings", where));
    }
    for (const auto& [k, v] : props.items()) s.set(k, scalar_text(v));
  }
  return s;
}

ClientSettings assigned_reader_defaults(const std::string& group_id) {
  ClientSettings s;
  s.set("group.id", group_id);
  s.set("enable.auto.commit", "false");
  s.set("enable.auto.offset.store", "false");
  s.set("enable.partition.eof", "true");
  s.set("isolation.level", "read_committed");
  s.set("allow.auto.create.topics", "false");  // reading never creates a topic
  s.set("log_level", "2");  // connection errors reach the operator as dpone errors instead
  return s;
}

HandlePtr make_client(rd_kafka_type_t type, const ClientSettings& settings,
                      const std::string& where, ConfPtr conf) {
  char errstr[512];
  for (const auto& [k, v] : settings.properties) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
      // The value is not echoed: it may be a credential.
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: librdkafka refused the setting `{}`: {}", where, k, errstr),
                  "check the name and value against librdkafka's CONFIGURATION.md");
    }
  }
  rd_kafka_t* h = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (!h) {
    throw Error(
        type == RD_KAFKA_PRODUCER ? ErrorCode::SinkUnavailable : ErrorCode::SourceUnavailable,
        fmt::format("{}: cannot create the Kafka client: {}", where, errstr));
  }
  conf.release();  // rd_kafka_new took ownership
  return HandlePtr(h);
}

HandlePtr make_client(rd_kafka_type_t type, const ClientSettings& settings,
                      const std::string& where, rd_kafka_conf_t* extra) {
  return make_client(type, settings, where, ConfPtr(extra ? extra : rd_kafka_conf_new()));
}

std::vector<int32_t> topic_partitions(rd_kafka_t* handle, const std::string& topic, int timeout_ms,
                                      ErrorCode unavailable_code, const std::string& where,
                                      const std::string& bootstrap) {
  TopicPtr t(rd_kafka_topic_new(handle, topic.c_str(), nullptr));
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(handle, 0, t.get(), &raw, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
    throw timed_out(where, bootstrap, fmt::format("metadata request (topic '{}')", topic),
                    timeout_ms / 1000.0, "stream option `timeout_ms`", rd_kafka_err2str(err));
  }
  if (err) {
    throw Error(unavailable_code,
                fmt::format("{}: no metadata for topic '{}' within {} ms: {}", where, topic,
                            timeout_ms, rd_kafka_err2str(err)),
                "check bootstrap_servers and that the brokers are reachable");
  }
  MetadataPtr md(raw);
  std::vector<int32_t> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& tm = md->topics[i];
    if (topic != tm.topic) continue;
    if (tm.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || tm.partition_cnt == 0) {
      throw Error(
          unavailable_code,
          fmt::format("{}: topic '{}' does not exist on {}", where, topic, rd_kafka_name(handle)),
          "create the topic first (dpone never creates, deletes or compacts topics)");
    }
    if (tm.err) {
      throw Error(unavailable_code,
                  fmt::format("{}: topic '{}': {}", where, topic, rd_kafka_err2str(tm.err)));
    }
    for (int p = 0; p < tm.partition_cnt; ++p) out.push_back(tm.partitions[p].id);
  }
  if (out.empty()) {
    throw Error(unavailable_code, fmt::format("{}: topic '{}' does not exist", where, topic),
                "create the topic first (dpone never creates, deletes or compacts topics)");
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Kafka's org.apache.kafka.common.utils.Utils.murmur2, byte for byte: 4-byte little-endian
// blocks, then the tail bytes (each sign-extended as Java's byte is, masked by & 0xff).
int32_t murmur2(std::string_view key) {
  const uint32_t seed = 0x9747b28c;
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  const size_t length = key.size();
  uint32_t h = seed ^ static_cast<uint32_t>(length);
  const size_t blocks = length / 4;
  for (size_t i = 0; i < blocks; ++i) {
    const size_t i4 = i * 4;
    uint32_t k = static_cast<uint32_t>(data[i4]) | (static_cast<uint32_t>(data[i4 + 1]) << 8) |
                 (static_cast<uint32_t>(data[i4 + 2]) << 16) |
                 (static_cast<uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const size_t tail = blocks * 4;
  switch (length % 4) {
    case 3:
      h ^= static_cast<uint32_t>(data[tail + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(data[tail + 1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= static_cast<uint32_t>(data[tail]);
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

int32_t java_partition(std::string_view key, int32_t partitions) {
  return static_cast<int32_t>((static_cast<uint32_t>(murmur2(key)) & 0x7fffffffu) %
                              static_cast<uint32_t>(partitions));
}

int64_t int_option(const nlohmann::json& options, const char* key, int64_t fallback,
                   const std::string& where) {
  if (!options.contains(key) || options[key].is_null()) return fallback;
  const auto& v = options[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    int64_t out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && p == s.data() + s.size()) return out;
  }
  throw Error(ErrorCode::ConfigWrongType,
              fmt::format("{} option `{}` must be an integer, got {}", where, key, v.dump()));
}

nlohmann::json offsets_to_json(const Offsets& offsets) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [topic, parts] : offsets) {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& [partition, offset] : parts) p[std::to_string(partition)] = offset;
    out[topic] = std::move(p);
  }
  return out;
}

Offsets offsets_from_json(const nlohmann::json& position, const std::string& where) {
  Offsets out;
  if (position.is_null()) return out;
  auto bad = [&]() {
    return Error(ErrorCode::StateStoreFailed,
                 fmt::format("{}: the stored position {} is not a Kafka offsets map "
                             "{{\"topic\": {{\"partition\": offset}}}}",
                             where, position.dump()),
                 "the state was written by another source type; reset the stream's state");
  };
  if (!position.is_object()) throw bad();
  for (const auto& [topic, parts] : position.items()) {
    if (!parts.is_object()) throw bad();
    for (const auto& [partition, offset] : parts.items()) {
      int32_t p = 0;
      auto [end, ec] = std::from_chars(partition.data(), partition.data() + partition.size(), p);
      if (ec != std::errc() || end != partition.data() + partition.size() ||
          !offset.is_number_integer()) {
        throw bad();
      }
      out[topic][p] = offset.get<int64_t>();
    }
  }
  return out;
}

}  // namespace kafka
}  // namespace dpone
