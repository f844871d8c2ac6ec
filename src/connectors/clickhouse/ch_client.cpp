#include "connectors/clickhouse/ch_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>

#include "core/connector/timeouts.hpp"

namespace dpone::ch {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// The message of a ClickHouse exception body: "Code: 60, e.displayText() = DB::Exception:
// Table default.x doesn't exist., e.what() = DB::Exception" -> the part after "= ".
std::string server_message(const std::string& body) {
  std::string text = body;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto pos = text.find("e.displayText() = ");
  if (pos != std::string::npos) {
    std::string code = text.substr(0, text.find(','));
    text = text.substr(pos + 18);
    auto tail = text.rfind(", e.what() = ");
    if (tail != std::string::npos) text = text.substr(0, tail);
    text = code + ": " + text;
  }
  if (text.size() > 600) text = text.substr(0, 600) + "...";
  return text;
}

struct CurlHeaders {
  curl_slist* list = nullptr;
  ~CurlHeaders() { curl_slist_free_all(list); }
  void add(const char* h) { list = curl_slist_append(list, h); }
};

}  // namespace

Endpoint endpoint_from(const ResolvedConnection& connection, const std::string& where) {
  Endpoint ep;
  ep.where = where;
  if (auto url = connection.get("url")) {
    ep.url = *url;
  } else {
    std::string host = connection.get("host").value_or("127.0.0.1");
    std::string port = connection.get("port").value_or("8123");
    ep.url = fmt::format("http://{}:{}", host, port);
  }
  while (!ep.url.empty() && ep.url.back() == '/') ep.url.pop_back();
  if (ep.url.rfind("http://", 0) != 0 && ep.url.rfind("https://", 0) != 0) {
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("{}: connection '{}': url '{}' is not an http:// or https:// URL",
                            where, connection.id, ep.url),
                "give the HTTP interface of the server, e.g. http://127.0.0.1:8123");
  }
  if (ep.url.find('?') != std::string::npos) {
    throw Error(
        ErrorCode::ConfigBadValue,
        fmt::format("{}: connection '{}': url must not carry a query string", where, connection.id),
        "set user, password and database as connection fields");
  }
  ep.user = connection.get("user").value_or("");
  if (const Secret* s = connection.secret("password")) ep.password = *s;
  // A password alone is the password of the server's default user.
  if (ep.user.empty() && !ep.password.empty()) ep.user = "default";
  ep.database = connection.get("database").value_or("");
  ep.connect_timeout = connection_timeout(connection, "connect_timeout", ep.connect_timeout, where);
  ep.receive_timeout = connection_timeout(connection, "receive_timeout", ep.receive_timeout, where);
  ep.statement_timeout =
      connection_timeout(connection, "statement_timeout", ep.statement_timeout, where);
  return ep;
}

std::string Endpoint::host_port() const {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  return url.substr(start, url.find('/', start) - start);
}

Client::Client(Endpoint endpoint, ErrorCode unavailable_code)
    : endpoint_(std::move(endpoint)),
      unavailable_code_(unavailable_code),
      failure_code_(unavailable_code) {
  global_init();
  curl_ = curl_easy_init();
  if (!curl_) throw Error(ErrorCode::Internal, "curl_easy_init failed");
}

Client::~Client() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string Client::url_for(const std::string& query_param, const Settings& settings) const {
  std::string url = endpoint_.url + "/?";
  auto add = [&](const std::string& k, const std::string& v) {
    char* esc = curl_easy_escape(nullptr, v.data(), static_cast<int>(v.size()));
    url += k + "=" + esc + "&";
    curl_free(esc);
  };
  if (!endpoint_.database.empty()) add("database", endpoint_.database);
  if (endpoint_.statement_timeout > 0 && settings.count("max_execution_time") == 0)
    add("max_execution_time",
        std::to_string(static_cast<long>(std::ceil(endpoint_.statement_timeout))));
  for (const auto& [k, v] : settings) add(k, v);
  if (!query_param.empty()) add("query", query_param);
  url.pop_back();
  return url;
}

