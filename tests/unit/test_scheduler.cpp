// Scheduler (continuous batching) against a deterministic fake backend: positions, chunking, batch invariance,
// queue limits, cancellation, failures, context limit, shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>

#include "server/generation.h"
#include "server/scheduler.h"
#include "test_server_fakes.h"

using namespace minnow;
using namespace minnow::server;
using namespace minnow::testing_fakes;

namespace {

// Greedy job that records its tokens and how it finished.
class TestJob : public Job {
 public:
  TestJob(std::vector<int32_t> prompt, int max_tokens) : prompt_(std::move(prompt)), max_tokens_(max_tokens) {}
  const std::vector<int32_t>& prompt() const override { return prompt_; }
  bool on_logits(float* logits, int n_vocab, int32_t* next, FinishReason* reason) override {
    int32_t best = 0;
    for (int v = 1; v < n_vocab; ++v)
      if (logits[v] > logits[best]) best = v;
    if (best == kEos) {
      *reason = FinishReason::Stop;
      return false;
    }
    tokens.push_back(best);
    if (static_cast<int>(tokens.size()) >= max_tokens_) {
      *reason = FinishReason::Length;
      return false;
    }
    *next = best;
    return true;
  }
  void on_finish(FinishReason r, const std::string& err) override {
    std::lock_guard<std::mutex> lk(mu_);
    ++finish_calls;
    reason = r;
    error = err;
    cv_.notify_all();
  }
  bool wait_done(int seconds = 20) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(seconds), [&] { return finish_calls > 0; });
  }
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::Error;
  std::string error;
  int finish_calls = 0;

 private:
  std::vector<int32_t> prompt_;
  int max_tokens_;
  std::mutex mu_;
  std::condition_variable cv_;
};

std::vector<int32_t> random_prompt(std::mt19937& rng, int n) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(static_cast<int32_t>(rng() % 256));
  return p;
}

SchedulerOptions opts(int slots, int n_ctx, int chunk, int queue = 64) {
  SchedulerOptions o;
  o.n_slots = slots;
  o.n_ctx = n_ctx;
  o.n_vocab = kVocab;
  o.chunk = chunk;
  o.max_queue = queue;
  o.max_prompt_per_step = 2 * chunk;
  return o;
}

template <class F>
bool eventually(F f, int ms = 10000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return f();
}

// Submits `jobs` so that every one of them is queued before the scheduler admits any: a one-token blocker job
// runs first and is held inside its forward pass while the others are submitted; it finishes in that step and
// frees its slot, so the next step admits the queued jobs in order. The passes that follow then do not depend on
// how fast the scheduler thread woke (a plain hold lets the first step take whichever jobs had arrived).
template <class J>
void submit_all_before_the_first_step(Scheduler& sched, FakeBackend& be,
                                      const std::vector<std::shared_ptr<J>>& jobs) {
  auto blocker = std::make_shared<TestJob>(std::vector<int32_t>{'x'}, 1);
  be.hold = true;
  const int before = be.entered.load();
  ASSERT_EQ(sched.submit(blocker), Scheduler::Submit::Ok);
  ASSERT_TRUE(eventually([&] { return be.entered.load() > before; }));
  for (auto& j : jobs) ASSERT_EQ(sched.submit(j), Scheduler::Submit::Ok);
  be.hold = false;
  ASSERT_TRUE(blocker->wait_done());
  ASSERT_EQ(blocker->reason, FinishReason::Length);
}

}  // namespace

