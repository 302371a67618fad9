// The safetensors reader refuses every malformed file with a FormatError naming file and tensor.
#include <catch2/catch.hpp>
#include <fstream>

#include "helpers.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

fs::path temp_file(const std::string& name) { return fs::temp_directory_path() / ("pathpatch_test_" + name); }

// A file from a header text and `data_bytes` bytes of data.
fs::path write_raw(const std::string& name, const std::string& header, size_t data_bytes, uint64_t claimed_len = 0) {
  fs::path p = temp_file(name);
  std::ofstream out(p, std::ios::binary);
  uint64_t n = claimed_len ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header;
  out << std::string(data_bytes, '\0');
  return p;
}

std::string message_of(const fs::path& p) {
  try {
    pp::SafetensorsFile::open(p);
  } catch (const pp::FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("safetensors round trip", "[safetensors]") {
  fs::path p = temp_file("roundtrip.safetensors");
  pp::Tensor a = pp::Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  pp::write_safetensors(p, {{"a", a}, {"b", pp::Tensor::full({4}, 7.0f)}}, {{"k", "v"}});
  auto f = pp::SafetensorsFile::open(p);
  CHECK(pp::bit_equal(f.load("a"), a));
  CHECK(f.load("b").at({3}) == 7.0f);
  CHECK(f.metadata().at("k") == "v");
  CHECK_THROWS_AS(f.load("c"), pp::WeightError);
}

TEST_CASE("malformed safetensors files are refused with what and where", "[safetensors][refuse]") {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

  SECTION("file shorter than the length prefix") {
    fs::path p = temp_file("tiny");
    std::ofstream(p) << "abc";
    CHECK_THROWS_WITH(pp::SafetensorsFile::open(p), Catch::Contains("too short"));
  }
  SECTION("header length past the end") {
    CHECK_THAT(message_of(write_raw("hdrlen", ok, 8, 1000)), Catch::Contains("runs past the end"));
  }
  SECTION("truncated data") {
    CHECK_THAT(message_of(write_raw("trunc", ok, 4)), Catch::Contains("'w'") && Catch::Contains("truncated"));
  }
  SECTION("bytes that do not match shape x dtype") {
    std::string h = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
    CHECK_THAT(message_of(write_raw("size", h, 8)), Catch::Contains("needs 12"));
  }
  SECTION("overlapping tensors") {
    std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    CHECK_THAT(message_of(write_raw("overlap", h, 12)), Catch::Contains("overlap"));
  }
  SECTION("unknown dtype") {
    std::string h = R"({"w":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})";
    CHECK_THAT(message_of(write_raw("dtype", h, 8)), Catch::Contains("unknown dtype 'F12'"));
  }
  SECTION("header that is not JSON") {
    CHECK_THAT(message_of(write_raw("json", "{not json", 0)), Catch::Contains("not valid JSON"));
  }
  SECTION("negative shape") {
    std::string h = R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})";
    CHECK_THAT(message_of(write_raw("neg", h, 8)), Catch::Contains("non-negative"));
  }
  SECTION("begin after end") {
    std::string h = R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})";
    CHECK_THAT(message_of(write_raw("order", h, 8)), Catch::Contains("begin > end"));
  }
  SECTION("metadata and trailing bytes are tolerated") {
    std::string h = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    auto f = pp::SafetensorsFile::open(write_raw("meta", h, 16));
    CHECK(f.metadata().at("format") == "pt");
  }
  SECTION("an integer dtype is readable in the header but not as a weight") {
    std::string h = R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
    auto f = pp::SafetensorsFile::open(write_raw("i64", h, 8));
    CHECK_THROWS_WITH(f.load("w"), Catch::Contains("I64") && Catch::Contains("F32, F16 and BF16"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_AS(pp::SafetensorsFile::open(temp_file("does-not-exist")), pp::IoError);
  }
}
