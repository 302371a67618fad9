// The thread model (graph/cache.hpp): a loaded Model is shared by any number of threads; a Cache
// serves one run at a time, and a second run that overlaps one is refused, never let in. The CI
// runs these under ThreadSanitizer too (scripts/test-sanitizers.sh, the tsan preset).
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "helpers.hpp"

namespace pp = pathpatch;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

// The experiments every thread runs: a predicate run, a rule run, a sender sweep.
struct Outcome {
  pp::Tensor split, rules, sweep;
};

Outcome experiments(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache) {
  Outcome o;
  pp::RunOptions opt;
  opt.cache = cache;
  o.split = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; },
                    [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; }, opt)
                .hidden;
  o.rules = pp::run(m, {clean(), corrupt()}, pp::PathRules().add("ln_final (f* f*.head)* a0 a0.head a0.head1", 1), opt)
                .hidden;
  pp::PathPatchingOptions po;
  po.cache = cache;
  o.sweep = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, pp::Metric::kl(), po).values;
  return o;
}

}  // namespace

TEST_CASE("a model shared by four threads, each with its own cache, computes what one thread does", "[threads]") {
  for (const char* name : {"gpt2", "llama-gqa", "pythia"}) {
    const pp::Model& m = pptest::model(name);
    const Outcome alone = experiments(m, std::make_shared<pp::Cache>());
    std::vector<Outcome> outcomes(4);
    std::vector<std::thread> threads;
    for (auto& out : outcomes) threads.emplace_back([&m, &out] { out = experiments(m, std::make_shared<pp::Cache>()); });
    for (auto& t : threads) t.join();
    for (const Outcome& o : outcomes) {
      INFO(name);
      CHECK(pp::bit_equal(o.split, alone.split));
      CHECK(pp::bit_equal(o.rules, alone.rules));
      CHECK(pp::bit_equal(o.sweep, alone.sweep));
    }
  }
}

TEST_CASE("threads may take turns with one cache", "[threads]") {
  const pp::Model& m = pptest::model("gpt2");
  const Outcome alone = experiments(m, std::make_shared<pp::Cache>());
  auto shared = std::make_shared<pp::Cache>();
  std::mutex turn;
  std::vector<Outcome> outcomes(3);
  std::vector<std::thread> threads;
  for (auto& out : outcomes)
    threads.emplace_back([&] {
      std::lock_guard<std::mutex> lock(turn);
      out = experiments(m, shared);
    });
  for (auto& t : threads) t.join();
  for (const Outcome& o : outcomes) {
    CHECK(pp::bit_equal(o.split, alone.split));
    CHECK(pp::bit_equal(o.sweep, alone.sweep));
  }
  CHECK(shared->counters().hits > 0);  // the later turns reused the first one's values
}

TEST_CASE("a run that overlaps another on the same cache is refused, and the cache stays whole", "[threads]") {
  const pp::Model& m = pptest::model("gpt2");
  auto shared = std::make_shared<pp::Cache>();
  pp::RunOptions opt;
  opt.cache = shared;
  // Thread A stops inside its run (in its `which` predicate) until B has tried to start one.
  std::promise<void> a_inside, b_tried;
  std::shared_future<void> b_done = b_tried.get_future().share();
  std::atomic<bool> first{true};
  pp::Tensor a_hidden;
  std::thread a([&] {
    a_hidden = pp::run(m, {clean(), corrupt()},
                       [&](const pp::Path&) {
                         if (first.exchange(false)) {
                           a_inside.set_value();
                           b_done.wait();
                         }
                         return 0;
                       },
                       pptest::no_split, opt)
                   .hidden;
  });
  a_inside.get_future().wait();
  CHECK_THROWS_WITH(pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 1; }, pptest::no_split, opt),
                    Catch::Contains("in use by another run") && Catch::Contains("give each thread its own Cache"));
  CHECK_THROWS_AS(pp::forward(m, clean(), opt), pp::InputError);
  b_tried.set_value();
  a.join();
  CHECK(pp::bit_equal(a_hidden, pp::forward(m, clean()).hidden));
  // Free again: the next run on it goes ahead (taking the rows before the inputs differ from the
  // clean run the cache holds: equal up to rounding).
  CHECK(pp::max_abs_diff(pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 1; }, pptest::no_split, opt).hidden,
                         pp::forward(m, corrupt()).hidden) < 1e-5f);
}
