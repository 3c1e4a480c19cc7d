#pragma once
// One fuzz input through the OpenAI request path as the server runs it: parse_json_object, then both the
// chat and the completions parser (for several context sizes), then the response builders on what was
// parsed. ApiError is the expected rejection; anything else escaping is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/openai_fake_model.h"
#include "server/openai_api.h"

namespace minnow::fuzzing {

// Returns a value derived from the parse (so the work is not optimised away).
inline uint64_t exercise_openai_request(const std::string& body) {
  static const ByteModel model;
  uint64_t sink = 0;
  nlohmann::json j;
  try {
    j = server::parse_json_object(body);
  } catch (const server::ApiError& e) {
    return static_cast<uint64_t>(e.status);
  }
  for (int n_ctx : {1, 64, 4096}) {
    for (bool chat : {true, false}) {
      try {
        server::ParsedRequest r = chat ? server::parse_chat_request(j, model, n_ctx)
                                       : server::parse_completion_request(j, model, n_ctx);
        sink += r.gen.prompt.size() + static_cast<uint64_t>(r.gen.max_tokens) + r.gen.stop.size();
        server::ResponseBuilder rb(chat, "fuzz", model);
        sink += server::dump_json(rb.full(r.prompt_text, {}, r.logprobs, "stop", 1, 1)).size();
      } catch (const server::ApiError& e) {
        sink += static_cast<uint64_t>(e.status);
        if (e.status < 400 || e.status > 499) throw;  // a request mistake must be a 4xx
      }
    }
  }
  return sink;
}

}  // namespace minnow::fuzzing
