#!/usr/bin/env bash
# make test-engines: the end-to-end cases that touch the engine, run against
# a private daemon of another Docker engine (built by build.sh, cached),
# beside the system engine and without touching it. The test code is the
# same as for the system engine: HMD_TEST_ENGINE makes test/dockertest start
# the private daemon and point DOCKER_HOST at it.
#
#   test/engine/run.sh MOBY_V2_MODULE_VERSION [go test flags...]
#
# Every private daemon of the run keeps its state in one fresh directory,
# swept (processes, mounts, files) when the run ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
mod=${1:?usage: run.sh MOBY_V2_MODULE_VERSION [go test flags...]}
shift

# Pinned, so CI is reproducible; say when a newer one is out.
latest=$(cd /tmp && timeout 30 go list -m -f '{{.Version}}' "github.com/moby/moby/v2@latest" 2>/dev/null || true)
if [ -n "$latest" ] && [ "$latest" != "$mod" ]; then
	echo "note: the module proxy's newest moby/v2 is $latest, these tests build $mod (DOCKER29 in the Makefile)"
fi

t0=$(date +%s)
bin=$(test/engine/build.sh "$mod")
t1=$(date +%s)
echo "engine: $(tr '\n' ' ' <"$bin/../versions")($((t1 - t0))s to build or find in the cache)"

# Short: the daemons' sockets live under it.
run=$(mktemp -d /tmp/hmde.XXXXXX)
sweep() {
	code=$?
	go run ./test/engine/sweep "$run" || code=1
	echo "test-engines: $(($(date +%s) - t1))s of tests"
	exit $code
}
trap sweep EXIT
trap 'exit 130' INT TERM

HMD_TEST_ENGINE=$bin HMD_TEST_RUNDIR=$run go test "$@" ./test/e2e