void Client::fail_http(long status, const std::string& body, const std::string& sql) const {
  std::string msg = server_message(body);
  ErrorCode code = failure_code_;
  std::string hint = "see the ClickHouse server log for details";
  if (status == 401 || status == 403 || msg.find("Code: 516") != std::string::npos ||
      msg.find("Code: 192") != std::string::npos || msg.find("Code: 193") != std::string::npos ||
      msg.find("Code: 195") != std::string::npos) {
    code = unavailable_code_;
    hint = "check the connection's user and password";
  }
  // Code 159: TIMEOUT_EXCEEDED, the server's max_execution_time (statement_timeout).
  if (msg.find("Code: 159") != std::string::npos && endpoint_.statement_timeout > 0) {
    throw timed_out(endpoint_.where, endpoint_.host_port(), "statement `" + shorten_sql(sql) + "`",
                    endpoint_.statement_timeout, connection_field("statement_timeout"), msg);
  }
  throw Error(code,
              fmt::format("{}: ClickHouse at {} answered HTTP {}: {} (statement: {})",
                          endpoint_.where, endpoint_.url, status, msg, shorten_sql(sql)),
              hint);
}

void Client::fail_transport(const std::string& curl_error, const std::string& sql) const {
  throw Error(unavailable_code_,
              fmt::format("{}: cannot reach ClickHouse at {}: {} (statement: {})", endpoint_.where,
                          endpoint_.url, curl_error, shorten_sql(sql)),
              "check that the server runs and the connection url (HTTP port, usually 8123)");
}

void Client::fail_transfer(void* easy, int curl_code, bool stalled, const std::string& phase,
                           const std::string& curl_error, const std::string& sql) const {
  auto rc = static_cast<CURLcode>(curl_code);
  std::string statement = " `" + shorten_sql(sql) + "`";
  if (stalled) {
    throw timed_out(endpoint_.where, endpoint_.host_port(), phase + statement,
                    endpoint_.receive_timeout, connection_field("receive_timeout"),
                    "no answer to the statement, nor to /ping on a second connection");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    curl_off_t connected = 0;
    curl_easy_getinfo(static_cast<CURL*>(easy), CURLINFO_CONNECT_TIME_T, &connected);
    if (connected == 0) {
      throw timed_out(endpoint_.where, endpoint_.host_port(), "TCP connect",
                      endpoint_.connect_timeout, connection_field("connect_timeout"), curl_error);
    }
  }
  fail_transport(curl_error, sql);
}

namespace {

// Ends a transfer when the server has gone silent. ClickHouse (18.16 at least) sends
// nothing at all, not even headers, until a statement is done, so a long INSERT ...
// SELECT and a server that accepts TCP and never answers look alike on the transfer
// itself. So after half of receive_timeout without a byte moving, the watchdog asks the
// server's /ping on a second connection (bounded by the other half): an answer means the
// server is alive and working, and the wait goes on; no answer means it is silent, and
// the transfer ends (TIMED_OUT after about receive_timeout). "Moving" counts bytes from
// the server and every return of our own upload callback, so time a slow source takes to
// produce the next rows is never blamed on the server.
struct Watchdog {
  double limit = 0;
  double connect_timeout = 0;
  std::string ping_url;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  curl_off_t seen = -1;
  bool fired = false;
  void touch() { last = std::chrono::steady_clock::now(); }

  // True when /ping answers 200 within limit / 2.
  bool server_answers() const {
    CURL* c = curl_easy_init();
    if (!c) return true;  // cannot probe: do not blame the server
    std::string body;
    curl_easy_setopt(c, CURLOPT_URL, ping_url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (connect_timeout > 0)
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout * 1000));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, std::max(1L, static_cast<long>(limit * 500)));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return rc == CURLE_OK && status == 200;
  }
};

int watchdog_cb(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                curl_off_t ulnow) {
  (void)dltotal;
  (void)ultotal;
  auto* w = static_cast<Watchdog*>(user);
  if (dlnow + ulnow != w->seen) {
    w->seen = dlnow + ulnow;
    w->touch();
    return 0;
  }
  std::chrono::duration<double> idle = std::chrono::steady_clock::now() - w->last;
  if (w->limit <= 0 || idle.count() < w->limit / 2) return 0;
  if (w->server_answers()) {
    w->touch();
    return 0;
  }
  w->fired = true;
  return 1;  // aborts the transfer with CURLE_ABORTED_BY_CALLBACK
}

size_t watchdog_header_cb(char* data, size_t size, size_t n, void* user) {
  (void)data;
  static_cast<Watchdog*>(user)->touch();
  return size * n;
}

