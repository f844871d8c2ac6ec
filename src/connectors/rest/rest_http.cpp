// HTTP for the rest source: libcurl GET with retries and a rate limit, and URL helpers.
// Secrets: the real URL and headers only ever reach libcurl; every message is built from
// the caller's display URL and passes through redact() as well.
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "connectors/rest/rest_connector.hpp"
#include "core/connector/timeouts.hpp"
#include "core/errors.hpp"
#include "core/util/redactor.hpp"

namespace dpone::rest {

namespace {

// "host:port" of an http(s) URL (the scheme's port when none is given), for messages.
std::string url_host_port(const std::string& url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
  authority = authority.substr(authority.find('@') + 1);  // no userinfo (npos + 1 = 0)
  if (authority.find(':') != std::string::npos && authority.back() != ']') return authority;
  return authority + (url.rfind("https://", 0) == 0 ? ":443" : ":80");
}

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// A short, single-line, redacted excerpt of a response body for error messages.
std::string excerpt(const std::string& body) {
  std::string out;
  for (char c : body.substr(0, 200)) out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  if (body.size() > 200) out += "...";
  return redact(out);
}

bool retryable_status(long status) {
  return status == 408 || status == 429 || status >= 500;
}

bool retryable_curl(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_NOT_BUILT_IN:
      return false;
    default:
      return true;
  }
}

std::string status_hint(long status) {
  if (status == 401 || status == 403)
    return "check the connection's credentials (auth, token, username/password, api_key); "
           "nothing was loaded and the state is unchanged";
  if (status == 404)
    return "check base_url and path; nothing was loaded and the state is unchanged";
  if (retryable_status(status))
    return "the API kept failing; nothing was loaded and the state is unchanged: re-run later, "
           "or raise `retries` / `backoff_max_s`";
  return "the API refused the request; nothing was loaded and the state is unchanged";
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
  std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();  // a new response (after a redirect or 100-continue)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    headers->emplace_back(lower(trim(line.substr(0, colon))),
                          std::string(trim(line.substr(colon + 1))));
  }
  return size * count;
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------------ HttpResponse

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  std::string n = lower(name);
  for (const auto& [k, v] : headers)
    if (k == n) return v;
  return std::nullopt;
}

std::vector<std::string> HttpResponse::headers_named(std::string_view name) const {
  std::string n = lower(name);
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (k == n) out.push_back(v);
  return out;
}

// -------------------------------------------------------------------------- HttpClient

struct HttpClient::Handle {
  struct Deleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, Deleter> curl;
  char error[CURL_ERROR_SIZE] = {0};
};

HttpClient::HttpClient(HttpOptions options)
    : handle_(std::make_unique<Handle>()), options_(options), rng_(std::random_device{}()) {
  global_init();
  handle_->curl.reset(curl_easy_init());
  if (!handle_->curl) throw Error(ErrorCode::Internal, "rest source: curl_easy_init failed");
  sleep_ = [](double seconds) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  };
}

HttpClient::~HttpClient() = default;

void HttpClient::throttle() {
  if (options_.rate_limit <= 0) return;
  double interval = 1.0 / options_.rate_limit;
  double now = now_s();
  if (last_request_at_ >= 0 && now - last_request_at_ < interval) {
    sleep_(interval - (now - last_request_at_));
  }
  last_request_at_ = now_s();
}

HttpResponse HttpClient::get(const std::string& url, const std::vector<std::string>& headers,
                             const RequestContext& ctx) {
  CURL* c = handle_->curl.get();
  std::unique_ptr<curl_slist, SlistDeleter> list;
  for (const auto& h : headers) {
    curl_slist* next = curl_slist_append(list.get(), h.c_str());
    if (!next) throw Error(ErrorCode::Internal, "rest source: out of memory building headers");
    (void)list.release();
    list.reset(next);
  }
  const int attempts = std::max(0, options_.retry.retries) + 1;
  const double first_attempt_at = now_s();
  for (int attempt = 1;; ++attempt) {
    HttpResponse response;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dpone-rest/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);
    handle_->error[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, handle_->error);

    throttle();
    ++requests_;
    CURLcode rc = curl_easy_perform(c);
    double delay = 0;
    std::string failure;
    bool retry = false;
    if (rc != CURLE_OK) {
      failure = handle_->error[0] ? handle_->error : curl_easy_strerror(rc);
      bool timed = rc == CURLE_OPERATION_TIMEDOUT;
      if (timed && (attempt >= attempts || now_s() - first_attempt_at + options_.timeout_s >
                                               options_.timeout_retry_budget_s)) {
        curl_off_t connected = 0;
        curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connected);
        bool connecting = connected == 0;
        std::string phase = fmt::format("{} (GET {}, page {}, attempt {})",
                                        connecting ? "TCP connect" : "HTTP request",
                                        redact(ctx.display_url), ctx.page, attempt);
        Error e = timed_out(ctx.where, url_host_port(url), phase,
                            connecting ? options_.connect_timeout_s : options_.timeout_s,
                            connecting ? options_.connect_timeout_from : options_.timeout_from,
                            redact(failure));
        throw e;
      }
      if (!retryable_curl(rc) || attempt >= attempts) {
        throw Error(ErrorCode::SourceUnavailable,
                    redact(fmt::format("{}: GET {} (page {}) failed after {} attempt{}: {}",
                                       ctx.where, ctx.display_url, ctx.page, attempt,
                                       attempt == 1 ? "" : "s", failure)),
                    rc == CURLE_OPERATION_TIMEDOUT
                        ? "the API did not answer within timeout_s; raise `timeout_s` or re-run "
                          "later; nothing was loaded and the state is unchanged"
                        : "check base_url, the network and TLS settings; nothing was loaded and "
                          "the state is unchanged");
      }
      retry = true;
    } else {
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
      if (response.status >= 200 && response.status < 300) return response;
      retry = retryable_status(response.status);
      if (!retry || attempt >= attempts) {
        throw Error(ErrorCode::SourceReadFailed,
                    redact(fmt::format(
                        "{}: GET {} (page {}) failed with HTTP status {}{}: {}", ctx.where,
                        ctx.display_url, ctx.page, response.status,
                        attempt > 1 ? fmt::format(" after {} attempts", attempt) : std::string(),
                        excerpt(response.body))),
                    status_hint(response.status));
      }
      if (response.status == 429 || response.status == 503) {
        if (auto ra = response.header("retry-after")) {
          if (auto seconds = parse_retry_after(*ra, std::time(nullptr))) {
            if (*seconds > options_.retry.retry_after_max_s) {
              throw Error(ErrorCode::SourceReadFailed,
                          redact(fmt::format("{}: GET {} (page {}): HTTP status {} asks to retry "
                                             "after {:.0f} s, more than retry_after_max_s ({:.0f})",
                                             ctx.where, ctx.display_url, ctx.page, response.status,
                                             *seconds, options_.retry.retry_after_max_s)),
                          "re-run later, or raise `retry_after_max_s`; nothing was loaded and "
                          "the state is unchanged");
            }
            delay = *seconds;
          }
        }
      }
    }
    if (retry) {
      if (delay <= 0) delay = backoff_delay(options_.retry, attempt, rng_);
      ++retries_;
      sleep_(delay);
    }
  }
}

