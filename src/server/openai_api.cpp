#include "server/openai_api.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "common/error.h"

namespace minnow::server {

using nlohmann::json;

json error_body(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return json{{"error", err}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_json_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "request body is not valid JSON", "invalid_request_error", "", "invalid_json");
  if (!j.is_object()) throw ApiError(400, "request body must be a JSON object");
  return j;
}

namespace {

ApiError bad(const std::string& param, const std::string& msg, const std::string& code = "invalid_value") {
  return ApiError(400, msg, "invalid_request_error", param, code);
}

bool present(const json& b, const char* key) { return b.contains(key) && !b.at(key).is_null(); }

int64_t get_int(const json& b, const char* key, int64_t lo, int64_t hi) {
  const json& v = b.at(key);
  if (!v.is_number_integer())
    throw bad(key, std::string("'") + key + "' must be an integer", "invalid_type");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw bad(key, std::string("'") + key + "' is out of range");
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw bad(key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                       ", got " + std::to_string(x));
  return x;
}

double get_num(const json& b, const char* key, double lo, double hi) {
  const json& v = b.at(key);
  if (!v.is_number()) throw bad(key, std::string("'") + key + "' must be a number", "invalid_type");
  double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return x;
}

bool get_bool(const json& b, const char* key) {
  const json& v = b.at(key);
  if (!v.is_boolean()) throw bad(key, std::string("'") + key + "' must be a boolean", "invalid_type");
  return v.get<bool>();
}

// Fields shared by both endpoints: sampling, stop, stream, n, max tokens.
void parse_common(const json& b, ParsedRequest& r, int n_ctx, int default_max_tokens) {
  if (present(b, "model") && !b.at("model").is_string()) throw bad("model", "'model' must be a string", "invalid_type");
  if (present(b, "n") && get_int(b, "n", 1, INT32_MAX) != 1)
    throw bad("n", "only n=1 is supported", "unsupported_value");
  if (present(b, "best_of") && get_int(b, "best_of", 1, INT32_MAX) != 1)
    throw bad("best_of", "only best_of=1 is supported", "unsupported_value");
  auto& s = r.gen.sampling;
  s.temperature = present(b, "temperature") ? get_num(b, "temperature", 0.0, 2.0) : 1.0;
  s.top_p = present(b, "top_p") ? get_num(b, "top_p", 0.0, 1.0) : 1.0;
  if (s.top_p <= 0) throw bad("top_p", "'top_p' must be greater than 0");
  if (present(b, "seed")) {
    const json& v = b.at("seed");
    if (!v.is_number_integer()) throw bad("seed", "'seed' must be an integer", "invalid_type");
    s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  } else {
    std::random_device rd;
    s.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (present(b, "stop")) {
    const json& v = b.at("stop");
    if (v.is_string()) {
      r.gen.stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      if (v.size() > 16) throw bad("stop", "'stop' may hold at most 16 strings");
      for (const auto& x : v) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of strings", "invalid_type");
        r.gen.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of strings", "invalid_type");
    }
    for (const auto& st : r.gen.stop)
      if (st.empty()) throw bad("stop", "stop strings must not be empty");
  }
  if (present(b, "ignore_eos")) r.gen.ignore_eos = get_bool(b, "ignore_eos");
  r.stream = present(b, "stream") ? get_bool(b, "stream") : false;
  if (present(b, "stream_options")) {
    const json& so = b.at("stream_options");
    if (!so.is_object()) throw bad("stream_options", "'stream_options' must be an object", "invalid_type");
    if (!r.stream) throw bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (present(so, "include_usage")) {
      if (!so.at("include_usage").is_boolean())
        throw bad("stream_options.include_usage", "'include_usage' must be a boolean", "invalid_type");
      r.include_usage = so.at("include_usage").get<bool>();
    }
  }
  // Token budget: max_completion_tokens (chat) wins over max_tokens.
  const char* key = nullptr;
  if (r.chat && present(b, "max_completion_tokens")) key = "max_completion_tokens";
  else if (present(b, "max_tokens")) key = "max_tokens";
  int n_prompt = static_cast<int>(r.gen.prompt.size());
  if (key) {
    const json& v = b.at(key);
    if (!v.is_number_integer()) throw bad(key, std::string("'") + key + "' must be an integer", "invalid_type");
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(n_ctx) : v.get<int64_t>() > n_ctx)
      throw bad(key, std::string("'") + key + "' is larger than the context size (" + std::to_string(n_ctx) + ")");
    int64_t x = v.get<int64_t>();
    if (x < 0) throw bad(key, std::string("'") + key + "' must not be negative");
    r.gen.max_tokens = static_cast<int>(x);
  } else {
    r.gen.max_tokens = default_max_tokens > 0 ? default_max_tokens : n_ctx - n_prompt;
  }
  if (r.gen.prompt.empty()) throw bad(r.chat ? "messages" : "prompt", "the prompt is empty", "empty_prompt");
  if (n_prompt >= n_ctx)
    throw bad(r.chat ? "messages" : "prompt",
              "the prompt has " + std::to_string(n_prompt) + " tokens, which does not fit the context size (" +
                  std::to_string(n_ctx) + " positions per request, at least one kept for the reply)",
              "context_length_exceeded");
}

// Refuses, before tokenizing, a prompt text that cannot fit n_ctx tokens whatever its tokenization.
void check_prompt_bytes(const ServerModel& model, size_t bytes, int n_ctx, const char* param) {
  const size_t per_token = model.max_token_bytes();
  if (per_token == 0 || n_ctx <= 0) return;
  const size_t limit = static_cast<size_t>(n_ctx) * per_token;
  if (bytes > limit)
    throw bad(param,
              "the prompt has " + std::to_string(bytes) + " bytes, which cannot fit the context size (" +
                  std::to_string(n_ctx) + " positions of at most " + std::to_string(per_token) + " bytes each)",
              "context_length_exceeded");
}

std::string content_text(const json& c, size_t i) {
  std::string where = "messages[" + std::to_string(i) + "].content";
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string out;
    for (const auto& part : c) {
      if (!part.is_object() || !part.contains("type") || !part.at("type").is_string())
        throw bad(where, "each content part must be an object with a 'type'", "invalid_type");
      if (part.at("type") != "text") throw bad(where, "only 'text' content parts are supported", "unsupported_value");
      if (!part.contains("text") || !part.at("text").is_string())
        throw bad(where, "a text content part needs a string 'text'", "invalid_type");
      out += part.at("text").get<std::string>();
    }
    return out;
  }
  throw bad(where, "'content' must be a string or an array of content parts", "invalid_type");
}

}  // namespace