TEST(Scheduler, BatchedEqualsAloneAndChunksAtFixedBoundaries) {
  const int kSlots = 8, kCtx = 512, kChunk = 16;
  std::mt19937 rng(1234);
  std::vector<int> lens = {1, 15, 16, 17, 33, 70, 5, 129, 3, 47, 100, 16};  // more jobs than slots
  FakeBackend be(kSlots, kCtx);
  Metrics m;
  SchedulerOptions so = opts(kSlots, kCtx, kChunk);
  so.sample_threads = 4;  // the jobs' on_logits run in parallel across rows
  Scheduler sched(be, so, &m);
  std::vector<std::shared_ptr<TestJob>> jobs;
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < lens.size(); ++i) {
    auto p = random_prompt(rng, lens[i]);
    int max_tokens = 5 + static_cast<int>(i) * 3;
    want.push_back(reference_greedy(p, max_tokens, kChunk, kCtx));
    jobs.push_back(std::make_shared<TestJob>(p, max_tokens));
  }
  submit_all_before_the_first_step(sched, be, jobs);  // so sequences share steps
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(jobs[i]->wait_done());
    EXPECT_EQ(jobs[i]->finish_calls, 1);
    EXPECT_EQ(jobs[i]->reason, FinishReason::Length);
    EXPECT_EQ(jobs[i]->tokens, want[i]) << "job " << i << " (prompt " << lens[i] << ")";
  }
  EXPECT_TRUE(be.violations().empty()) << be.violations().front();
  EXPECT_GE(be.max_distinct_seqs(), 4);  // decode steps really were shared
  EXPECT_TRUE(eventually([&] { return sched.idle(); }));
  EXPECT_EQ(m.slots_busy.load(), 0);
  // The blocker's one prompt token, then the jobs'.
  EXPECT_EQ(m.prompt_tokens.load(),
            static_cast<uint64_t>(1 + (1 + 15 + 16 + 17 + 33 + 70 + 5 + 129 + 3 + 47 + 100 + 16)));
}

TEST(Scheduler, ManyRandomRoundsStayConsistent) {
  const int kSlots = 5, kCtx = 128, kChunk = 7;
  std::mt19937 rng(99);
  FakeBackend be(kSlots, kCtx);
  Scheduler sched(be, opts(kSlots, kCtx, kChunk), nullptr);
  for (int round = 0; round < 4; ++round) {
    std::vector<std::shared_ptr<TestJob>> jobs;
    std::vector<std::vector<int32_t>> want;
    int n = 3 + static_cast<int>(rng() % 9);
    for (int i = 0; i < n; ++i) {
      auto p = random_prompt(rng, 1 + static_cast<int>(rng() % 60));
      int mt = 1 + static_cast<int>(rng() % 40);
      want.push_back(reference_greedy(p, mt, kChunk, kCtx));
      jobs.push_back(std::make_shared<TestJob>(p, mt));
      ASSERT_EQ(sched.submit(jobs.back()), Scheduler::Submit::Ok);
      if (rng() % 2) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 3));
    }
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(jobs[i]->wait_done());
      EXPECT_EQ(jobs[i]->tokens, want[i]);
    }
  }
  EXPECT_TRUE(be.violations().empty());
}

TEST(Scheduler, SplitPassesGiveTheSameTokens) {
  const int kSlots = 6, kCtx = 256, kChunk = 8;
  std::mt19937 rng(5);
  FakeBackend be(kSlots, kCtx);
  Metrics m;
  SchedulerOptions so = opts(kSlots, kCtx, kChunk);
  so.split_passes = 1;
  Scheduler sched(be, so, &m);
  std::vector<std::shared_ptr<TestJob>> jobs;
  std::vector<std::vector<int32_t>> want;
  be.hold = true;
  for (int i = 0; i < 9; ++i) {
    auto p = random_prompt(rng, 1 + static_cast<int>(rng() % 30));
    want.push_back(reference_greedy(p, 12, kChunk, kCtx));
    jobs.push_back(std::make_shared<TestJob>(p, 12));
    ASSERT_EQ(sched.submit(jobs.back()), Scheduler::Submit::Ok);
  }
  be.hold = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(jobs[i]->wait_done());
    EXPECT_EQ(jobs[i]->tokens, want[i]);
  }
  EXPECT_TRUE(be.violations().empty());
  // A decode pass holds one token per sequence; prompt passes one chunk each: never more than a chunk's worth
  // of one sequence plus nothing else, so passes outnumber steps.
  EXPECT_GT(m.forward_passes.load(), 12u);
}

