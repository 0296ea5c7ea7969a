#!/usr/bin/env bash
# Builds the project's two container images with no container-registry pulls:
#
#   localhost/mayastor:TAG       the io-engine, core agent, CSI controller plugin and
#                                DiskPool operator (every command of the project)
#   localhost/mayastor-node:TAG  the same plus nvme-cli, e2fsprogs, xfsprogs, btrfs-progs
#                                and util-linux: the CSI node plugin and the ha-node agent
#
# A Debian root file system made by mmdebstrap (Debian's packages only) is imported into
# podman as localhost/mayastor-base; on it the project's wheel and the pinned dependencies
# it names (wheels fetched from PyPI by this machine's pip) are installed into
# /opt/mayastor, and the node image adds its Debian packages with apt. TAG defaults to the project's
# version (the Helm chart's appVersion). Safe to run again: an image whose inputs have not
# changed (a hash of the wheel, this script and the Debian suite, kept as an image label)
# is kept as it is.
#
#   deploy/images/build.sh [--tag TAG] [--suite SUITE] [--quiet]
#
# Needs root, mmdebstrap and podman (Debian packages). podman runs with runc and the
# cgroupfs manager (crun does not run containers on every machine); PODMAN_FLAGS adds to
# that. Load the images into each node's container runtime (podman save | ctr import) or
# push them to a registry of yours and set the chart's image.registry.
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
SUITE=bookworm
QUIET=0
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=$2; shift 2 ;;
        --suite) SUITE=$2; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        *) echo "usage: $0 [--tag TAG] [--suite SUITE] [--quiet]" >&2; exit 2 ;;
    esac
done

PYTHON=${PYTHON:-.venv/bin/python}
read -r -a EXTRA <<< "${PODMAN_FLAGS:-}"
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs "${EXTRA[@]}")
# runc sets the limits it is given and fails where they are higher than the machine
# allows (podman's defaults are, on some): pass this shell's open files and a modest
# process count.
nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
NODE_DEBS="nvme-cli e2fsprogs xfsprogs btrfs-progs util-linux kmod"

say() { [ "$QUIET" = 1 ] || echo "images: $*"; }
for tool in mmdebstrap podman; do
    command -v "$tool" >/dev/null || { echo "images: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

label_of() {  # IMAGE -> the inputs hash it was built from (empty when there is none)
    "${PODMAN[@]}" image inspect --format '{{ index .Labels "io.openebs.mayastor.inputs" }}' "$1" 2>/dev/null || true
}

# The project's wheel, and the wheels of the pinned dependencies it names, fetched from
# PyPI here (with this machine's pip settings and certificates); the image build then
# installs from these files only.
# (from a copy of the sources: setuptools' build/ folder may hold files removed since)
mkdir "$work/src"
tar -c --exclude=__pycache__ pyproject.toml README.md src | tar -x -C "$work/src"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --disable-pip-version-check \
    -w "$work/own" "$work/src" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
wheel=$(ls "$work"/own/*.whl)
mkdir -p "$work/wheels"
cp "$wheel" "$work/wheels/"
script_hash=$(cat "$0" | sha256sum | cut -c1-16)
# A wheel's zip carries build times: hash its files' contents instead.
wheel_hash=$("$PYTHON" - "$wheel" <<'PY'
import hashlib, sys, zipfile
digest = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as zf:
    for name in sorted(zf.namelist()):
        digest.update(name.encode() + b"\0" + zf.read(name))
print(digest.hexdigest()[:16])
PY
)

ROOTFS_DEBS=python3,python3-venv,ca-certificates
base=localhost/mayastor-base:$SUITE
base_inputs="$SUITE-$(echo "$ROOTFS_DEBS" | sha256sum | cut -c1-16)"
if [ "$(label_of "$base")" != "$base_inputs" ]; then
    say "making the $SUITE root file system with mmdebstrap"
    mmdebstrap --quiet --variant=minbase --include="$ROOTFS_DEBS" \
        --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
        "$SUITE" "$work/rootfs.tar" >/dev/null
    "${PODMAN[@]}" import --quiet \
        --change "LABEL io.openebs.mayastor.inputs=$base_inputs" \
        --change 'CMD ["/bin/bash"]' \
        "$work/rootfs.tar" "$base" >/dev/null
fi

inputs="$base_inputs-$script_hash-$wheel_hash"
fetch_wheels() {
    say "fetching the wheels of the project's dependencies"
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-build-isolation \
        -w "$work/wheels" "$wheel" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
}
cat > "$work/Containerfile.mayastor" <<EOF
FROM $base
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/mayastor \\
 && /opt/mayastor/bin/pip install --no-cache-dir --disable-pip-version-check -q \\
        --no-index --find-links /tmp/wheels mayastor \\
 && rm -rf /tmp/wheels
ENV PATH=/opt/mayastor/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONUNBUFFERED=1
LABEL io.openebs.mayastor.inputs=$inputs
CMD ["mayastor", "--help"]
EOF
cat > "$work/Containerfile.node" <<EOF
FROM localhost/mayastor:$TAG
RUN apt-get update -q >/dev/null \\
 && (DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $NODE_DEBS \\
        >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }) \\
 && rm /tmp/apt.log \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
LABEL io.openebs.mayastor.inputs=$inputs
CMD ["mayastor-csi-node", "--help"]
EOF

for image in mayastor node; do
    name=localhost/mayastor:$TAG
    [ "$image" = node ] && name=localhost/mayastor-node:$TAG
    if [ "$(label_of "$name")" = "$inputs" ]; then
        say "$name is up to date"
        continue
    fi
    [ "$image" = mayastor ] && fetch_wheels
    say "building $name"
    "${PODMAN[@]}" build --quiet --layers=false --network host "${ULIMITS[@]}" \
        -f "$work/Containerfile.$image" -t "$name" "$work" >/dev/null
done
# Earlier builds of ours that no tag names any more.
"${PODMAN[@]}" image prune --force --filter label=io.openebs.mayastor.inputs >/dev/null
say "done: localhost/mayastor:$TAG localhost/mayastor-node:$TAG"
