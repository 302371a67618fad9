// Loads the installed zoo's induction model through the installed headers and library, runs a
// two-input experiment, and checks what any correct build must print: with every path reading
// the clean input the result equals the plain forward.
#include <cmath>
#include <cstdio>
#include <pathpatch/pathpatch.hpp>

namespace pp = pathpatch;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer ZOO_MODEL_DIR\n");
    return 2;
  }
  pp::Model model = pp::load_model(argv[1]);
  pp::Batch clean = pp::Batch::from_rows({{50256, 10001, 10002, 10003, 10001, 10002}});
  pp::Batch other = pp::Batch::from_rows({{50256, 20001, 20002, 20003, 20001, 20002}});
  auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
  auto which = [](const pp::Path&) { return 0; };
  pp::Result r = pp::run(model, {clean, other}, which, branch);
  pp::Tensor plain = pp::forward(model, clean).logits;
  float worst = 0;
  for (int64_t i = 0; i < plain.numel(); ++i) worst = std::fmax(worst, std::fabs(plain.data()[i] - r.logits.data()[i]));
  std::printf("consumer: %s, %lld logits, max |run - forward| = %g\n", model.config().family_name(),
              static_cast<long long>(plain.numel()), worst);
  return worst == 0 ? 0 : 1;
}