// A backend whose kernels change above 4 tokens per pass (as the CUDA backend's do above 32): with the default
// split policy, every sequence's tokens equal its tokens alone while at most 4 sequences generate; with
// splitting off, sharing large passes changes them (the check can fail).
std::vector<std::vector<int32_t>> run_with_limit(int split, std::vector<std::vector<int32_t>>& want, int slots = 4,
                                                 uint64_t* passes = nullptr) {
  const int kSlots = slots, kCtx = 256, kChunk = 8, kLimit = 4;
  std::mt19937 rng(11);
  FakeBackend be(kSlots, kCtx);
  be.invariant_limit = kLimit;
  SchedulerOptions so = opts(kSlots, kCtx, kChunk);
  so.split_passes = split;
  Metrics m;
  Scheduler sched(be, so, &m);
  std::vector<std::shared_ptr<TestJob>> jobs;
  want.clear();
  for (int i = 0; i < 10; ++i) {
    auto p = random_prompt(rng, 1 + static_cast<int>(rng() % 30));
    want.push_back(reference_greedy(p, 10, kChunk, kCtx, -1, kLimit));
    jobs.push_back(std::make_shared<TestJob>(p, 10));
  }
  // Deterministic passes: the auto/off comparisons below must not depend on thread timing.
  submit_all_before_the_first_step(sched, be, jobs);
  std::vector<std::vector<int32_t>> got;
  for (auto& j : jobs) {
    EXPECT_TRUE(j->wait_done());
    got.push_back(j->tokens);
  }
  EXPECT_TRUE(be.violations().empty());
  if (passes) *passes = m.forward_passes.load();
  return got;
}

TEST(Scheduler, AutoSplitKeepsSmallBatchBackendsInvariant) {
  std::vector<std::vector<int32_t>> want;
  const auto got = run_with_limit(-1, want);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "job " << i;
  const auto mixed = run_with_limit(0, want);
  int differ = 0;
  for (size_t i = 0; i < mixed.size(); ++i) differ += mixed[i] != want[i];
  EXPECT_GT(differ, 0) << "without splitting, large mixed passes should have changed some outputs";
}

// Auto splits only while at most invariant_batch() sequences are active (the promise covers that many): with
// more slots than that, it runs the same passes as no splitting (fewer, larger passes under load).
TEST(Scheduler, AutoSplitOnlyWithinTheInvariantLimit) {
  std::vector<std::vector<int32_t>> want;
  uint64_t auto4 = 0, off4 = 0, auto8 = 0, off8 = 0;
  run_with_limit(-1, want, 4, &auto4);
  run_with_limit(0, want, 4, &off4);
  const auto a8 = run_with_limit(-1, want, 8, &auto8);
  const auto o8 = run_with_limit(0, want, 8, &off8);
  EXPECT_GT(auto4, off4);
  EXPECT_EQ(auto8, off8);
  EXPECT_EQ(a8, o8);
}

TEST(Scheduler, ContextLimitAndInvalidPrompts) {
  FakeBackend be(2, 16);
  Scheduler sched(be, opts(2, 16, 4), nullptr);
  auto tooLong = std::make_shared<TestJob>(std::vector<int32_t>(16, 'a'), 5);
  EXPECT_EQ(sched.submit(tooLong), Scheduler::Submit::Invalid);
  auto empty = std::make_shared<TestJob>(std::vector<int32_t>{}, 5);
  EXPECT_EQ(sched.submit(empty), Scheduler::Submit::Invalid);
  std::vector<int32_t> p(10, 'b');
  auto j = std::make_shared<TestJob>(p, 1000);
  ASSERT_EQ(sched.submit(j), Scheduler::Submit::Ok);
  ASSERT_TRUE(j->wait_done());
  EXPECT_EQ(j->reason, FinishReason::Length);
  // 6 tokens fill positions 10..15; the 7th is sampled from the last position but never fed.
  EXPECT_EQ(j->tokens.size(), 7u);
  EXPECT_EQ(j->tokens, reference_greedy(p, 1000, 4, 16));
  EXPECT_TRUE(be.violations().empty());
}

