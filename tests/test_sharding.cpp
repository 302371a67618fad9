// Sweeps in units (pathpatch/sharding.hpp): shares computed apart merge into the one-process
// result bit for bit, and a sweep stopped part-way resumes from its log to the same bits.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "graph/files.hpp"
#include "helpers.hpp"
#include "pathpatch/patching.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }
pp::Metric logit_diff() { return pp::Metric::logit_diff({40, 41}, {50, 51}); }

bool same_bits(const pp::Tensor& a, const pp::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

// Each share computed as another process would (its own cache), merged through `filled`.
template <class Sweep>
pp::SweepResult merged(int count, const Sweep& sweep) {
  pp::SweepResult all;
  std::set<int64_t> seen;
  for (int k = 0; k < count; ++k) {
    pp::SweepResult part = sweep(pp::Shard{k, count});
    if (k == 0) {
      all = part;
      all.values = part.values.clone();
    }
    if (k == 0) all.per_example = part.per_example.clone();
    const int64_t B = part.per_example.size(-1);
    for (int64_t cell : part.filled) {
      CHECK(seen.insert(cell).second);  // no cell computed twice
      all.values.data_mut()[cell] = part.values.data()[cell];
      std::copy_n(part.per_example.data() + cell * B, B, all.per_example.data_mut() + cell * B);
    }
  }
  all.filled.assign(seen.begin(), seen.end());
  return all;
}

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("pathpatch-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST_CASE("activation patching split into 2 or 3 shares merges into the one-process result, bit for bit",
          "[sharding]") {
  for (const char* name : {"gpt2", "llama-gqa", "gemma2"}) {
    const pp::Model& m = pptest::model(name);
    pp::Sites sites;
    sites.names = {"z", "resid_pre"};
    sites.positions = pp::SitePositions::Each;  // one unit per position: 7 units
    auto one = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff());
    for (int count : {2, 3})
      for (const std::string site : {"z", "resid_pre"}) {
        INFO(name << ", " << count << " shares, " << site);
        pp::SweepResult all = merged(count, [&](pp::Shard s) {
          pp::PatchingOptions o;
          o.shard = s;
          return pp::activation_patching(m, clean(), corrupt(), sites, logit_diff(), o)[site];
        });
        CHECK(all.filled == one[site].filled);
        CHECK(static_cast<int64_t>(all.filled.size()) == one[site].values.numel());
        CHECK(same_bits(all.values, one[site].values));
        CHECK(same_bits(all.per_example, one[site].per_example));
      }
  }
}

TEST_CASE("path-patching sweeps split into shares merge bit for bit", "[sharding]") {
  const pp::Model& m = pptest::model("llama-gqa");
  pp::PathPatchingOptions o;
  o.chunk = 3;  // 2 layers x 4 heads = 8 senders: three units
  o.mlps_on_path = true;
  const pp::SweepResult senders = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), o);
  const pp::SweepResult receivers = pp::sweep_receivers(m, clean(), corrupt(), {{0, 1}}, pp::Receiver::V, logit_diff(), o);
  for (int count : {2, 3}) {
    INFO(count << " shares");
    CHECK(same_bits(merged(count,
                           [&](pp::Shard s) {
                             pp::PathPatchingOptions so = o;
                             so.shard = s;
                             return pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), so);
                           }).values,
                    senders.values));
    // Receivers: layer 0 has no cells (NaN in every share); the rest merge.
    pp::SweepResult r = merged(count, [&](pp::Shard s) {
      pp::PathPatchingOptions so = o;
      so.shard = s;
      return pp::sweep_receivers(m, clean(), corrupt(), {{0, 1}}, pp::Receiver::V, logit_diff(), so);
    });
    CHECK(r.filled == receivers.filled);
    CHECK(same_bits(r.values, receivers.values));
  }
}

