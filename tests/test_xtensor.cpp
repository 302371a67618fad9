// pathpatch/xtensor.hpp: tensors as xtensor arrays without a copy, and expressions back.
#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"
#include "pathpatch/xtensor.hpp"

namespace pp = pathpatch;

TEST_CASE("xview reads a tensor in place, and outlives it; to_tensor brings an expression back", "[xtensor]") {
  const float* where = nullptr;
  auto view = [&] {
    const pp::Tensor t = pp::Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
    where = t.data();
    return pp::xview(t);
  }();  // the Tensor is gone; the view keeps its storage
  CHECK(view.data() == where);
  CHECK(view.shape()[0] == 2);
  CHECK(view(1, 2) == 6.0f);
  CHECK(xt::sum(view)() == 21.0f);
  const pp::Tensor cols = pp::to_tensor(xt::sum(view, {0}));
  CHECK(cols.shape() == pp::Shape{3});
  CHECK(cols.at({0}) == 5.0f);
  CHECK(cols.at({2}) == 9.0f);
  const pp::Tensor row = pp::to_tensor(xt::view(view, 1, xt::all()) * 2.0f);
  CHECK(row.at({1}) == 10.0f);

  // On a forward: the mean of z over the batch, as a set() intervention reads it.
  const pp::Model& m = pptest::model("gpt2");
  const pp::Batch batch = pp::Batch::from_rows({{3, 14, 15}, {9, 26, 53}});
  pp::RunOptions o;
  o.interventions = {pp::probe("blocks.0.attn.hook_z")};
  const pp::Result r = pp::forward(m, batch, o);
  const pp::Tensor& z = r.probe("blocks.0.attn.hook_z");
  const pp::Tensor mean = pp::to_tensor(xt::mean(pp::xview(z), {0}));  // [T, H, E]
  REQUIRE(mean.shape() == pp::Shape(z.shape().begin() + 1, z.shape().end()));
  CHECK(mean.at({2, 1, 3}) == Approx((z.at({0, 2, 1, 3}) + z.at({1, 2, 1, 3})) / 2));
}
