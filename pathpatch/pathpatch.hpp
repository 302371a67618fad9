#pragma once
// Everything a user of pathpatch needs, in one include.
#include "graph/batch.hpp"
#include "graph/error.hpp"
#include "graph/intervention.hpp"
#include "graph/path.hpp"
#include "graph/tensor.hpp"
#include "models/config.hpp"
#include "models/model.hpp"
#include "models/tokenizer.hpp"
#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"
#include "pathpatch/rules.hpp"
#include "pathpatch/run.hpp"