TEST_CASE("a sweep stopped part-way resumes from its unit log to the same bits", "[sharding]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Sites sites;
  sites.names = {"z"};
  sites.positions = pp::SitePositions::Each;
  const pp::SweepResult one = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff())["z"];
  const fs::path dir = fresh_dir("resume");

  // The first run stops after three of its seven units (a failure inside the sweep).
  {
    pp::UnitLogFile log(dir, "z each gpt2", pp::Shard{});
    pp::PatchingOptions o;
    o.log = &log;
    int units = 0;
    o.progress = [&](size_t, size_t) {
      if (++units == 3) throw std::runtime_error("stopped");
    };
    CHECK_THROWS_WITH(pp::activation_patching(m, clean(), corrupt(), sites, logit_diff(), o), "stopped");
  }
  // The second reads those three back and computes the other four.
  pp::UnitLogFile log(dir, "z each gpt2", pp::Shard{});
  CHECK(log.resumed() == 3);
  pp::PatchingOptions o;
  o.log = &log;
  size_t computed = 0;
  o.progress = [&](size_t done, size_t) { computed = done; };
  const pp::SweepResult resumed = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff(), o)["z"];
  CHECK(computed == 4 * 2 * 4);  // four positions x 2 layers x 4 heads
  CHECK(same_bits(resumed.values, one.values));
  CHECK(same_bits(resumed.per_example, one.per_example));  // each row's value comes back too
  CHECK(resumed.filled == one.filled);

  // A third run of the same experiment finds everything done.
  pp::UnitLogFile again(dir, "z each gpt2", pp::Shard{2, 3});
  CHECK(again.resumed() == 7);
  fs::remove_all(dir);
}

TEST_CASE("a unit log refuses another experiment's folder and malformed lines, and skips a cut-off line",
          "[sharding][refuse]") {
  const fs::path dir = fresh_dir("log");
  {
    pp::UnitLogFile log(dir, "experiment A", pp::Shard{0, 2});
    log.record("z", 0, {{0, {0.5f, 1.5f}}, {1, {-1.25f, 0x1.8p-20f}}});
    log.record("z", 2, {{4, {std::nanf(""), 2.0f}}});
  }
  CHECK_THROWS_WITH(pp::UnitLogFile(dir, "experiment B", pp::Shard{}), Catch::Contains("another experiment"));
  // Values come back exactly (NaN too); a crash's cut-off line is dropped, and cut off for good.
  {
    std::ofstream f(dir / "units-0.log", std::ios::app);
    f << "z 5 1 3:0x1.8p+0,0x1p+0";  // no newline
  }
  {
    pp::UnitLogFile log(dir, "experiment A", pp::Shard{0, 2});
    CHECK(log.resumed() == 2);
    REQUIRE(log.finished("z", 0) != nullptr);
    CHECK(*log.finished("z", 0) == pp::UnitCells{{0, {0.5f, 1.5f}}, {1, {-1.25f, 0x1.8p-20f}}});
    CHECK(std::isnan(log.finished("z", 2)->at(0).rows[0]));
    CHECK(log.finished("z", 2)->at(0).rows[1] == 2.0f);
    CHECK(log.finished("z", 5) == nullptr);
    log.record("z", 6, {{7, {2.0f, 3.0f}}});
  }
  CHECK(pp::UnitLogFile(dir, "experiment A", pp::Shard{}).resumed() == 3);
  {
    std::ofstream f(dir / "units-1.log", std::ios::app);
    f << "z 1 2 3:0x1p+0,0x1p+1\n";  // says two cells, holds one
  }
  CHECK_THROWS_WITH(pp::UnitLogFile(dir, "experiment A", pp::Shard{}),
                    Catch::Contains("units-1.log:1") && Catch::Contains("says 2 cells, holds 1"));
  fs::remove_all(dir);

  // A log whose cells lie outside the sweep is refused when the sweep reads it.
  const fs::path other = fresh_dir("log-other");
  {
    pp::UnitLogFile log(other, "x", pp::Shard{});
    log.record("z", 0, {{9999, {1.0f, 1.0f}}});
  }
  pp::UnitLogFile log(other, "x", pp::Shard{});
  pp::Sites sites;
  sites.names = {"z"};
  sites.positions = pp::SitePositions::Each;
  pp::PatchingOptions o;
  o.log = &log;
  CHECK_THROWS_WITH(pp::activation_patching(pptest::model("gpt2"), clean(), corrupt(), sites, logit_diff(), o),
                    Catch::Contains("cell 9999 is outside"));
  fs::remove_all(other);
  // ... and so is one whose cells hold another batch's rows.
  const fs::path rows = fresh_dir("log-rows");
  {
    pp::UnitLogFile log3(rows, "x", pp::Shard{});
    log3.record("z", 0, {{0, {1.0f, 1.0f, 1.0f}}});
  }
  pp::UnitLogFile log3(rows, "x", pp::Shard{});
  o.log = &log3;
  CHECK_THROWS_WITH(pp::activation_patching(pptest::model("gpt2"), clean(), corrupt(), sites, logit_diff(), o),
                    Catch::Contains("cell 0 has 3 rows, the batch 2"));
  fs::remove_all(rows);
}
