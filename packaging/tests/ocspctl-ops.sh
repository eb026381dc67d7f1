#!/usr/bin/env bash
# ocspctl's operator commands against a demo store: lookup says what would be answered and why (and agrees with
# the responder), check-config names each check, status shows the signer and the store size, --help works on
# every command, and the documented exit codes hold.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ops_pki
cat > "$WORK/ctl.toml" <<TOML
[store]
path = "$WORK/store"
map_size_mib = 64
[[issuer]]
name = "demo-ca"
certificate = "$WORK/pki/ca.pem"
responder_certificate = "$WORK/pki/responder.pem"
responder_key = "$WORK/pki/responder.key"
TOML
ctl() { "$OCSP_CTL" --config "$WORK/ctl.toml" "$@"; }
expect_exit() {  # WANT COMMAND...: runs it, fails unless it exits WANT; its output is in $out
  local want=$1 got=0
  shift
  out=$("$@" 2>&1) || got=$?
  [[ "$got" -eq "$want" ]] || fail "'$*' exited $got, want $want: $out"
}

expect_exit 0 ctl lookup 0x1001 --issuer demo-ca
grep -q '^answer     good' <<<"$out" || fail "0x1001: $out"
expect_exit 0 ctl lookup 10:02 --issuer demo-ca
grep -q '^answer     revoked' <<<"$out" && grep -q 'keyCompromise' <<<"$out" || fail "0x1002: $out"
expect_exit 0 ctl --json lookup 1005 --issuer demo-ca
grep -q '"answer":"revoked"' <<<"$out" && grep -q 'certificateHold' <<<"$out" || fail "0x1005: $out"
expect_exit 2 ctl lookup 0x1001 --issuer nobody
grep -q "configured: demo-ca" <<<"$out" || fail "unknown issuer message: $out"
expect_exit 2 ctl lookup not-hex --issuer demo-ca
echo "ok: lookup"

expect_exit 0 ctl --json check-config
grep -q '"ok":true' <<<"$out" || fail "check-config: $out"
chmod 0644 "$WORK/pki/responder.key"
expect_exit 2 ctl check-config
grep -q '^FAIL  issuer demo-ca' <<<"$out" || fail "check-config accepted a world-readable key: $out"
chmod 0600 "$WORK/pki/responder.key"
echo "ok: check-config"

expect_exit 0 ctl --json status
grep -q '"store_bytes":[1-9]' <<<"$out" && grep -q '"configured_as":"demo-ca"' <<<"$out" &&
  grep -q '"signer":"CN=Demo OCSP Responder' <<<"$out" || fail "status --json: $out"
expect_exit 0 ctl status
grep -q 'configured as demo-ca, signed by CN=Demo OCSP Responder' <<<"$out" || fail "status: $out"
echo "ok: status"

# The backup docs/operations.md prescribes: mdb_copy -c of the live store opens and shows the same issuer.
mkdir "$WORK/backup"
mdb_copy -c "$WORK/store" "$WORK/backup" || fail "mdb_copy -c failed"
expect_exit 0 "$OCSP_CTL" --store "$WORK/backup" --json status
grep -q '"entries":4' <<<"$out" || fail "the mdb_copy backup does not hold the 4 revocations: $out"
echo "ok: an mdb_copy backup opens"

for command in import sync status lookup history partitions compromise check-config; do
  expect_exit 0 "$OCSP_CTL" "$command" --help
  grep -q '^Exit codes:' <<<"$out" || fail "$command --help does not document the exit codes"
done
expect_exit 2 "$OCSP_CTL" no-such-command
echo "ok: --help on every command"
echo "PASS"
