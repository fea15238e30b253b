#!/bin/sh
# Makes sure the system packages that the offline integration-test path needs are present:
#   chromium     the headless browser that drives code-server's web workbench
#   ripgrep      seeds @vscode/ripgrep's download cache while code-server installs
#   libkrb5-dev  headers for code-server's native `kerberos` module
#   g++ make python3  node-gyp's toolchain for the native modules (already on most CI images)
# With --run-only, checks only what running an installed code-server needs (the browser).
# Installs the missing ones with apt-get when running as root on Debian (or a derivative);
# otherwise says what is missing and exits 1. Does nothing when everything is there.
set -eu

run_only=false
[ "${1:-}" = --run-only ] && run_only=true

missing=""
need() { missing="$missing $1"; }

if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || { echo "ensure-system-deps: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file." >&2; exit 1; }
else
  command -v chromium >/dev/null 2>&1 || need chromium
fi
if ! $run_only; then
  command -v rg >/dev/null 2>&1 || need ripgrep
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -s libkrb5-dev >/dev/null 2>&1 || need libkrb5-dev
  else
    command -v krb5-config >/dev/null 2>&1 || need libkrb5-dev
  fi
  command -v g++ >/dev/null 2>&1 || need g++
  command -v make >/dev/null 2>&1 || need make
  command -v python3 >/dev/null 2>&1 || need python3
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-deps: missing system packages:$missing" >&2
  echo "VS Code integration tests without internet need them (code-server + headless Chromium)." >&2
  echo "Install them as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
  echo "or run the tests on a machine that can download desktop VS Code." >&2
  exit 1
fi

echo "ensure-system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get update && apt-get install -y --no-install-recommends $missing
