#!/usr/bin/env bash
# Run a command as a machine of another CPU model and core count than the one the shipped profiles were measured on
# (issue 23): a private mount namespace puts another /proc/cpuinfo in place (where root allows it), and taskset
# gives the command one core. Used by .ci/run for the first-run tests, so a test that depends on the host's CPU
# cannot pass unseen. Usage: scripts/as_foreign_machine.sh COMMAND [ARGS...]
set -euo pipefail
fake="$(mktemp)"
trap 'rm -f "$fake"' EXIT
printf 'processor\t: 0\nmodel name\t: Foreign Test CPU (not the shipped profiles'"'"' machine)\n\n' > "$fake"
cores=(taskset -c 0)
if ! command -v taskset >/dev/null 2>&1; then cores=(); echo "as_foreign_machine: no taskset; the core count is the host's" >&2; fi
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 && unshare --mount true 2>/dev/null; then
    # shellcheck disable=SC2016
    exec unshare --mount bash -c 'mount --bind "$0" /proc/cpuinfo && grep -q "Foreign Test CPU" /proc/cpuinfo && exec "$@"' \
        "$fake" "${cores[@]}" "$@"
fi
echo "as_foreign_machine: no private mount namespace here (needs root); only the core count differs" >&2
exec "${cores[@]}" "$@"
