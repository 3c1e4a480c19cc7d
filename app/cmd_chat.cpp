// minnow chat -m MODEL [-sys SYSTEM] [--chat-template-file F]: a multi-turn chat through the model's own chat
// template (or ChatML when it has none). Replies stream to stdout; one timing line per turn goes to stderr.
// Interactive (stdin a terminal): "> " prompt, Ctrl-C stops the current reply, /exit or Ctrl-D quits.
// Scripted (stdin not a terminal): each non-empty input line is one user turn; each reply ends with "\n".
// Context policy: when the conversation no longer fits (with room for a reply), the oldest turns are dropped,
// keeping the system prompt; a note says how many.
//
// Also installs the `minnow run --chat` hook: the prompt becomes one user turn of the template.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "chat/chat_prompt.h"
#include "chat/chat_session.h"
#include "chat/chat_template.h"
#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

std::atomic<bool> g_interrupt{false};

extern "C" void on_sigint(int) { g_interrupt.store(true); }

int cmd_chat(int argc, char** argv) {
  ModelFlags mf;
  std::string system_prompt, template_file;
  int n_predict = -1;
  int64_t seed = -1;
  SamplerParams sp;
  ArgParser args("chat");
  mf.add_to(args);
  args.add_string({"-sys", "--system-prompt"}, &system_prompt, "system prompt (kept when old turns are dropped)");
  args.add_string({"--chat-template-file"}, &template_file, "Jinja chat template file (default: the model's, else ChatML)");
  args.add_int({"-n", "--n-predict"}, &n_predict, "max tokens per reply (-1: until end of turn or context full)");
  add_sampler_flags(args, sp, seed);
  if (!args.parse(argc, argv, 1)) return 0;
  if (n_predict < -1) throw Error("-n must be >= -1");
  sp.seed = seed;

  std::string tmpl_src = template_file.empty() ? "" : read_template_file(template_file);
  LoadedModel lm = load_model_and_tokenizer(mf);
  ChatTemplate tmpl = ChatTemplate::from_model(lm.model->gguf(), tmpl_src);
  build_backend(lm, mf, 4096);
  ChatSession chat(*lm.tok, *lm.backend, tmpl, sp, lm.n_ctx, system_prompt, n_predict);

  const bool tty = isatty(STDIN_FILENO) != 0;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: Ctrl-C at the input prompt interrupts the read
  sigaction(SIGINT, &sa, nullptr);
  if (tty)
    std::fprintf(stderr, "minnow chat: %s template, context %d tokens. Ctrl-C stops a reply; /exit quits.\n",
                 tmpl.is_default() ? "ChatML (default)" : "model", lm.n_ctx);

  int turn_no = 0;
  std::string line;
  while (true) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    g_interrupt.store(false);
    if (!std::getline(std::cin, line)) {
      if (tty && g_interrupt.load() && !std::cin.eof()) {  // Ctrl-C at the prompt: a fresh prompt
        std::cin.clear();
        std::fputs("\n", stdout);
        continue;
      }
      break;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit" || line == "/quit") break;
    if (line.empty()) continue;
    ++turn_no;
    ChatTurnStats st;
    try {
      chat.turn(line, [](const std::string& piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }, &g_interrupt, &st);
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      continue;
    }
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (st.dropped_turns > 0)
      std::fprintf(stderr, "[context full: dropped the %d oldest turn(s), kept the system prompt]\n", st.dropped_turns);
    if (st.stop == "interrupted") std::fprintf(stderr, "[reply stopped]\n");
    if (st.stop == "context") std::fprintf(stderr, "[reply cut: context full]\n");
    const double pp = st.prompt_ms > 0 ? 1000.0 * static_cast<double>(st.prompt_new) / st.prompt_ms : 0;
    const double tg = st.gen_ms > 0 && st.generated > 0 ? 1000.0 * static_cast<double>(st.generated) / st.gen_ms : 0;
    std::fprintf(stderr,
                 "turn %d | prompt %zu tokens: %zu new, %zu reused from cache, %.2f tokens/s | generation %zu tokens, "
                 "%.2f tokens/s | %s\n",
                 turn_no, st.prompt_tokens, st.prompt_new, st.prompt_reused, pp, st.generated, tg, st.stop.c_str());
  }
  return 0;
}

// `minnow run --chat -p TEXT`: one user turn through the model's template, injection-safe.
const bool kRunChatHookInstalled = [] {
  run_chat_prompt_hook() = [](const Model& model, const Tokenizer& tok, const std::string& user) {
    ChatTemplate tmpl = ChatTemplate::from_model(model.gguf());
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", user}});
    return build_chat_prompt(tok, tmpl, messages, true).tokens;
  };
  return true;
}();

}  // namespace

MINNOW_COMMAND("chat", "multi-turn chat through the model's chat template", cmd_chat);

}  // namespace minnow
