#!/usr/bin/env bash
# Makes the base image the Dockerfiles take as BASE_IMAGE, without an image registry: a minimal Debian
# bookworm (debootstrap, with tini and CA certificates) plus the Node.js first on PATH (under make, the one
# .nvmrc pins) and npm, imported into podman. Skipped when an image of that name already carries that version.
# Usage: docker/local-base.sh [image name]   (default localhost/file-processor-base:node24; needs root)
set -euo pipefail

image=${1:-localhost/file-processor-base:node24}
node_bin=$(command -v node)
node_version=$("$node_bin" --version)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

if [ "$(podman image inspect --format '{{index .Labels "org.file-processor.node-version"}}' "$image" 2>/dev/null)" = "$node_version" ]; then
  echo "$image: already made with Node.js $node_version"
  exit 0
fi

# The Debian mirror this machine's apt already uses (the only one it may reach).
mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "No Debian bookworm mirror found in /etc/apt: cannot debootstrap." >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/file-processor-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "$image: debootstrap bookworm from $mirror, then Node.js $node_version"
debootstrap --variant=minbase --include=ca-certificates,tini bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
  { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

install -m 0755 "$node_bin" "$rootfs/usr/bin/node"
# node needs libc, libstdc++ and libgcc_s (ldd "$node_bin"), which minbase has: prove it runs there.
chroot "$rootfs" /usr/bin/node --version >/dev/null || { echo "node does not run in the base: compare ldd $node_bin with it." >&2; exit 1; }
mkdir -p "$rootfs/usr/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/bin/npx"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["node"]' \
  --change "LABEL org.file-processor.node-version=$node_version" \
  --quiet - "$image" >/dev/null
echo "$image: made"
