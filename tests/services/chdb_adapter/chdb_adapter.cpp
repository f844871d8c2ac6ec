// dpone_chdb_adapter: ClickHouse 26 (libchdb, an in-process ClickHouse) behind the
// ClickHouse HTTP interface on 127.0.0.1, so the ClickHouse connector's tests can run
// against a 26.x engine where Debian ships only 18.16 (scripts/services/clickhouse26.sh).
//
// It only transports: each request becomes one libchdb query on one connection, calls
// serialized by a mutex (libchdb runs one statement at a time per connection). SQL
// semantics, errors and output are ClickHouse 26's own.
//
//   dpone_chdb_adapter --lib PATH/libchdb.so --path DATA_DIR --port N
//
// libchdb.so is loaded with dlopen: it is a 560 MB download kept out of the build, and
// only the few functions below (from chdb's public C API, chdb.h) are used.
#include <dlfcn.h>
#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace {

// --- the libchdb C API (chdb.h): opaque handles and the functions we call ------------------
struct chdb_connection_ {
  void* internal_data;
};
using chdb_connection = chdb_connection_*;
struct chdb_result {
  void* internal_data;
};

struct Chdb {
  chdb_connection* (*connect)(int, char**) = nullptr;
  void (*close_conn)(chdb_connection*) = nullptr;
  chdb_result* (*query_n)(chdb_connection, const char*, size_t, const char*, size_t) = nullptr;
  chdb_result* (*query_with_params_n)(chdb_connection, const char*, size_t, const char*, size_t,
                                      const char* const*, const size_t*, const char* const*,
                                      const size_t*, size_t) = nullptr;
  void (*destroy)(chdb_result*) = nullptr;
  char* (*buffer)(chdb_result*) = nullptr;
  size_t (*length)(chdb_result*) = nullptr;
  const char* (*error)(chdb_result*) = nullptr;
  uint64_t (*rows_read)(chdb_result*) = nullptr;
  uint64_t (*bytes_read)(chdb_result*) = nullptr;
  uint64_t (*rows_written)(chdb_result*) = nullptr;
  uint64_t (*bytes_written)(chdb_result*) = nullptr;
};

template <typename F>
void resolve(void* lib, const char* name, F& fn) {
  void* sym = dlsym(lib, name);
  if (!sym) {
    std::fprintf(stderr, "chdb_adapter: %s not found in libchdb.so\n", name);
    std::exit(2);
  }
  fn = reinterpret_cast<F>(sym);
}

// One finished libchdb query: output or the engine's error text, and its counters.
struct Outcome {
  bool ok = true;
  std::string body;  // result buffer, or the error message
  int code = 0;      // ClickHouse error code parsed from "Code: N." (0: none)
  uint64_t read_rows = 0, read_bytes = 0, written_rows = 0, written_bytes = 0;
};

int parse_code(const std::string& msg) {
  // libchdb's errors read like a server's: "Code: 60. DB::Exception: ... (UNKNOWN_TABLE)".
  auto at = msg.find("Code: ");
  if (at == std::string::npos) return 0;
  return std::atoi(msg.c_str() + at + 6);
}