TEST(Scheduler, EosFinishesWithStop) {
  FakeBackend be(1, 64);
  be.eos_at_pos = 12;
  Scheduler sched(be, opts(1, 64, 8), nullptr);
  auto j = std::make_shared<TestJob>(std::vector<int32_t>(5, 'c'), 100);
  ASSERT_EQ(sched.submit(j), Scheduler::Submit::Ok);
  ASSERT_TRUE(j->wait_done());
  EXPECT_EQ(j->reason, FinishReason::Stop);
  EXPECT_EQ(j->tokens.size(), 7u);  // positions 5..11 predict tokens, the one predicted at 11 is EOS
}

TEST(Scheduler, QueueLimitRejectsAndRecovers) {
  FakeBackend be(2, 64);
  be.delay_ms = 5;
  Scheduler sched(be, opts(2, 64, 8, /*queue=*/3), nullptr);
  std::vector<std::shared_ptr<TestJob>> ok;
  int rejected = 0;
  for (int i = 0; i < 8; ++i) {
    auto j = std::make_shared<TestJob>(std::vector<int32_t>(4, 'd'), 30);
    auto r = sched.submit(j);
    if (r == Scheduler::Submit::Ok) ok.push_back(j);
    else if (r == Scheduler::Submit::QueueFull) ++rejected;
  }
  EXPECT_EQ(ok.size(), 5u);  // two slots + three waiting
  EXPECT_EQ(rejected, 3);
  for (auto& j : ok) {
    ASSERT_TRUE(j->wait_done());
    EXPECT_EQ(j->reason, FinishReason::Length);
  }
  auto again = std::make_shared<TestJob>(std::vector<int32_t>(4, 'd'), 3);
  EXPECT_EQ(sched.submit(again), Scheduler::Submit::Ok);
  ASSERT_TRUE(again->wait_done());
}

TEST(Scheduler, CancelRunningAndQueuedFreesSlots) {
  FakeBackend be(1, 256);
  be.delay_ms = 2;
  Metrics m;
  Scheduler sched(be, opts(1, 256, 8), &m);
  auto running = std::make_shared<TestJob>(std::vector<int32_t>(3, 'e'), 200);
  auto queued = std::make_shared<TestJob>(std::vector<int32_t>(3, 'f'), 200);
  ASSERT_EQ(sched.submit(running), Scheduler::Submit::Ok);
  ASSERT_EQ(sched.submit(queued), Scheduler::Submit::Ok);
  ASSERT_TRUE(eventually([&] { return m.slots_busy.load() == 1 && m.queue_depth.load() == 1; }));
  queued->cancel();
  ASSERT_TRUE(queued->wait_done());
  EXPECT_EQ(queued->reason, FinishReason::Cancelled);
  EXPECT_TRUE(queued->tokens.empty());
  running->cancel();
  ASSERT_TRUE(running->wait_done());
  EXPECT_EQ(running->reason, FinishReason::Cancelled);
  EXPECT_LT(running->tokens.size(), 200u);
  EXPECT_TRUE(eventually([&] { return m.slots_busy.load() == 0 && m.queue_depth.load() == 0; }));
  // The slot is reusable and starts from a clean cache.
  std::vector<int32_t> p(9, 'g');
  auto next = std::make_shared<TestJob>(p, 10);
  ASSERT_EQ(sched.submit(next), Scheduler::Submit::Ok);
  ASSERT_TRUE(next->wait_done());
  EXPECT_EQ(next->tokens, reference_greedy(p, 10, 8, 256));
  EXPECT_TRUE(be.violations().empty());
}