void setup_common(CURL* c, const Endpoint& ep, const std::string& url, CurlHeaders& headers,
                  char* errbuf, Watchdog& watchdog) {
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(ep.connect_timeout * 1000));
  watchdog.limit = ep.receive_timeout;
  watchdog.connect_timeout = ep.connect_timeout;
  watchdog.ping_url = ep.url + "/ping";
  watchdog.touch();
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watchdog_cb);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &watchdog);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, watchdog_header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &watchdog);
  if (!ep.user.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, ep.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, ep.password.reveal().c_str());
  }
  headers.add("Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.list);
}

}  // namespace

std::string Client::exec(const std::string& sql, const Settings& settings) {
  CURL* c = static_cast<CURL*>(curl_);
  char errbuf[CURL_ERROR_SIZE] = {0};
  CurlHeaders headers;
  std::string url = url_for("", settings);
  Watchdog watchdog;
  setup_common(c, endpoint_, url, headers, errbuf, watchdog);
  std::string body;
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, sql.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(sql.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    fail_transfer(c, rc, watchdog.fired, "HTTP request",
                  errbuf[0] ? errbuf : curl_easy_strerror(rc), sql);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) fail_http(status, body, sql);
  return body;
}

Rows Client::rows(const std::string& sql, const Settings& settings, bool with_names) {
  std::string body =
      exec(sql + (with_names ? " FORMAT TabSeparatedWithNames" : " FORMAT TabSeparated"), settings);
  Rows out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::vector<std::string> row;
    size_t start = pos;
    for (size_t i = pos; i <= end; ++i) {
      if (i == end || body[i] == '\t') {
        std::string_view f(body.data() + start, i - start);
        row.push_back(f == "\\N" ? std::string("\\N") : tsv_unescape(f));
        start = i + 1;
      }
    }
    out.push_back(std::move(row));
    pos = end + 1;
  }
  return out;
}

std::optional<std::string> Client::value(const std::string& sql) {
  Rows r = rows(sql);
  if (r.empty() || r[0].empty() || r[0][0] == "\\N") return std::nullopt;
  return r[0][0];
}

int64_t Client::int64(const std::string& sql) {
  auto v = value(sql);
  if (!v) return 0;
  try {
    return std::stoll(*v);
  } catch (const std::exception&) {
    throw Error(failure_code_, fmt::format("{}: expected an integer from '{}', got '{}'",
                                           endpoint_.where, shorten_sql(sql), *v));
  }
}

namespace {

struct UploadState {
  const std::function<size_t(char*, size_t)>* read;
  std::exception_ptr error;
  Watchdog* watchdog;
};

size_t upload_cb(char* buffer, size_t size, size_t n, void* user) {
  auto* st = static_cast<UploadState*>(user);
  try {
    size_t got = (*st->read)(buffer, size * n);
    st->watchdog->touch();  // the wait was on our source, not on the server
    return got;
  } catch (...) {
    st->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

}  // namespace

void Client::insert(const std::string& insert_sql, const std::function<size_t(char*, size_t)>& read,
                    const Settings& settings) {
  CURL* c = static_cast<CURL*>(curl_);
  char errbuf[CURL_ERROR_SIZE] = {0};
  CurlHeaders headers;
  headers.add("Transfer-Encoding: chunked");
  std::string url = url_for(insert_sql, settings);
  Watchdog watchdog;
  setup_common(c, endpoint_, url, headers, errbuf, watchdog);
  UploadState st{&read, nullptr, &watchdog};
  std::string body;
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_cb);
  curl_easy_setopt(c, CURLOPT_READDATA, &st);
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(c);
  if (st.error) std::rethrow_exception(st.error);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  std::string curl_error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (rc != CURLE_OK && status == 0)
    fail_transfer(c, rc, watchdog.fired, "INSERT (HTTP request)", curl_error, insert_sql);
  if (status != 200) fail_http(status, body, insert_sql);
  if (rc != CURLE_OK)
    fail_transfer(c, rc, watchdog.fired, "INSERT (HTTP request)", curl_error, insert_sql);
}

// Pull-based response body: curl_multi drives the transfer only while the caller wants
// bytes, so at most one network read (~16 KiB) waits in `pending_`.
class SelectReader : public ByteReader {
 public:
  SelectReader(const Client& client, std::string sql, std::string url)
      : client_(client), sql_(std::move(sql)), url_(std::move(url)) {
    easy_ = curl_easy_init();
    multi_ = curl_multi_init();
    if (!easy_ || !multi_) throw Error(ErrorCode::Internal, "curl init failed");
    setup_common(easy_, client_.endpoint_, url_, headers_, errbuf_, watchdog_);
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, sql_.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(sql_.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &SelectReader::on_data);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_multi_add_handle(multi_, easy_);
  }
  ~SelectReader() override {
    curl_multi_remove_handle(multi_, easy_);
    curl_easy_cleanup(easy_);
    curl_multi_cleanup(multi_);
  }