class Engine {
 public:
  Engine(const std::string& lib_path, const std::string& data_path) {
    void* lib = dlopen(lib_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      std::fprintf(stderr, "chdb_adapter: cannot load %s: %s\n", lib_path.c_str(), dlerror());
      std::exit(2);
    }
    resolve(lib, "chdb_connect", api_.connect);
    resolve(lib, "chdb_close_conn", api_.close_conn);
    resolve(lib, "chdb_query_n", api_.query_n);
    resolve(lib, "chdb_query_with_params_n", api_.query_with_params_n);
    resolve(lib, "chdb_destroy_query_result", api_.destroy);
    resolve(lib, "chdb_result_buffer", api_.buffer);
    resolve(lib, "chdb_result_length", api_.length);
    resolve(lib, "chdb_result_error", api_.error);
    resolve(lib, "chdb_result_rows_read", api_.rows_read);
    resolve(lib, "chdb_result_bytes_read", api_.bytes_read);
    resolve(lib, "chdb_result_rows_written", api_.rows_written);
    resolve(lib, "chdb_result_bytes_written", api_.bytes_written);
    std::string path_arg = "--path=" + data_path;
    std::vector<char*> argv = {const_cast<char*>("clickhouse"), path_arg.data()};
    conn_ = api_.connect(static_cast<int>(argv.size()), argv.data());
    if (!conn_ || !*conn_) {
      std::fprintf(stderr, "chdb_adapter: chdb_connect(--path=%s) failed\n", data_path.c_str());
      std::exit(2);
    }
    // libchdb's session defaults are not a server's: put clickhouse-server's back, so
    // ALTER ... UPDATE/DELETE are asynchronous, INSERTs synchronous, DateTime parsing
    // strict and a bare expression is not a query. An INSERT without data inserts 0 rows
    // on a server; libchdb refuses it (NO_DATA_TO_INSERT) unless told otherwise.
    for (const char* set :
         {"SET mutations_sync = 0", "SET async_insert = 0", "SET date_time_input_format = 'basic'",
          "SET implicit_select = 0", "SET throw_if_no_data_to_insert = 0"}) {
      Outcome o = run(set, "TabSeparated");
      if (!o.ok) {
        std::fprintf(stderr, "chdb_adapter: %s failed: %s\n", set, o.body.c_str());
        std::exit(2);
      }
    }
  }

