#!/usr/bin/env bash
# The Debian package end to end, for CI (root, a throwaway Debian 12 machine; .ci/run calls it):
#   1. builds the release binaries with Debian's hardening flags (dpkg-buildflags) and the .deb with CPack;
#   2. lintian: any error fails; accepted warnings are listed with reasons in packaging/debian/lintian-overrides;
#   3. installs it with apt-get, checks the user, directories, permissions and units it sets up;
#   4. runs `ocsp-responder --check-config` and `ocspctl import`/`status` as the service user against the
#      installed layout (/usr/bin, /etc/ocsp-responder, /var/lib/ocsp-responder);
#   5. purges it and checks what goes and what stays.
# It changes the system (a package, the user "ocsp"), so it refuses to run unless OCSP_ALLOW_SYSTEM_INSTALL=1.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${OCSP_DEB_BUILD_DIR:-$REPO/build/deb}
WORK=$(mktemp -d /tmp/ocsp-deb.XXXXXX)
chmod 755 "$WORK"
user_existed=0
getent passwd ocsp >/dev/null && user_existed=1

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }
cleanup() {
  if dpkg-query -W -f='${Status}' ocsp-responder 2>/dev/null | grep -q 'ok installed'; then
    apt-get purge -y -q ocsp-responder >/dev/null 2>&1 || true
  fi
  rm -f /etc/ocsp-responder/{ca.pem,responder.pem,responder.key}
  rmdir /etc/ocsp-responder 2>/dev/null || true
  if ((user_existed == 0)) && getent passwd ocsp >/dev/null; then deluser --quiet --system ocsp >/dev/null || true; fi
  rm -rf "$WORK"
}

[[ $(id -u) -eq 0 ]] || fail "run as root (CI does)"
[[ "${OCSP_ALLOW_SYSTEM_INSTALL:-}" == 1 ]] ||
  fail "this installs and purges a package system-wide; set OCSP_ALLOW_SYSTEM_INSTALL=1 on a throwaway machine"
if dpkg-query -W -f='${Status}' ocsp-responder 2>/dev/null | grep -q 'ok installed'; then
  fail "ocsp-responder is already installed here; this test would purge it"
fi
trap cleanup EXIT

step "Building the release binaries with dpkg-buildflags and the package with CPack ($BUILD)"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCSP_BUILD_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr \
  -DCMAKE_CXX_FLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CXXFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" >/dev/null
cmake --build "$BUILD" -j"${OCSP_BUILD_JOBS:-2}"
rm -f "$BUILD"/ocsp-responder_*.deb
(cd "$BUILD" && cpack -G DEB >/dev/null)
deb=$(ls "$BUILD"/ocsp-responder_*.deb)
echo "built $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"

step "lintian"
# Errors fail, and so do warnings: each accepted one is in packaging/debian/lintian-overrides with its reason.
# Info tags are shown for the record. (--show-overrides would make lintian 2.116 exit 2 on an override.)
lintian --fail-on error,warning --display-info "$deb" | tee "$WORK/lintian.txt" ||
  fail "lintian: fix the tags above, or override a warning in packaging/debian/lintian-overrides with a reason"

step "Installing"
apt-get install -y -q "$deb"
dpkg-query -W -f='${Status} ${Version}\n' ocsp-responder

step "Checking the installed layout"
getent passwd ocsp >/dev/null || fail "postinst did not create the user ocsp"
[[ "$(getent passwd ocsp | cut -d: -f7)" == */nologin || "$(getent passwd ocsp | cut -d: -f7)" == /bin/false ]] ||
  fail "the user ocsp can log in: $(getent passwd ocsp)"
check_mode() {  # PATH OWNER:GROUP MODE
  local got
  got=$(stat -c '%U:%G %a' "$1") || fail "$1 is missing"
  [[ "$got" == "$2 $3" ]] || fail "$1 is $got, want $2 $3"
  echo "ok: $1 $got"
}
check_mode /etc/ocsp-responder root:ocsp 750
check_mode /etc/ocsp-responder/ocsp-responder.toml root:ocsp 640
check_mode /var/lib/ocsp-responder ocsp:ocsp 750
check_mode /var/log/ocsp-responder ocsp:ocsp 750
for f in /usr/bin/ocsp-responder /usr/bin/ocspctl /lib/systemd/system/ocsp-responder.service \
         /lib/systemd/system/ocsp-responder.socket /lib/systemd/system/ocsp-crl-sync.service \
         /lib/systemd/system/ocsp-crl-sync.timer /usr/share/doc/ocsp-responder/operations.md; do
  [[ -e "$f" ]] || fail "$f is not installed"
done
grep -qx /etc/ocsp-responder/ocsp-responder.toml /var/lib/dpkg/info/ocsp-responder.conffiles ||
  fail "the configuration is not a conffile"
systemd-analyze verify /lib/systemd/system/ocsp-responder.service /lib/systemd/system/ocsp-responder.socket \
  /lib/systemd/system/ocsp-crl-sync.service /lib/systemd/system/ocsp-crl-sync.timer 2>&1 | tee "$WORK/verify.txt"
! grep -q 'ocsp-' "$WORK/verify.txt" || fail "systemd-analyze verify complains about the installed units"

step "A CA, a responder certificate and key in /etc/ocsp-responder, as the default configuration names them"
bash "$REPO/scripts/make-demo-pki.sh" "$WORK/pki" >/dev/null
install -o root -g ocsp -m 0640 "$WORK/pki/ca.pem" "$WORK/pki/responder.pem" "$WORK/pki/responder.key" \
  /etc/ocsp-responder/
chmod 0644 "$WORK/pki/crl.der"

step "ocsp-responder --check-config, as the service user"
runuser -u ocsp -- ocsp-responder --config /etc/ocsp-responder/ocsp-responder.toml --check-config ||
  fail "--check-config refused the installed configuration"

step "ocspctl import and status, as the service user"
runuser -u ocsp -- ocspctl --config /etc/ocsp-responder/ocsp-responder.toml import \
  --issuer /etc/ocsp-responder/ca.pem "$WORK/pki/crl.der"
out=$(runuser -u ocsp -- ocspctl --config /etc/ocsp-responder/ocsp-responder.toml status)
echo "$out"
grep -q 'Demo Signing CA' <<<"$out" || fail "ocspctl status does not show the imported issuer"
json=$(runuser -u ocsp -- ocspctl --config /etc/ocsp-responder/ocsp-responder.toml --json status)
grep -q '"complete":true' <<<"$json" || fail "ocspctl --json status: $json"
[[ "$(stat -c %U /var/lib/ocsp-responder/store)" == ocsp ]] || fail "the store is not owned by ocsp"

step "Purging"
apt-get purge -y -q ocsp-responder
for gone in /usr/bin/ocsp-responder /lib/systemd/system/ocsp-responder.service \
            /etc/ocsp-responder/ocsp-responder.toml /var/lib/ocsp-responder /var/log/ocsp-responder; do
  [[ ! -e "$gone" ]] || fail "$gone is still there after purge"
done
# The operator's keys are not the package's to delete.
[[ -f /etc/ocsp-responder/responder.key ]] || fail "purge deleted the operator's responder key"
echo "PASS: built, linted, installed, checked and purged $(basename "$deb")"
