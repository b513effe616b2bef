#!/usr/bin/env bash
# Install llama-cpp-python built for any x86-64 CPU with AVX2, never for the build machine's CPU.
#
# pip builds llama-cpp-python from source with llama.cpp's default GGML_NATIVE=ON, which compiles
# in every instruction the build CPU has (AVX-512, AMX...): the library then dies with SIGILL on
# a CPU or VM without them. pip also caches the first wheel it built and reuses it whatever
# CMAKE_ARGS says. So the portable wheel is built once, with pip's cache bypassed, into a
# wheelhouse of our own whose name carries the version and the flags, and installed from there.
#
# Usage: scripts/install-llama-cpp.sh PIP VERSION
set -euo pipefail
pip=$1
version=$2
case "$(uname -m)" in
  x86_64|amd64)
    flavour=x86-64-avx2
    cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    ;;
  *)
    flavour="$(uname -m)-generic"
    cmake_args="-DGGML_NATIVE=OFF"
    ;;
esac
wheelhouse="${STEERLM_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/steerlm-integrations/wheels}/llama-cpp-python-$version-$flavour"
if ! ls "$wheelhouse"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $version for $flavour (once per machine; about 6 minutes on 2 cores)..."
  mkdir -p "$wheelhouse.tmp"
  CMAKE_ARGS="$cmake_args" FORCE_CMAKE=1 "$pip" wheel --quiet --no-deps --no-cache-dir \
    --no-binary llama-cpp-python --wheel-dir "$wheelhouse.tmp" "llama-cpp-python==$version"
  rm -rf "$wheelhouse" && mv "$wheelhouse.tmp" "$wheelhouse"
fi
# --only-binary: take our wheel, never an sdist (PyPI has no wheels, so pip cannot build another).
# The second call replaces a llama-cpp-python of the same version that is already installed.
"$pip" install --quiet --only-binary llama-cpp-python --find-links "$wheelhouse" "llama-cpp-python==$version"
"$pip" install --quiet --force-reinstall --no-deps --only-binary llama-cpp-python \
  --find-links "$wheelhouse" "llama-cpp-python==$version"