  ~Engine() { api_.close_conn(conn_); }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Query parameters ({name:Type} placeholders, the URL's param_<name>) are bound by the
  // engine, as a server binds them.
  using Params = std::vector<std::pair<std::string, std::string>>;
  Outcome run(const std::string& sql, const std::string& format, const Params& params = {}) {
    Outcome o;
    chdb_result* r = nullptr;
    if (params.empty()) {
      r = api_.query_n(*conn_, sql.data(), sql.size(), format.data(), format.size());
    } else {
      std::vector<const char*> names, values;
      std::vector<size_t> name_lens, value_lens;
      for (const auto& [n, v] : params) {
        names.push_back(n.data());
        name_lens.push_back(n.size());
        values.push_back(v.data());
        value_lens.push_back(v.size());
      }
      r = api_.query_with_params_n(*conn_, sql.data(), sql.size(), format.data(), format.size(),
                                   names.data(), name_lens.data(), values.data(), value_lens.data(),
                                   params.size());
    }
    if (!r) {
      o.ok = false;
      o.body = "chdb_query_n returned no result";
      return o;
    }
    if (const char* err = api_.error(r); err && *err) {
      o.ok = false;
      o.body = err;
      o.code = parse_code(o.body);
    } else {
      const char* buf = api_.buffer(r);
      if (buf) o.body.assign(buf, api_.length(r));
      o.read_rows = api_.rows_read(r);
      o.read_bytes = api_.bytes_read(r);
      o.written_rows = api_.rows_written(r);
      o.written_bytes = api_.bytes_written(r);
    }
    api_.destroy(r);
    return o;
  }

  // The session's current value of a setting, read once: what a per-request setting is
  // put back to afterwards (the session is shared by every request, a server's is not).
  bool baseline(const std::string& name, std::string& value) {
    if (auto it = baselines_.find(name); it != baselines_.end()) {
      value = it->second;
      return true;
    }
    Outcome o = run("SELECT value FROM system.settings WHERE name = " + quote(name), "RawBLOB");
    if (!o.ok || o.body.empty()) return false;  // unknown name: SET reports it
    value = o.body;
    baselines_[name] = value;
    return true;
  }

  // A string literal, or with '`' an identifier (a database name of any spelling).
  static std::string quote(const std::string& s, char q = '\'') {
    std::string out(1, q);
    for (char c : s) {
      if (c == q || c == '\\') out += '\\';
      out += c;
    }
    return out + q;
  }

 private:
  Chdb api_;
  chdb_connection* conn_ = nullptr;
  std::map<std::string, std::string> baselines_;
};

// URL parameters of the HTTP interface that are not settings.
const std::set<std::string> kNotSettings = {
    "query",           "database",          "default_format", "user",
    "password",        "quota_key",         "query_id",       "session_id",
    "session_timeout", "session_check",     "compress",       "decompress",
    "buffer_size",     "wait_end_of_query", "stacktrace",     "role"};

// clickhouse-server's HTTP status for an exception code: the mapping of its HTTPHandler,
// with the numbers checked against this libchdb's system.errors. Any other code is 500.
struct CodeStatus {
  int code;
  int status;
  const char* name;
};
constexpr CodeStatus kStatusByCode[] = {
    {194, 401, "REQUIRED_PASSWORD"},
    {192, 403, "UNKNOWN_USER"},
    {193, 403, "WRONG_PASSWORD"},
    {516, 403, "AUTHENTICATION_FAILED"},
    {512, 403, "SET_NON_GRANTED_ROLE"},
    {36, 400, "BAD_ARGUMENTS"},
    {427, 400, "CANNOT_COMPILE_REGEXP"},
    {6, 400, "CANNOT_PARSE_TEXT"},
    {25, 400, "CANNOT_PARSE_ESCAPE_SEQUENCE"},
    {26, 400, "CANNOT_PARSE_QUOTED_STRING"},
    {38, 400, "CANNOT_PARSE_DATE"},
    {41, 400, "CANNOT_PARSE_DATETIME"},
    {72, 400, "CANNOT_PARSE_NUMBER"},
    {441, 400, "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING"},
    {675, 400, "CANNOT_PARSE_IPV4"},
    {676, 400, "CANNOT_PARSE_IPV6"},
    {27, 400, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"},
    {376, 400, "CANNOT_PARSE_UUID"},
    {15, 400, "DUPLICATE_COLUMN"},
    {44, 400, "ILLEGAL_COLUMN"},
    {37, 400, "UNKNOWN_ELEMENT_IN_AST"},
    {123, 400, "UNKNOWN_TYPE_OF_AST_NODE"},
    {8, 400, "THERE_IS_NO_COLUMN"},
    {167, 400, "TOO_DEEP_AST"},
    {168, 400, "TOO_BIG_AST"},
    {223, 400, "UNEXPECTED_AST_STRUCTURE"},
    {62, 400, "SYNTAX_ERROR"},
    {117, 400, "INCORRECT_DATA"},
    {53, 400, "TYPE_MISMATCH"},
    {321, 400, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"},
    {60, 404, "UNKNOWN_TABLE"},
    {46, 404, "UNKNOWN_FUNCTION"},
    {47, 404, "UNKNOWN_IDENTIFIER"},
    {50, 404, "UNKNOWN_TYPE"},
    {56, 404, "UNKNOWN_STORAGE"},
    {81, 404, "UNKNOWN_DATABASE"},
    {115, 404, "UNKNOWN_SETTING"},
    {152, 404, "UNKNOWN_DIRECTION_OF_SORTING"},
    {63, 404, "UNKNOWN_AGGREGATE_FUNCTION"},
    {73, 404, "UNKNOWN_FORMAT"},
    {336, 404, "UNKNOWN_DATABASE_ENGINE"},
    {78, 404, "UNKNOWN_TYPE_OF_QUERY"},
    {511, 404, "UNKNOWN_ROLE"},
    {229, 413, "QUERY_IS_TOO_LARGE"},
    {48, 501, "NOT_IMPLEMENTED"},
    {209, 503, "SOCKET_TIMEOUT"},
    {76, 503, "CANNOT_OPEN_FILE"},
    {439, 503, "CANNOT_SCHEDULE_TASK"},
    {381, 411, "HTTP_LENGTH_REQUIRED"},
    {159, 408, "TIMEOUT_EXCEEDED"},
};

int http_status(int code) {
  for (const auto& cs : kStatusByCode)
    if (cs.code == code) return cs.status;
  return 500;
}

std::string param(const httplib::Params& params, const std::string& name) {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

// cpp-httplib gzips a text/* answer whenever the client accepts gzip; a server compresses
// only with enable_http_compression=1, so the answer is bytes otherwise.
const char* content_type(const httplib::Params& params) {
  return param(params, "enable_http_compression") == "1" ? "text/plain; charset=UTF-8"
                                                         : "application/octet-stream";
}

void reply_error(httplib::Response& res, const Outcome& o, const httplib::Params& params) {
  res.status = o.code ? http_status(o.code) : 500;
  if (o.code) res.set_header("X-ClickHouse-Exception-Code", std::to_string(o.code));
  std::string body = o.body;
  if (body.empty() || body.back() != '\n') body += '\n';
  res.set_content(body, content_type(params));
}

}  // namespace

int main(int argc, char** argv) {
  std::string lib, path, host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--lib")
      lib = argv[i + 1];
    else if (k == "--path")
      path = argv[i + 1];
    else if (k == "--port")
      port = std::atoi(argv[i + 1]);
  }
  if (lib.empty() || path.empty() || port <= 0) {
    std::fprintf(stderr, "usage: %s --lib PATH/libchdb.so --path DATA_DIR --port N\n", argv[0]);
    return 2;
  }
  Engine engine(lib, path);
  std::mutex mu;
  httplib::Server svr;

  auto handle = [&](const httplib::Request& req, const std::string& body, httplib::Response& res) {
    // The statement is the `query` parameter, then a newline, then the body (the INSERT's
    // data, or the whole statement when there is no parameter), as a server reads it.
    const auto& params = req.params;
    std::string sql = param(params, "query");
    if (!sql.empty() && !body.empty()) sql += '\n';
    sql += body;
    if (sql.empty()) {
      reply_error(res, Outcome{false, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", 62},
                  params);
      return;
    }
    std::string format =
        params.count("default_format") ? param(params, "default_format") : "TabSeparated";
    std::lock_guard<std::mutex> lock(mu);
    // Per-request settings and database go onto the shared session and are put back
    // afterwards, so one request never leaks into the next.
    std::vector<std::pair<std::string, std::string>> restore;
    auto put_back = [&] {
      for (auto it = restore.rbegin(); it != restore.rend(); ++it) {
        Outcome o =
            engine.run("SET " + it->first + " = " + Engine::quote(it->second), "TabSeparated");
        if (!o.ok)
          std::fprintf(stderr, "chdb_adapter: cannot put %s back to %s: %s\n", it->first.c_str(),
                       it->second.c_str(), o.body.c_str());
      }
    };
    Engine::Params query_params;
    for (const auto& [name, value] : params) {
      if (name.rfind("param_", 0) == 0) {
        query_params.emplace_back(name.substr(6), value);
        continue;
      }
      if (kNotSettings.count(name)) continue;
      std::string before;
      bool known = engine.baseline(name, before);
      Outcome o = engine.run("SET " + name + " = " + Engine::quote(value), "TabSeparated");
      if (!o.ok) {
        put_back();
        reply_error(res, o, params);
        return;
      }
      if (known) restore.emplace_back(name, before);
    }
    bool used_db = false;
    if (params.count("database")) {
      Outcome o =
          engine.run("USE " + Engine::quote(param(params, "database"), '`'), "TabSeparated");
      if (!o.ok) {
        put_back();
        reply_error(res, o, params);
        return;
      }
      used_db = true;
    }
    Outcome o = engine.run(sql, format, query_params);
    if (used_db) engine.run("USE default", "TabSeparated");
    put_back();
    if (!o.ok) {
      reply_error(res, o, params);
      return;
    }
    res.status = 200;
    res.set_header("X-ClickHouse-Summary",
                   "{\"read_rows\":\"" + std::to_string(o.read_rows) + "\",\"read_bytes\":\"" +
                       std::to_string(o.read_bytes) + "\",\"written_rows\":\"" +
                       std::to_string(o.written_rows) + "\",\"written_bytes\":\"" +
                       std::to_string(o.written_bytes) + "\"}");
    res.set_content(o.body, content_type(params));
  };
  svr.Get("/ping", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Ok.\n", "text/plain; charset=UTF-8");
  });
  svr.Get("/", [&](const httplib::Request& req, httplib::Response& res) { handle(req, "", res); });
  // The body through a content reader: httplib then leaves it alone (it parses a body sent
  // as application/x-www-form-urlencoded, curl's default, into parameters and refuses one
  // over 8 KiB), while still undoing chunking and Content-Encoding: gzip.
  svr.Post("/", [&](const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& read) {
    std::string body;
    read([&](const char* data, size_t len) {
      body.append(data, len);
      return true;
    });
    handle(req, body, res);
  });
  std::fprintf(stderr, "chdb_adapter: listening on http://%s:%d (data %s)\n", host.c_str(), port,
               path.c_str());
  if (!svr.listen(host.c_str(), port)) {
    std::fprintf(stderr, "chdb_adapter: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  return 0;
}
