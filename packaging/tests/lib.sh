# Shared by the operations tests (sourced): a demo PKI, an imported CRL and a responder on a loopback port.
# Environment (set by ctest, packaging/CMakeLists.txt): OCSP_RESPONDER, OCSP_CTL, OCSP_SOURCE_DIR, CURL, OCSP_NGINX.
# Everything lives in one temporary directory that the EXIT trap removes, after stopping what we started.
set -euo pipefail

: "${OCSP_RESPONDER:?}" "${OCSP_CTL:?}" "${OCSP_SOURCE_DIR:?}"
CURL=${CURL:-curl}
WORK=$(mktemp -d /tmp/ocsp-ops.XXXXXX)
chmod 755 "$WORK"  # nginx workers may run as another user
RESPONDER_PID=
EXTRA_PIDS=()

ops_cleanup() {
  local pid
  for pid in "${EXTRA_PIDS[@]}" $RESPONDER_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${EXTRA_PIDS[@]}" $RESPONDER_PID; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap ops_cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [[ -f "$WORK/responder.log" ]]; then
    echo "--- responder log (last 30 lines)" >&2
    tail -n 30 "$WORK/responder.log" >&2
  fi
  exit 1
}

# make-demo-pki.sh's CA, responder certificate, and CRL number 1 imported into $WORK/store.
ops_pki() {
  bash "$OCSP_SOURCE_DIR/scripts/make-demo-pki.sh" "$WORK/pki" >/dev/null
  "$OCSP_CTL" --store "$WORK/store" import --issuer "$WORK/pki/ca.pem" "$WORK/pki/crl.der" >/dev/null
}

# ops_start_responder [EXTRA_RESPONDER_TOML_LINES]: writes the configuration and starts the responder on a free
# port (port 0; the log says which). Sets RESPONDER_PID and URL.
ops_start_responder() {
  cat > "$WORK/ocsp-responder.toml" <<TOML
[responder]
listen = "127.0.0.1:0"
workers = 2
signer_threads = 2
$1
[store]
path = "$WORK/store"
map_size_mib = 64
[metrics]
listen = ""
[[issuer]]
name = "demo-ca"
certificate = "$WORK/pki/ca.pem"
responder_certificate = "$WORK/pki/responder.pem"
responder_key = "$WORK/pki/responder.key"
TOML
  # Created here, not by the child's redirection, which may come after our first read of it.
  : > "$WORK/responder.log"
  "$OCSP_RESPONDER" --config "$WORK/ocsp-responder.toml" >>"$WORK/responder.log" 2>&1 &
  RESPONDER_PID=$!
  local port=
  for _ in $(seq 200); do
    port=$(sed -n 's/.*event=listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/responder.log")
    [[ -n "$port" ]] && break
    kill -0 "$RESPONDER_PID" 2>/dev/null || fail "the responder exited during start-up"
    sleep 0.05
  done
  [[ -n "$port" ]] || fail "the responder did not start listening within 10 s"
  URL="http://127.0.0.1:$port/"
}

# ops_request NAME ISSUER SERIAL [-no_nonce]: a DER OCSP request in $WORK/NAME.der, and its GET path
# (base64, URL-encoded, RFC 6960 Appendix A) in $WORK/NAME.path.
ops_request() {
  openssl ocsp -issuer "$2" -serial "$3" ${4:-} -reqout "$WORK/$1.der" >/dev/null
  openssl base64 -A -in "$WORK/$1.der" | sed -e 's/+/%2B/g' -e 's|/|%2F|g' -e 's/=/%3D/g' > "$WORK/$1.path"
}

# A free TCP port on loopback (nothing accepts on it now).
ops_free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  fail "no free port found"
}

# ops_is_successful FILE: the body is an OCSPResponse with responseStatus successful (0) and a responseBytes
# part, not one of the 5-byte unsigned exceptions.
ops_is_successful() {
  ops_response_text "$1" | grep -q 'OCSP Response Status: successful'
}

# What openssl says about an OCSPResponse file (it exits 1 for exceptions, which is not our failure).
ops_response_text() {
  openssl ocsp -respin "$1" -resp_text -noverify 2>&1 || true
}
