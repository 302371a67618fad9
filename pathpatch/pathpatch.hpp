#pragma once
// Everything a user of pathpatch needs, in one include.
#include "pathpatch/graph/batch.hpp"
#include "pathpatch/graph/error.hpp"
#include "pathpatch/graph/intervention.hpp"
#include "pathpatch/graph/path.hpp"
#include "pathpatch/graph/tensor.hpp"
#include "pathpatch/models/config.hpp"
#include "pathpatch/models/model.hpp"
#include "pathpatch/models/tokenizer.hpp"
#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"
#include "pathpatch/rules.hpp"
#include "pathpatch/run.hpp"