ParsedRequest parse_chat_request(const json& b, const ServerModel& model, int n_ctx) {
  ParsedRequest r;
  r.chat = true;
  if (!b.contains("messages")) throw bad("messages", "'messages' is required", "missing_field");
  const json& msgs = b.at("messages");
  if (!msgs.is_array()) throw bad("messages", "'messages' must be an array", "invalid_type");
  if (msgs.empty()) throw bad("messages", "'messages' must not be empty");
  json norm = json::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(where, where + " must be an object", "invalid_type");
    if (!m.contains("role") || !m.at("role").is_string())
      throw bad(where + ".role", where + " needs a string 'role'", "missing_field");
    std::string role = m.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool")
      throw bad(where + ".role", "unknown role '" + role + "'");
    if (role == "developer") role = "system";
    if (!m.contains("content") && role != "assistant")
      throw bad(where + ".content", where + " needs 'content'", "missing_field");
    norm.push_back({{"role", role}, {"content", m.contains("content") ? content_text(m.at("content"), i) : ""}});
  }
  if (present(b, "logprobs")) r.logprobs = get_bool(b, "logprobs");
  if (present(b, "top_logprobs")) {
    r.top_logprobs = static_cast<int>(get_int(b, "top_logprobs", 0, 20));
    if (r.top_logprobs > 0 && !r.logprobs) throw bad("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
  }
  // Contents far beyond the byte bound: render the template alone (cheap next to tokenizing) and refuse when
  // the rendered prompt certainly cannot fit. (A template may drop contents, so contents alone decide nothing.)
  size_t content_bytes = 0;
  for (const auto& m : norm) content_bytes += m.at("content").get_ref<const std::string&>().size();
  if (model.max_token_bytes() > 0 && content_bytes > static_cast<size_t>(std::max(n_ctx, 0)) * model.max_token_bytes()) {
    size_t rendered = 0;
    try {
      rendered = model.chat_prompt_bytes(norm);
    } catch (const Error& e) {
      throw bad("messages", std::string("cannot render the chat template: ") + e.what(), "template_error");
    }
    check_prompt_bytes(model, rendered, n_ctx, "messages");
  }
  try {
    r.gen.prompt = model.chat_prompt(norm);
  } catch (const Error& e) {
    throw bad("messages", std::string("cannot render the chat template: ") + e.what(), "template_error");
  }
  parse_common(b, r, n_ctx, 0);
  r.gen.sampling.logprobs = r.logprobs;
  r.gen.sampling.top_logprobs = r.top_logprobs;
  return r;
}

