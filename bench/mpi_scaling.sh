#!/usr/bin/env bash
# Throughput of sweep (c) on 1 process x 1 BLAS thread against 2 processes x 1 thread, in the
# same run (build/bench/bench_mpi; needs the build with MPI).
#   bench/mpi_scaling.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
export OMPI_MCA_rmaps_base_oversubscribe=1
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "OpenBLAS: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
one=$(mpirun -np 1 "$build/bench/bench_mpi")
echo "$one"
two=$(mpirun -np 2 --bind-to core "$build/bench/bench_mpi")
echo "$two"
rate() { sed -n 's/.*experiments_per_s=\([0-9.]*\).*/\1/p' <<<"$1"; }
awk -v a="$(rate "$one")" -v b="$(rate "$two")" 'BEGIN { printf "2 processes / 1 process: %.2fx the throughput (aim: 1.8x)\n", b / a }'