TEST(Scheduler, BackendFailureFailsBatchThenRecovers) {
  FakeBackend be(2, 64);
  Scheduler sched(be, opts(2, 64, 8), nullptr);
  be.fail_next = true;
  auto a = std::make_shared<TestJob>(std::vector<int32_t>(4, 'h'), 5);
  ASSERT_EQ(sched.submit(a), Scheduler::Submit::Ok);
  ASSERT_TRUE(a->wait_done());
  EXPECT_EQ(a->reason, FinishReason::Error);
  EXPECT_NE(a->error.find("injected"), std::string::npos);
  std::vector<int32_t> p(4, 'h');
  auto b = std::make_shared<TestJob>(p, 5);
  ASSERT_EQ(sched.submit(b), Scheduler::Submit::Ok);
  ASSERT_TRUE(b->wait_done());
  EXPECT_EQ(b->reason, FinishReason::Length);
  EXPECT_EQ(b->tokens, reference_greedy(p, 5, 8, 64));
}

TEST(Scheduler, StopCancelsEverythingExactlyOnce) {
  FakeBackend be(2, 512);
  be.delay_ms = 2;
  std::vector<std::shared_ptr<TestJob>> jobs;
  {
    Scheduler sched(be, opts(2, 512, 8), nullptr);
    for (int i = 0; i < 5; ++i) {
      jobs.push_back(std::make_shared<TestJob>(std::vector<int32_t>(3, 'i'), 400));
      ASSERT_EQ(sched.submit(jobs.back()), Scheduler::Submit::Ok);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    sched.stop();
    auto late = std::make_shared<TestJob>(std::vector<int32_t>(3, 'i'), 4);
    EXPECT_EQ(sched.submit(late), Scheduler::Submit::Stopped);
  }
  for (auto& j : jobs) {
    EXPECT_EQ(j->finish_calls, 1);
    EXPECT_EQ(j->reason, FinishReason::Cancelled);
  }
}

// GenerationJob's text handling, driven with one-hot logits.
namespace {
std::vector<float> one_hot(int32_t t) {
  std::vector<float> l(kVocab, 0.0f);
  l[t] = 10.0f;
  return l;
}
std::string drain(GenerationJob& j, GenEvent* last = nullptr) {
  std::string s;
  while (auto ev = j.wait(std::chrono::milliseconds(0))) {
    s += ev->text;
    if (last && ev->finished) *last = *ev;
  }
  return s;
}
}  // namespace

TEST(Generation, Utf8IsNeverSplitAndStopStringsAreHeldBack) {
  FakeModel model;
  GenParams gp;
  gp.prompt = {'x'};
  gp.max_tokens = 100;
  gp.stop = {"END"};
  gp.sampling.temperature = 0;
  GenerationJob job(gp, model, nullptr, std::chrono::steady_clock::now());
  std::string streamed;
  int32_t next;
  FinishReason r;
  const std::string text = "h\xC3\xA9 E";  // "hé E"
  for (unsigned char c : text) {
    auto l = one_hot(c);
    ASSERT_TRUE(job.on_logits(l.data(), kVocab, &next, &r));
    std::string got = drain(job);
    // Nothing handed out ever ends inside a UTF-8 character or a possible "END".
    EXPECT_EQ(utf8_complete_prefix(got), got.size());
    streamed += got;
  }
  EXPECT_EQ(streamed, "h\xC3\xA9 ");  // "E" is held back: it may start "END"
  auto lN = one_hot('N');
  ASSERT_TRUE(job.on_logits(lN.data(), kVocab, &next, &r));
  auto lD = one_hot('D');
  EXPECT_FALSE(job.on_logits(lD.data(), kVocab, &next, &r));
  EXPECT_EQ(r, FinishReason::Stop);
  job.on_finish(r, "");
  GenEvent last;
  streamed += drain(job, &last);
  EXPECT_TRUE(last.finished);
  EXPECT_EQ(streamed, "h\xC3\xA9 ");
}

TEST(Generation, HeldBackTextIsFlushedAtLength) {
  FakeModel model;
  GenParams gp;
  gp.prompt = {'x'};
  gp.max_tokens = 3;
  gp.stop = {"abc"};
  gp.sampling.temperature = 0;
  GenerationJob job(gp, model, nullptr, std::chrono::steady_clock::now());
  int32_t next;
  FinishReason r;
  auto l1 = one_hot('z'), l2 = one_hot('a'), l3 = one_hot('b');
  ASSERT_TRUE(job.on_logits(l1.data(), kVocab, &next, &r));
  ASSERT_TRUE(job.on_logits(l2.data(), kVocab, &next, &r));
  EXPECT_FALSE(job.on_logits(l3.data(), kVocab, &next, &r));
  EXPECT_EQ(r, FinishReason::Length);
  job.on_finish(r, "");
  EXPECT_EQ(drain(job), "zab");
  EXPECT_EQ(job.n_generated(), 3);
}

TEST(Generation, Utf8CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  EXPECT_EQ(utf8_complete_prefix("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix("a\xE2\x82"), 1u);         // incomplete euro sign
  EXPECT_EQ(utf8_complete_prefix("a\xE2\x82\xAC"), 4u);     // complete
  EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\x98"), 0u);      // incomplete emoji
  EXPECT_EQ(utf8_complete_prefix("\xFF" "a"), 2u);          // invalid byte passes through
  EXPECT_EQ(utf8_complete_prefix("\xC3" "a"), 2u);          // broken sequence passes through
}

TEST(Sampler, GreedyTopPAndLogprobsAgainstScalarReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 3);
  const int n = 1001;
  std::vector<float> logits(n);
  for (auto& x : logits) x = nd(rng);
  SamplingParams sp;
  sp.temperature = 0;
  sp.logprobs = true;
  sp.top_logprobs = 5;
  TokenSampler s(sp);
  auto r = s.sample(logits.data(), n);
  int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(r.token, best);
  double lse = 0;
  for (float x : logits) lse += std::exp(static_cast<double>(x));
  lse = std::log(lse);
  EXPECT_NEAR(r.logprob, logits[best] - lse, 1e-4);
  ASSERT_EQ(r.top.size(), 5u);
  EXPECT_EQ(r.top[0].token, best);
  for (size_t i = 1; i < r.top.size(); ++i) EXPECT_GE(r.top[i - 1].logprob, r.top[i].logprob);
  // top_p tiny: only the most likely token survives, whatever the seed.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SamplingParams p2;
    p2.temperature = 1.0;
    p2.top_p = 1e-6;
    p2.seed = seed;
    TokenSampler s2(p2);
    EXPECT_EQ(s2.sample(logits.data(), n).token, best);
  }
  // Same seed -> same draws; frequencies follow the softmax roughly.
  SamplingParams p3;
  p3.temperature = 1.0;
  p3.seed = 42;
  TokenSampler a(p3), b(p3);
  std::vector<float> small = {0.0f, 1.0f, 2.0f};
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 3000; ++i) {
    int32_t ta = a.sample(small.data(), 3).token, tb = b.sample(small.data(), 3).token;
    ASSERT_EQ(ta, tb);
    counts[ta]++;
  }
  double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_NEAR(counts[2] / 3000.0, std::exp(2.0) / z, 0.05);
  EXPECT_NEAR(counts[0] / 3000.0, 1.0 / z, 0.05);
}