ParsedRequest parse_completion_request(const json& b, const ServerModel& model, int n_ctx) {
  ParsedRequest r;
  r.chat = false;
  if (!b.contains("prompt")) throw bad("prompt", "'prompt' is required", "missing_field");
  const json& p = b.at("prompt");
  int n_vocab = model.n_vocab();
  if (p.is_string()) {
    r.prompt_text = p.get<std::string>();
    check_prompt_bytes(model, r.prompt_text.size(), n_ctx, "prompt");
    r.gen.prompt = model.tokenize(r.prompt_text, true, true);
  } else if (p.is_array()) {
    if (p.empty()) throw bad("prompt", "'prompt' must not be empty");
    if (p.size() == 1 && p[0].is_string()) {
      r.prompt_text = p[0].get<std::string>();
      check_prompt_bytes(model, r.prompt_text.size(), n_ctx, "prompt");
      r.gen.prompt = model.tokenize(r.prompt_text, true, true);
    } else if (p[0].is_array() || p[0].is_string()) {
      throw bad("prompt", "only one prompt per request is supported", "unsupported_value");
    } else {
      for (size_t i = 0; i < p.size(); ++i) {
        const json& t = p[i];
        if (!t.is_number_integer()) throw bad("prompt", "'prompt' token ids must be integers", "invalid_type");
        bool neg = !t.is_number_unsigned() && t.get<int64_t>() < 0;
        if (neg || t.get<uint64_t>() >= static_cast<uint64_t>(n_vocab))
          throw bad("prompt", "token id at prompt[" + std::to_string(i) + "] is out of range [0, " +
                                  std::to_string(n_vocab) + ")", "invalid_token");
        r.gen.prompt.push_back(static_cast<int32_t>(t.get<int64_t>()));
      }
      for (int32_t t : r.gen.prompt) r.prompt_text += model.token_to_piece(t);
    }
  } else {
    throw bad("prompt", "'prompt' must be a string or an array of token ids", "invalid_type");
  }
  if (present(b, "logprobs")) {
    const json& v = b.at("logprobs");
    if (v.is_boolean()) {  // tolerated: true = the chosen token only
      r.logprobs = v.get<bool>();
    } else {
      r.top_logprobs = static_cast<int>(get_int(b, "logprobs", 0, 20));
      r.logprobs = true;
    }
  }
  if (present(b, "echo")) r.echo = get_bool(b, "echo");
  if (present(b, "suffix")) throw bad("suffix", "'suffix' is not supported", "unsupported_value");
  parse_common(b, r, n_ctx, 16);
  r.gen.sampling.logprobs = r.logprobs;
  r.gen.sampling.top_logprobs = r.top_logprobs;
  return r;
}

json usage_json(int n_prompt, int n_completion) {
  return {{"prompt_tokens", n_prompt}, {"completion_tokens", n_completion}, {"total_tokens", n_prompt + n_completion}};
}

static std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
  return s;
}

ResponseBuilder::ResponseBuilder(bool chat, std::string model_id, const ServerModel& model)
    : chat_(chat), model_(model), id_(random_id(chat ? "chatcmpl-" : "cmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count()),
      model_id_(std::move(model_id)) {}

static json bytes_of(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

json ResponseBuilder::logprobs_json(const std::vector<TokenInfo>& tokens, size_t text_offset) const {
  if (chat_) {
    json content = json::array();
    for (const auto& t : tokens) {
      json top = json::array();
      for (const auto& a : t.top) {
        std::string piece = model_.token_to_piece(a.token);
        top.push_back({{"token", piece}, {"logprob", a.logprob}, {"bytes", bytes_of(piece)}});
      }
      content.push_back({{"token", t.piece}, {"logprob", t.logprob}, {"bytes", bytes_of(t.piece)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  size_t off = text_offset;
  for (const auto& t : tokens) {
    toks.push_back(t.piece);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& a : t.top) top[model_.token_to_piece(a.token)] = a.logprob;
    tops.push_back(top);
    offs.push_back(off);
    off += t.piece.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json ResponseBuilder::full(const std::string& text, const std::vector<TokenInfo>& tokens, bool with_logprobs,
                           const char* finish_reason, int n_prompt, int n_completion) const {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  choice["logprobs"] = with_logprobs ? logprobs_json(tokens, 0) : json(nullptr);
  if (chat_) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id_},
          {"object", chat_ ? "chat.completion" : "text_completion"},
          {"created", created_},
          {"model", model_id_},
          {"system_fingerprint", "minnow"},
          {"choices", json::array({choice})},
          {"usage", usage_json(n_prompt, n_completion)}};
}

json ResponseBuilder::chunk(const std::string& text, const std::vector<TokenInfo>& tokens, bool with_logprobs,
                            const char* finish_reason, bool first, bool usage_null) const {
  json choice = {{"index", 0}};
  choice["finish_reason"] = finish_reason ? json(finish_reason) : json(nullptr);
  choice["logprobs"] = (with_logprobs && !tokens.empty()) ? logprobs_json(tokens, 0) : json(nullptr);
  if (chat_) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && !finish_reason)) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  json c = {{"id", id_},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", model_id_},
            {"system_fingerprint", "minnow"},
            {"choices", json::array({choice})}};
  if (usage_null) c["usage"] = nullptr;
  return c;
}

json ResponseBuilder::usage_chunk(int n_prompt, int n_completion) const {
  return {{"id", id_},
          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_id_},
          {"system_fingerprint", "minnow"},
          {"choices", json::array()},
          {"usage", usage_json(n_prompt, n_completion)}};
}

}  // namespace minnow::server
