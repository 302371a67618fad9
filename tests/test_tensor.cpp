#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "graph/kernels.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;

TEST_CASE("shared tensors are read-only", "[tensor]") {
  pp::Tensor a({2, 3});
  REQUIRE(a.writable());
  a.data_mut()[0] = 1.0f;
  pp::Tensor b = a;  // a second handle on the same storage
  CHECK_FALSE(a.writable());
  CHECK_THROWS_AS(a.data_mut(), pp::InternalError);
  pp::Tensor c = b.clone();
  CHECK(c.writable());
  CHECK(pp::bit_equal(b, c));
}

TEST_CASE("slices and reshapes share storage", "[tensor]") {
  pp::Tensor a = pp::Tensor::from_vector({3, 2}, {0, 1, 2, 3, 4, 5});
  pp::Tensor s = a.slice0(1, 3);
  CHECK(s.shape() == pp::Shape{2, 2});
  CHECK(s.at({0, 0}) == 2.0f);
  CHECK(a.reshape({6}).at({5}) == 5.0f);
  CHECK_THROWS_AS(a.reshape({4}), pp::InternalError);
  CHECK_THROWS_AS(a.at({3, 0}), pp::InternalError);
  CHECK(pp::concat0({a, s}).shape() == pp::Shape{5, 2});
}

TEST_CASE("softmax ignores -inf and zeroes rows with nothing to attend to", "[kernels]") {
  float row[3] = {1.0f, -INFINITY, 1.0f};
  pp::kernels::softmax_row(row, 3);
  CHECK(row[0] == Approx(0.5f));
  CHECK(row[1] == 0.0f);
  float none[2] = {-INFINITY, -INFINITY};
  pp::kernels::softmax_row(none, 2);
  CHECK(none[0] == 0.0f);
  CHECK(none[1] == 0.0f);
  float large[2] = {1e30f, 1e30f};  // large logits stay finite
  pp::kernels::softmax_row(large, 2);
  CHECK(large[0] == Approx(0.5f));
}

TEST_CASE("f16 and bf16 decode exactly", "[safetensors]") {
  CHECK(pp::f16_to_f32(0x3c00) == 1.0f);
  CHECK(pp::f16_to_f32(0xc000) == -2.0f);
  CHECK(pp::f16_to_f32(0x0001) == Approx(5.960464477539063e-08f));  // smallest subnormal
  CHECK(pp::f16_to_f32(0x7bff) == 65504.0f);                       // largest normal
  CHECK(std::isinf(pp::f16_to_f32(0x7c00)));
  CHECK(std::isnan(pp::f16_to_f32(0x7e00)));
  CHECK(pp::bf16_to_f32(0x3f80) == 1.0f);
  CHECK(pp::bf16_to_f32(0x7f7f) == Approx(3.3895313892515355e38f));
}

TEST_CASE("the buffer pool reuses a larger idle buffer and never holds more than its limit", "[tensor]") {
  const size_t limit = 1 << 20, saved = pp::buffer_pool_limit();
  pp::set_buffer_pool_limit(0);  // start empty
  pp::set_buffer_pool_limit(limit);
  const float* first = nullptr;
  {
    pp::Tensor a({100'000});  // 400 kB
    first = a.data();
  }
  const size_t idle = pp::buffer_pool_idle_bytes();
  CHECK(idle >= 400'000);
  CHECK(idle <= 404'096);  // rounded up to whole pages
  {
    pp::Tensor b({90'000});  // a smaller shape reuses the idle buffer
    CHECK(b.data() == first);
    CHECK(pp::buffer_pool_idle_bytes() == 0);
  }
  {
    // Three buffers of 400 kB cannot all stay idle under 1 MiB: the oldest goes first.
    pp::Tensor c({100'000}), d({100'000}), e({100'000});
  }
  CHECK(pp::buffer_pool_idle_bytes() <= limit);
  CHECK(pp::buffer_pool_idle_bytes() >= 2 * 400'000);
  {
    pp::Tensor huge({1 << 20});  // 4 MiB: larger than the limit, never kept
  }
  CHECK(pp::buffer_pool_idle_bytes() <= limit);
  pp::set_buffer_pool_limit(saved);
}