// A greedy job that also takes the shortcut (Job::on_top): the first listed id that is not end-of-stream.
class TopJob : public TestJob {
 public:
  using TestJob::TestJob;
  bool greedy_only() const override { return true; }
  bool on_top(const int32_t* ids, int k, int32_t* next, FinishReason* reason) override {
    ++tops;
    std::vector<float> one_hot(kVocab, 0.f);  // reuse on_logits' bookkeeping with the chosen id on top
    int32_t pick = -1;
    for (int i = 0; i < k && pick < 0; ++i)
      if (ids[i] >= 0) pick = ids[i];
    if (pick < 0) throw std::runtime_error("no id listed");
    one_hot[static_cast<size_t>(pick)] = 1.f;
    return on_logits(one_hot.data(), kVocab, next, reason);
  }
  int tops = 0;
};

TEST(Scheduler, GreedyShortcutGivesTheSameTokensAsWholeLogits) {
  const int kSlots = 6, kCtx = 256, kChunk = 8;
  std::vector<int> lens = {3, 9, 17, 1, 30, 12, 5, 21};
  for (int mode : {1, 0}) {
    FakeBackend be(kSlots, kCtx);
    SchedulerOptions so = opts(kSlots, kCtx, kChunk);
    so.greedy_shortcut = mode;
    Scheduler sched(be, so, nullptr);
    std::vector<std::shared_ptr<TopJob>> jobs;
    std::mt19937 r2(99);
    for (size_t i = 0; i < lens.size(); ++i) {
      auto p = random_prompt(r2, lens[i]);
      const int max_tokens = 4 + static_cast<int>(i) * 2;
      jobs.push_back(std::make_shared<TopJob>(p, max_tokens));
    }
    be.hold = true;
    for (auto& j : jobs) ASSERT_EQ(sched.submit(j), Scheduler::Submit::Ok);
    be.hold = false;
    r2.seed(99);
    for (size_t i = 0; i < jobs.size(); ++i) {
      ASSERT_TRUE(jobs[i]->wait_done());
      auto p = random_prompt(r2, lens[i]);
      EXPECT_EQ(jobs[i]->tokens, reference_greedy(p, 4 + static_cast<int>(i) * 2, kChunk, kCtx))
          << "job " << i << ", shortcut " << mode;
      if (mode == 1) EXPECT_GT(jobs[i]->tops, 0) << "the shortcut was not taken";
      else EXPECT_EQ(jobs[i]->tops, 0);
    }
    EXPECT_TRUE(be.violations().empty());
  }
}

