#!/usr/bin/env bash
# The GPU suite (docs/benchmarks.md, "GPU suite"); the work is done by benchmarks/gpu_suite.py.
#
#   bash benchmarks/gpu_suite.sh --prepare                     # with network: fetch the wheels the GPU image lacks
#   bash benchmarks/gpu_suite.sh [--tiny] [--out DIR] [...]    # the run (other options go to gpu_suite.py)
#
# --prepare downloads CPython 3.12 manylinux x86_64 wheels into .gpu_wheels/ (ignored by git; carry it along with
# the working tree): numpy 2.4 (numba-cuda 0.30 fails to compile with numpy 2.5), diffusers and the one package
# diffusers needs that the image lacks (importlib_metadata), and platformdirs.  The run installs those wheels into
# a temporary folder put first on PYTHONPATH (before the repository root), points the diffsolve, Numba and inductor
# caches at temporary folders, prints the machine, then runs gpu_suite.py under a hard timeout.  --tiny uses the
# current environment (no wheels, its Numba cache): Numba's CUDA simulator and torch on the CPU.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="$ROOT/.gpu_wheels"
PACKAGES=("numpy>=2.4,<2.5" "diffusers==0.42.1" "importlib_metadata>=4" "platformdirs>=4")
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
LIMIT_MIB=48  # wheels + working tree; what travels to the GPU machine is limited to 64 MiB
SHOWN="numpy|numba|numba-cuda|llvmlite|torch|diffusers|scipy|sympy|filelock|huggingface.hub|importlib.metadata"
SHOWN+="|platformdirs|tqdm|tabulate|pytest|pytest-timeout"  # the versions printed before the run

if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"
else PY=python3
fi

mib() { echo $(( ($1 + 1048575) / 1048576 )); }

prepare() {
    local plat=() p exclude wheels tree
    for p in "${PLATFORMS[@]}"; do plat+=(--platform "$p"); done
    mkdir -p "$WHEELS" && rm -f "$WHEELS"/*.whl  # one version of each package: two stop the install there
    "$PY" -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 --implementation cp "${plat[@]}" \
        -d "$WHEELS" "${PACKAGES[@]}" || { echo "gpu_suite.sh: pip download failed" >&2; return 1; }
    exclude="$(cd "$ROOT" && git rev-parse --path-format=absolute --git-path info/exclude)" || return 1
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "/.gpu_wheels/" "$exclude" 2>/dev/null || echo "/.gpu_wheels/" >>"$exclude"
    wheels=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
    tree=$(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    ls -1 "$WHEELS"
    echo "wheels $(mib "$wheels") MiB + working tree $(mib "$tree") MiB (limit ${LIMIT_MIB} MiB of the 64 MiB that travel)"
    if (( wheels + tree > LIMIT_MIB * 1048576 )); then echo "gpu_suite.sh: too large to carry" >&2; return 1; fi
    echo 'on the GPU machine: bash benchmarks/gpu_suite.sh --out $OUT   (carry [".gpu_wheels"])'
}

run() {
    local tiny=0 out="${TMPDIR:-/tmp}/diffsolve-gpu-suite" budget="" args=() rc
    while (( $# )); do
        case "$1" in
            --tiny) tiny=1; args+=("$1") ;;
            --out) out="$2"; shift ;;
            --budget) budget="${2%.*}"; args+=("$1" "$2"); shift ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    [[ -n "$budget" ]] || budget=$(( tiny ? 720 : 435 ))  # gpu_suite.py's default: its steps' timeouts
    mkdir -p "$out" || return 1
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/diffsolve-gpu.XXXXXX")" || return 1  # global: the EXIT trap removes it
    trap 'rm -rf "$tmp"' EXIT
    if (( ! tiny )); then
        if compgen -G "$WHEELS/*.whl" >/dev/null; then
            timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --target "$tmp/site" "$WHEELS"/*.whl \
                || echo "gpu_suite.sh: installing the carried wheels failed; the image's packages are used" >&2
            export PYTHONPATH="$tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
        else
            echo "gpu_suite.sh: no wheels in .gpu_wheels/ (run --prepare where there is network and carry .gpu_wheels)" >&2
            export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
        fi
    else
        export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export DIFFSOLVE_CACHE_DIR="$tmp/diffsolve-cache" TORCHINDUCTOR_CACHE_DIR="$tmp/inductor-cache" PYTHONUNBUFFERED=1
    (( tiny )) || export NUMBA_CACHE_DIR="$tmp/numba-cache"  # --tiny keeps this environment's compiled kernels
    {
        echo "== gpu_suite.sh $(date -u +%FT%TZ) on $(hostname): $PY ($("$PY" --version 2>&1)), PYTHONPATH=$PYTHONPATH"
        if command -v nvidia-smi >/dev/null; then timeout 20 nvidia-smi || echo "nvidia-smi failed"
        else echo "no nvidia-smi"; fi
        timeout 60 "$PY" -m pip list 2>/dev/null | grep -iE "^($SHOWN) " || true
        timeout -k 10 $(( budget + 30 )) "$PY" "$ROOT/benchmarks/gpu_suite.py" --out "$out" "${args[@]}"
        echo "gpu_suite.py exit status $?"
    } 2>&1 | tee "$out/gpu_suite.log"
    rc=$(tail -1 "$out/gpu_suite.log" | grep -oE '[0-9]+$')
    return "${rc:-1}"
}

if [[ "${1:-}" == "--prepare" ]]; then prepare; else run "$@"; fi
