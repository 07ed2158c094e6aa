#!/bin/sh
# The Debian packages `make test` needs, installed when missing.
#
# As root (CI, a fresh container) the missing ones are installed with apt-get; as any
# other user the one exact command to run is printed and the script fails, so that
# pytest never starts on a machine that would turn missing servers into errors.
#
# Each line of the table: a check that succeeds when the package is present, then the
# package.  The tests start these servers themselves on free loopback ports.
set -eu

missing=""
have_postgres() {  # Debian's server binaries, of any version (they are not on PATH)
    for server in /usr/lib/postgresql/*/bin/postgres; do
        if [ -x "$server" ]; then
            return 0
        fi
    done
    return 1
}

need() {  # need PACKAGE CHECK...
    package=$1
    shift
    if ! "$@" >/dev/null 2>&1; then
        missing="$missing $package"
    fi
}

need nodejs        command -v node
need npm           command -v npm
need python3-venv  python3 -c 'import venv, ensurepip'
need chromium      test -x /usr/bin/chromium          # the browser tests drive Debian's Chromium
need redis-server  command -v redis-server            # shared-session, lock and refresh tests
need redis-tools   command -v redis-cli               # the Cluster tests (redis-cli --cluster create, reshard)
need redis-sentinel command -v redis-sentinel         # the Sentinel failover test (a package of its own)
need memcached     command -v memcached
need tinyproxy     command -v tinyproxy               # the egress proxy tests (http_proxy)
need postgresql    have_postgres                      # the postgresql store's tests (initdb, pg_ctl)

if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "make test needs these Debian packages; install them, then run make test again:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q $missing
