#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build, test and demo the OCSP responder.
# Idempotent: only packages that are not installed yet are passed to apt-get; when nothing is missing, apt is
# not touched at all. Extra package names may be given as arguments (e.g. `setup.sh softhsm2`).
# Runs as root; otherwise uses sudo if it exists.
set -euo pipefail

PACKAGES=(
  build-essential g++ cmake ninja-build pkg-config
  libssl-dev openssl
  libevent-dev
  libcurl4-openssl-dev
  liblmdb-dev lmdb-utils
  prometheus-cpp-dev
  doctest-dev
  libtomlplusplus-dev
  libcli11-dev
  libsystemd-dev
  gnutls-bin curl ca-certificates
  nginx lintian dpkg-dev fakeroot systemd socat prometheus softhsm2 libengine-pkcs11-openssl
  # bench/responder.sh: the load generator and the servers it measures ours against (nginx: above); ss and
  # pgrep find free ports and a server's processes
  wrk golang-cfssl util-linux iproute2 procps
)
PACKAGES+=("$@")

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "setup.sh: this script needs a Debian-based system (dpkg-query and apt-get not found)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup.sh: all ${#PACKAGES[@]} required packages are installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "setup.sh: missing packages: ${missing[*]}" >&2
    echo "setup.sh: not root and sudo is not available; install them as root" >&2
    exit 1
  fi
fi

echo "setup.sh: installing: ${missing[*]}"
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
