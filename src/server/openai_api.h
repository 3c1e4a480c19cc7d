#pragma once
// OpenAI request validation and response JSON. Every user mistake becomes an ApiError (HTTP status + an
// OpenAI-style error body); nothing here trusts the request's types or ranges.
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/generation.h"
#include "server/server_model.h"

namespace minnow::server {

struct ApiError : std::exception {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  ApiError(int st, std::string msg, std::string ty = "invalid_request_error", std::string pa = "", std::string co = "")
      : status(st), message(std::move(msg)), type(std::move(ty)), param(std::move(pa)), code(std::move(co)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

// {"error": {"message", "type", "param", "code"}}
nlohmann::json error_body(const ApiError& e);
// Serialises with invalid UTF-8 replaced (never throws on model output).
std::string dump_json(const nlohmann::json& j);

// Parses a request body that must be a JSON object.
nlohmann::json parse_json_object(const std::string& body);

struct ParsedRequest {
  bool chat = true;
  GenParams gen;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;   // chat: logprobs=true; completions: logprobs=N (N>=0)
  int top_logprobs = 0;
  bool echo = false;       // completions only
  std::string prompt_text; // completions with echo
};

// n_ctx: positions per slot. The prompt must leave room for at least one generated token.
ParsedRequest parse_chat_request(const nlohmann::json& body, const ServerModel& model, int n_ctx);
ParsedRequest parse_completion_request(const nlohmann::json& body, const ServerModel& model, int n_ctx);

// Builds response objects for one request.
class ResponseBuilder {
 public:
  ResponseBuilder(bool chat, std::string model_id, const ServerModel& model);
  // Non-streaming response.
  nlohmann::json full(const std::string& text, const std::vector<TokenInfo>& tokens, bool with_logprobs,
                      const char* finish_reason, int n_prompt, int n_completion) const;
  // Streaming chunk carrying `text` (and its tokens' logprobs); finish_reason may be nullptr.
  nlohmann::json chunk(const std::string& text, const std::vector<TokenInfo>& tokens, bool with_logprobs,
                       const char* finish_reason, bool first, bool usage_null) const;
  nlohmann::json usage_chunk(int n_prompt, int n_completion) const;

 private:
  nlohmann::json logprobs_json(const std::vector<TokenInfo>& tokens, size_t text_offset) const;
  bool chat_;
  const ServerModel& model_;
  std::string id_;
  int64_t created_;
  std::string model_id_;
};

nlohmann::json usage_json(int n_prompt, int n_completion);

}  // namespace minnow::server
