#!/bin/sh
# Cargo runner for aarch64-apple-darwin (see .cargo/config.toml): signs the binary ad hoc with the debugger
# entitlements and runs it as root, which is what taking another process's task port needs without an
# authorization prompt (mach-task/README.md explains why).
#
#   scripts/mac-runner.sh BINARY [ARGS...]
#
# HCR_RUNNER_NO_SUDO=1 runs the signed binary as the current user instead: enough on a Mac with
# `sudo DevToolsSecurity -enable` and the user in the _developer group, though the first use may still prompt.
set -eu

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BINARY [ARGS...]" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
# Never --options runtime: the hardened runtime would make modified code pages fatal (CS_KILL).
codesign --force --sign - --entitlements "$here/debug.entitlements" "$1"

if [ "$(id -u)" = 0 ] || [ "${HCR_RUNNER_NO_SUDO:-0}" = 1 ]; then
    exec "$@"
fi

# Keep PATH and HOME so that a program that runs cargo or the toolchain (xtask) finds the user's.
status=0
sudo -E env "PATH=$PATH" "HOME=$HOME" "$@" || status=$?

# Whatever the program created as root in the target directory goes back to the user, so that the next cargo
# run can overwrite it.
target=${CARGO_TARGET_DIR:-$(cd "$here/.." && pwd)/target}
if [ -d "$target" ]; then
    sudo chown -R "$(id -u):$(id -g)" "$target" || true
fi
exit "$status"
