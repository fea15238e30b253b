#!/bin/sh
# Installs code-server (the VS Code 1.100.3 server and web workbench) from the npm registry into
# .vscode-test/code-server, so integration tests can run in a real VS Code on machines that can reach
# only the npm registry (no update.code.visualstudio.com, no GitHub, no nodejs.org).
#
# Usage: scripts/vscode-tests/install-code-server.sh [install dir]   (default: .vscode-test/code-server)
# Needs: Node 20 (code-server 4.100.3's postinstall rejects other majors), g++, make, python3,
#        libkrb5-dev and ripgrep; scripts/vscode-tests/ensure-system-deps.sh installs them.
# Does nothing when that version is already installed there.
set -eu

CS_VERSION=4.100.3 # newest code-server whose postinstall accepts Node 20 (4.103+ need Node 22)
DEST=${1:-.vscode-test/code-server}
MARKER="$DEST/.installed-version"

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$CS_VERSION" ] \
  && [ -f "$DEST/node_modules/code-server/out/node/entry.js" ]; then
  echo "code-server $CS_VERSION already installed in $DEST"
  exit 0
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" != 20 ]; then
  echo "install-code-server: code-server $CS_VERSION installs only under Node 20, this is Node $(node --version)." >&2
  echo "Use Node 20, or run on a machine that can download desktop VS Code." >&2
  exit 1
fi
if ! command -v rg >/dev/null 2>&1; then
  echo "install-code-server: ripgrep (rg) is missing; run scripts/vscode-tests/ensure-system-deps.sh first." >&2
  exit 1
fi

# @vscode/ripgrep's postinstall downloads rg from GitHub unless its download cache (in os.tmpdir())
# already holds the archive; seed that cache with the system's rg under the name it looks for.
case $(node -p process.arch) in
  x64) RG_TARGET=x86_64-unknown-linux-musl ;;
  arm64) RG_TARGET=aarch64-unknown-linux-musl ;;
  *) echo "install-code-server: no ripgrep cache name known for $(node -p process.arch)" >&2; exit 1 ;;
esac
RG_CACHE="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11" # @vscode/ripgrep 1.15.11 fetches ripgrep v13.0.0-10
RG_ARCHIVE="$RG_CACHE/ripgrep-v13.0.0-10-$RG_TARGET.tar.gz"
mkdir -p "$RG_CACHE"
rg_stage=$(mktemp -d)
trap 'rm -rf "$rg_stage" "$RG_ARCHIVE"; rmdir "$RG_CACHE" 2>/dev/null || true' EXIT
cp "$(command -v rg)" "$rg_stage/rg"
tar czf "$RG_ARCHIVE" -C "$rg_stage" rg

# Native modules (node-pty, kerberos, ...) must build against local Node headers: node-gyp would
# otherwise fetch them from nodejs.org. They sit beside the node binary (/usr for Debian's and
# NodeSource's packages, /usr/local or the tarball root for official builds).
NODE_PREFIX=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$NODE_PREFIX/include/node/node.h" ]; then
  npm_config_nodedir=$NODE_PREFIX
fi
if [ -z "${npm_config_nodedir:-}" ]; then
  echo "install-code-server: no Node headers under $NODE_PREFIX/include/node; node-gyp will try to download them." >&2
else
  export npm_config_nodedir
fi

mkdir -p "$DEST"
rm -f "$MARKER"
printf '{ "private": true, "dependencies": { "code-server": "%s" } }\n' "$CS_VERSION" > "$DEST/package.json"
echo "Installing code-server $CS_VERSION into $DEST (a few minutes the first time)..."
# unsafe_perm: code-server's postinstall refuses to run as root without it.
# yes:         node-pty's postinstall runs `npx node-gyp`, which must not stop to ask.
( cd "$DEST" && npm_config_unsafe_perm=true npm_config_yes=true \
  npm install --no-audit --no-fund --loglevel=error )

installed=$(node -p 'require(process.argv[1]).version' "$(cd "$DEST" && pwd)/node_modules/code-server/package.json")
if [ "$installed" != "$CS_VERSION" ]; then
  echo "install-code-server: expected code-server $CS_VERSION, npm installed $installed" >&2
  exit 1
fi
echo "$CS_VERSION" > "$MARKER"
echo "code-server $CS_VERSION installed in $DEST"