TEST(Generation, GreedyShortcutSkipsEndOfGenerationOnlyWithIgnoreEos) {
  FakeModel model;
  GenParams gp;
  gp.prompt = {'x'};
  gp.max_tokens = 10;
  gp.sampling.temperature = 0;
  {
    GenerationJob job(gp, model, nullptr, std::chrono::steady_clock::now());
    EXPECT_TRUE(job.greedy_only());
    int32_t next = -1;
    FinishReason r;
    const int32_t ids[Backend::kTopIds] = {'q', kEos, 'r', -1, -1, -1, -1, -1};
    ASSERT_TRUE(job.on_top(ids, Backend::kTopIds, &next, &r));
    EXPECT_EQ(next, 'q');
    const int32_t eos_first[Backend::kTopIds] = {kEos, 'r', -1, -1, -1, -1, -1, -1};
    EXPECT_FALSE(job.on_top(eos_first, Backend::kTopIds, &next, &r));  // stops, as on_logits would
    EXPECT_EQ(r, FinishReason::Stop);
    job.on_finish(r, "");
    EXPECT_EQ(drain(job), "q");
  }
  gp.ignore_eos = true;
  {
    GenerationJob job(gp, model, nullptr, std::chrono::steady_clock::now());
    int32_t next = -1;
    FinishReason r;
    const int32_t eos_first[Backend::kTopIds] = {kEos, 'r', -1, -1, -1, -1, -1, -1};
    ASSERT_TRUE(job.on_top(eos_first, Backend::kTopIds, &next, &r));
    EXPECT_EQ(next, 'r');
    const int32_t only_eos[Backend::kTopIds] = {kEos, -1, -1, -1, -1, -1, -1, -1};
    EXPECT_THROW(job.on_top(only_eos, Backend::kTopIds, &next, &r), std::exception);
  }
  gp.sampling.logprobs = true;  // log-probabilities need the whole row
  EXPECT_FALSE(GenerationJob(gp, model, nullptr, std::chrono::steady_clock::now()).greedy_only());
  gp.sampling.logprobs = false;
  gp.sampling.temperature = 0.7;
  EXPECT_FALSE(GenerationJob(gp, model, nullptr, std::chrono::steady_clock::now()).greedy_only());
}
