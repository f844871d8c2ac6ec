// dpone_kafka_mock: a Kafka test service on librdkafka's mock cluster (rdkafka_mock.h),
// a real Kafka wire-protocol server, for machines where no broker is packaged.
//
//   dpone_kafka_mock [--brokers N] [--topic NAME:PARTITIONS ...] [--bootstrap-file F]
//                    [--control FIFO]
//
// Starts N brokers on 127.0.0.1 (ephemeral ports), creates the topics (and the kafka
// sink's receipts topic __dpone_receipts, 4 partitions, unless --topic names it), prints the
// bootstrap list as its first stdout line (and writes it to --bootstrap-file, atomically),
// then serves until SIGTERM/SIGINT. The mock keeps only the newest ~5 MiB per partition.
//
// --control FIFO: a named pipe (created if missing) read line by line, so tests in other
// processes can steer the cluster:
//   topic NAME PARTITIONS           create a topic
//   errors APIKEY CODE [CODE ...]   the next requests of APIKEY (0 = Produce) fail with
//                                   these Kafka error codes, one per request
//   clear APIKEY                    drop pending errors of APIKEY
//   committed GROUP TOPIC PARTITIONS  the offsets consumer group GROUP committed for
//                                   partitions 0..PARTITIONS-1 of TOPIC, read with
//                                   rd_kafka_committed by a client of this program (an
//                                   independent reader); answered by the line
//                                   "result <line> => {"0": offset, ...}" (-1001: none)
// Each applied command is acknowledged by appending "ok <line>" (or "error <line>: why")
// to FIFO.ack, which a test polls before it goes on.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <poll.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

[[noreturn]] void die(const std::string& message) {
  std::cerr << "dpone_kafka_mock: " << message << "\n";
  std::exit(2);
}

// The committed offsets of `group` for partitions [0, partitions) of `topic`, as a JSON
// object text, or an error text starting with "error: ".
std::string committed_offsets(const std::string& bootstraps, const std::string& group,
                              const std::string& topic, int partitions) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), errstr, sizeof errstr) ||
      rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof errstr) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
      rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr)) {
    rd_kafka_conf_destroy(conf);
    return std::string("error: ") + errstr;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return std::string("error: ") + errstr;
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  rd_kafka_resp_err_t err = rd_kafka_committed(rk, list, 10000);
  std::string out;
  if (err) {
    out = std::string("error: ") + rd_kafka_err2str(err);
  } else {
    out = "{";
    for (int i = 0; i < list->cnt; ++i) {
      if (i) out += ", ";
      out += "\"" + std::to_string(list->elems[i].partition) +
             "\": " + std::to_string(list->elems[i].offset);
    }
    out += "}";
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

std::string apply(rd_kafka_mock_cluster_t* cluster, const std::string& line, std::string& result) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  if (verb == "committed") {
    std::string group, topic;
    int partitions = 0;
    if (!(in >> group >> topic >> partitions) || partitions <= 0)
      return "usage: committed GROUP TOPIC PARTITIONS";
    result = committed_offsets(rd_kafka_mock_cluster_bootstraps(cluster), group, topic, partitions);
    if (result.rfind("error: ", 0) == 0) return result.substr(7);
    return "";
  }
  if (verb == "topic") {
    std::string name;
    int partitions = 0;
    if (!(in >> name >> partitions) || partitions <= 0) return "usage: topic NAME PARTITIONS";
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1);
    if (err) return std::string("topic create failed: ") + rd_kafka_err2str(err);
    return "";
  }
  if (verb == "errors") {
    int api_key = -1;
    if (!(in >> api_key) || api_key < 0) return "usage: errors APIKEY CODE [CODE ...]";
    std::vector<rd_kafka_resp_err_t> codes;
    int code = 0;
    while (in >> code) codes.push_back(static_cast<rd_kafka_resp_err_t>(code));
    if (codes.empty()) return "usage: errors APIKEY CODE [CODE ...]";
    rd_kafka_mock_push_request_errors_array(cluster, static_cast<int16_t>(api_key), codes.size(),
                                            codes.data());
    return "";
  }
  if (verb == "clear") {
    int api_key = -1;
    if (!(in >> api_key) || api_key < 0) return "usage: clear APIKEY";
    rd_kafka_mock_clear_request_errors(cluster, static_cast<int16_t>(api_key));
    return "";
  }
  return "unknown command '" + verb + "'";
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  std::string bootstrap_file, control;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--brokers") {
      brokers = std::atoi(value().c_str());
      if (brokers <= 0) die("--brokers must be a positive number");
    } else if (a == "--topic") {
      std::string t = value();
      auto colon = t.rfind(':');
      if (colon == std::string::npos) die("--topic wants NAME:PARTITIONS, got " + t);
      topics.emplace_back(t.substr(0, colon), std::atoi(t.c_str() + colon + 1));
      if (topics.back().second <= 0) die("--topic " + t + ": partitions must be positive");
    } else if (a == "--bootstrap-file") {
      bootstrap_file = value();
    } else if (a == "--control") {
      control = value();
    } else {
      die("unknown argument " + a +
          " (usage: dpone_kafka_mock [--brokers N] [--topic NAME:PARTITIONS] "
          "[--bootstrap-file F] [--control FIFO])");
    }
  }

  // The mock cluster needs a client handle for its bookkeeping; it is never used.
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) die(std::string("rd_kafka_new: ") + errstr);
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!cluster) die("rd_kafka_mock_cluster_new failed");
  // The kafka sink's default receipts topic (exactly_once delivery), as an operator
  // creates it once per cluster; --topic __dpone_receipts:N overrides the count.
  if (std::none_of(topics.begin(), topics.end(),
                   [](const auto& t) { return t.first == "__dpone_receipts"; }))
    topics.emplace_back("__dpone_receipts", 4);
  for (const auto& [name, partitions] : topics) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1);
    if (err) die("creating topic " + name + ": " + rd_kafka_err2str(err));
  }
  std::string bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);

  int fifo = -1;
  std::string ack = control + ".ack";
  if (!control.empty()) {
    struct stat st {};
    if (stat(control.c_str(), &st) != 0 && mkfifo(control.c_str(), 0600) != 0)
      die("cannot create control FIFO " + control + ": " + std::strerror(errno));
    // O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF between tests.
    fifo = open(control.c_str(), O_RDWR | O_NONBLOCK);
    if (fifo < 0) die("cannot open control FIFO " + control + ": " + std::strerror(errno));
    std::ofstream(ack, std::ios::trunc).flush();
  }
  if (!bootstrap_file.empty()) {
    std::string tmp = bootstrap_file + ".tmp";
    std::ofstream(tmp, std::ios::trunc) << bootstraps << "\n";
    if (std::rename(tmp.c_str(), bootstrap_file.c_str()) != 0)
      die("cannot write " + bootstrap_file + ": " + std::strerror(errno));
  }
  std::cout << bootstraps << std::endl;

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::string pending;
  while (!g_stop) {
    if (fifo < 0) {
      usleep(200 * 1000);
      continue;
    }
    pollfd p{fifo, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    ssize_t n = read(fifo, buf, sizeof(buf));
    if (n <= 0) continue;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.empty()) continue;
      std::string result;
      std::string problem = apply(cluster, line, result);
      std::ofstream out(ack, std::ios::app);
      if (problem.empty() && !result.empty()) out << "result " << line << " => " << result << "\n";
      out << (problem.empty() ? "ok " + line : "error " + line + ": " + problem) << "\n";
    }
  }
  if (fifo >= 0) close(fifo);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
