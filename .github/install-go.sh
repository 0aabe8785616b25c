#!/usr/bin/env bash
# Install the Go version that go/go.mod requires into /usr/local/go, for
# wheel builds in manylinux containers, which have no Go.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(awk '/^go /{print $2}' "$root/go/go.mod")"
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) echo "no Go download for $(uname -m)" >&2; exit 1 ;;
esac
curl -fsSL "https://go.dev/dl/go${version}.linux-${arch}.tar.gz" | tar -C /usr/local -xz
/usr/local/go/bin/go version