  size_t read(char* buffer, size_t size) override {
    // Time our consumer spent between reads is not the server's silence.
    if (offset_ >= pending_.size() && !done_) watchdog_.touch();
    while (offset_ >= pending_.size() && !done_) {
      pending_.clear();
      offset_ = 0;
      pump();
    }
    size_t n = std::min(size, pending_.size() - offset_);
    std::memcpy(buffer, pending_.data() + offset_, n);
    offset_ += n;
    return n;
  }

 private:
  static size_t on_data(char* data, size_t size, size_t n, void* user) {
    auto* self = static_cast<SelectReader*>(user);
    self->pending_.append(data, size * n);
    return size * n;
  }

  void pump() {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi_, &running);
    if (mc != CURLM_OK) client_.fail_transport(curl_multi_strerror(mc), sql_);
    if (running == 0) {
      finish();
      return;
    }
    if (pending_.empty()) curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
  }

  void finish() {
    done_ = true;
    int left = 0;
    CURLcode rc = CURLE_OK;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg == CURLMSG_DONE) rc = m->data.result;
    }
    long status = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 0) client_.fail_http(status, pending_, sql_);
    if (rc != CURLE_OK)
      client_.fail_transfer(easy_, rc, watchdog_.fired, "SELECT (HTTP response stream)",
                            errbuf_[0] ? errbuf_ : curl_easy_strerror(rc), sql_);
  }

  const Client& client_;
  std::string sql_;
  std::string url_;
  CURL* easy_ = nullptr;
  CURLM* multi_ = nullptr;
  CurlHeaders headers_;
  Watchdog watchdog_;
  char errbuf_[CURL_ERROR_SIZE] = {0};
  std::string pending_;
  size_t offset_ = 0;
  bool done_ = false;
};

std::unique_ptr<ByteReader> Client::select_stream(const std::string& sql,
                                                  const Settings& settings) {
  return std::make_unique<SelectReader>(*this, sql, url_for("", settings));
}

const std::string& Client::version() {
  if (version_.empty()) version_ = value("SELECT version()").value_or("?");
  return version_;
}

std::pair<int, int> Client::version_number() {
  const std::string& v = version();
  int major = 0, minor = 0;
  if (std::sscanf(v.c_str(), "%d.%d", &major, &minor) < 1) return {0, 0};
  return {major, minor};
}

std::string shorten_sql(const std::string& sql) {
  constexpr size_t kMax = 200;
  std::string s = sql.substr(0, kMax);
  for (auto& ch : s)
    if (ch == '\n') ch = ' ';
  if (sql.size() > kMax) s += "...";
  return s;
}

std::string quote_literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string quote_ident(const std::string& name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

std::string tsv_unescape(std::string_view f) {
  std::string out;
  out.reserve(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c != '\\' || i + 1 >= f.size()) {
      out.push_back(c);
      continue;
    }
    char e = f[++i];
    switch (e) {
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '0':
        out.push_back('\0');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'v':
        out.push_back('\v');
        break;
      default:
        out.push_back(e);
        break;  // \\ \' and anything else: the character itself
    }
  }
  return out;
}

void tsv_escape_append(std::string& out, std::string_view value) {
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char* rep = nullptr;
    switch (value[i]) {
      case '\\':
        rep = "\\\\";
        break;
      case '\t':
        rep = "\\t";
        break;
      case '\n':
        rep = "\\n";
        break;
      case '\r':
        rep = "\\r";
        break;
      case '\0':
        rep = "\\0";
        break;
      default:
        continue;
    }
    out.append(value.data() + start, i - start);
    out.append(rep);
    start = i + 1;
  }
  out.append(value.data() + start, value.size() - start);
}

}  // namespace dpone::ch