// ------------------------------------------------------------------------------ helpers

std::optional<double> parse_retry_after(std::string_view value, std::time_t now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (value.size() > 9) return std::nullopt;
    return std::stod(std::string(value));
  }
  std::tm tm{};
  std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  std::time_t at = timegm(&tm);
  return std::max(0.0, static_cast<double>(at - now));
}

double backoff_delay(const RetryPolicy& policy, int attempt, std::mt19937_64& rng) {
  double base = policy.backoff_initial_s;
  for (int i = 1; i < attempt && base < policy.backoff_max_s; ++i) base *= 2;
  base = std::min(base, policy.backoff_max_s);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return base * jitter(rng);
}

std::optional<std::string> link_next(std::string_view header) {
  size_t i = 0;
  while (i < header.size()) {
    size_t open = header.find('<', i);
    if (open == std::string_view::npos) return std::nullopt;
    size_t close = header.find('>', open);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view target = header.substr(open + 1, close - open - 1);
    // Parameters run to the next ',' that is outside quotes.
    size_t j = close + 1;
    bool quoted = false;
    while (j < header.size() && (quoted || header[j] != ',')) {
      if (header[j] == '"') quoted = !quoted;
      ++j;
    }
    std::string_view params = header.substr(close + 1, j - close - 1);
    size_t p = 0;
    while (p < params.size()) {
      size_t semi = params.find(';', p);
      std::string_view param = trim(
          params.substr(p, semi == std::string_view::npos ? std::string_view::npos : semi - p));
      p = semi == std::string_view::npos ? params.size() : semi + 1;
      auto eq = param.find('=');
      if (eq == std::string_view::npos || lower(trim(param.substr(0, eq))) != "rel") continue;
      std::string_view v = trim(param.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      std::string rels = lower(v);
      size_t k = 0;
      while (k < rels.size()) {
        size_t sp = rels.find(' ', k);
        if (rels.substr(k, sp == std::string::npos ? std::string::npos : sp - k) == "next")
          return std::string(target);
        k = sp == std::string::npos ? rels.size() : sp + 1;
      }
    }
    i = j + 1;
  }
  return std::nullopt;
}

std::string resolve_url(const std::string& base, const std::string& ref) {
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_URL, ref.c_str(), 0) != CURLUE_OK) {
    return ref;
  }
  char* out = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &out, 0) != CURLUE_OK || out == nullptr) return ref;
  std::string result(out);
  curl_free(out);
  return result;
}

std::string url_encode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string append_query(const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out = url;
  std::string fragment;
  if (auto hash = out.find('#'); hash != std::string::npos) {
    fragment = out.substr(hash);
    out.resize(hash);
  }
  char sep = out.find('?') == std::string::npos ? '?' : '&';
  if (!out.empty() && (out.back() == '?' || out.back() == '&')) sep = '\0';
  for (const auto& [k, v] : params) {
    if (sep) out += sep;
    out += url_encode(k) + "=" + url_encode(v);
    sep = '&';
  }
  return out + fragment;
}

std::optional<std::string> query_param(const std::string& url, const std::string& name) {
  auto q = url.find('?');
  if (q == std::string::npos) return std::nullopt;
  std::string_view query(url);
  query = query.substr(q + 1);
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  size_t i = 0;
  while (i <= query.size()) {
    size_t amp = query.find('&', i);
    std::string_view part =
        query.substr(i, amp == std::string_view::npos ? std::string_view::npos : amp - i);
    auto eq = part.find('=');
    std::string key = url_decode(part.substr(0, eq));
    if (key == name)
      return eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    i = amp + 1;
  }
  return std::nullopt;
}

}  // namespace dpone::rest
