#!/usr/bin/env bash
# Builds a Docker engine from its Go module, with the containerd and runc it
# ships with, into a cache outside the repository, and prints the directory
# that holds the binaries. A build that finished is kept and reused until the
# version changes; one that did not is thrown away.
#
#   test/engine/build.sh v2.0.0-beta.24   # Docker 29.8.0
#
# Needs Go, gcc and libseccomp-dev (runc is built with cgo for seccomp).
# HMD_ENGINE_CACHE overrides the cache directory.
set -euo pipefail

mod=${1:?usage: build.sh MOBY_V2_MODULE_VERSION (such as v2.0.0-beta.24)}
cache=${HMD_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healmydocker/engines}
out=$cache/moby-$mod
if [ -f "$out/done" ]; then
	echo "$out/bin"
	exit 0
fi
# One build at a time per version; who waited finds it done.
mkdir -p "$cache"
exec 9>"$out.lock"
flock 9
if [ -f "$out/done" ]; then
	echo "$out/bin"
	exit 0
fi

say() { echo "engine build: $*" >&2; }
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out"
tmp=$out.tmp.$$
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"

# The Docker release the module is, from the module itself.
say "moby/v2 $mod: fetching the module"
dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/moby/moby/v2@$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { say "FAIL: could not fetch github.com/moby/moby/v2@$mod"; exit 1; }
version=$(sed -n 's/^ *last: "\(.*\)"$/\1/p' "$dir/releases/versions.yaml" 2>/dev/null | head -1)
[ -n "$version" ] || { say "FAIL: $mod has no releases/versions.yaml naming its Docker release"; exit 1; }
# What the release ships with (its Dockerfile pins them for static builds).
containerd=$(sed -n 's/^ARG CONTAINERD_VERSION=\(v[0-9.]*\)$/\1/p' "$dir/Dockerfile" | head -1)
runc=$(sed -n 's/^ARG RUNC_VERSION=\(v[0-9.]*\)$/\1/p' "$dir/Dockerfile" | head -1)
[ -n "$containerd" ] && [ -n "$runc" ] || { say "FAIL: no containerd/runc version in $mod's Dockerfile"; exit 1; }
say "Docker $version, containerd $containerd, runc $runc"

export GOBIN=$tmp/bin GOFLAGS=-trimpath
say "dockerd, docker-proxy"
CGO_ENABLED=0 go install \
	-tags 'exclude_graphdriver_btrfs exclude_graphdriver_devicemapper exclude_graphdriver_zfs netgo osusergo static_build nri_no_wasm' \
	-ldflags "-X github.com/moby/moby/v2/dockerversion.Version=$version -X github.com/moby/moby/v2/dockerversion.GitCommit=$mod" \
	"github.com/moby/moby/v2/cmd/dockerd@$mod" "github.com/moby/moby/v2/cmd/docker-proxy@$mod"
say "containerd, containerd-shim-runc-v2"
CGO_ENABLED=0 go install -tags no_btrfs \
	"github.com/containerd/containerd/v2/cmd/containerd@$containerd" \
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$containerd"
say "runc (cgo, seccomp)"
CGO_ENABLED=1 go install -tags 'seccomp urfave_cli_no_docs' "github.com/opencontainers/runc@$runc"

printf 'docker=%s\nmodule=%s\ncontainerd=%s\nrunc=%s\n' "$version" "$mod" "$containerd" "$runc" >"$tmp/versions"
mv "$tmp/bin" "$tmp/versions" "$out/"
touch "$out/done"
say "built in $(($(date +%s) - start))s into $out"
echo "$out/bin"
