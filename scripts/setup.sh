#!/usr/bin/env bash
# Installs the Debian 12 packages pathpatch needs to build, test and run. Idempotent: prints
# nothing and changes nothing when everything is already there.
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev libeigen3-dev nlohmann-json3-dev libpcre2-dev libcli11-dev libxtensor-dev
  libgraphviz-dev graphviz libsentencepiece-dev catch2
  libopenmpi-dev openmpi-bin
  # The Python module (python/) and its tests.
  pybind11-dev python3-dev python3-numpy python3-pytest
)
# Only the fuzzing and sanitizer builds need these (scripts/fuzz.sh, the asan preset).
extra_packages=(clang libclang-rt-14-dev)
# Only the scripts in tools/ (golden files, zoo training) and bench/'s PyTorch baselines need these;
# never the build.
torch_packages=(python3-torch python3-sentencepiece sentencepiece)

want=("${build_packages[@]}")
case "${1:-}" in
  --with-extras) want+=("${extra_packages[@]}") ;;
  --with-torch|--with-python) want+=("${extra_packages[@]}" "${torch_packages[@]}") ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--with-extras|--with-torch]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# tools/ also runs node (the GPT-2 tokenizer's reference ids); any install of node with npm will do.
case "${1:-}" in --with-torch|--with-python) command -v npm >/dev/null || missing+=(nodejs npm) ;; esac
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
