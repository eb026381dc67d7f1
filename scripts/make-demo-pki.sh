#!/usr/bin/env bash
# Builds a small demo PKI with the openssl CLI only (OpenSSL 3.0):
#   ca.pem / ca.key                self-signed "Demo Signing CA" (RSA-2048, sha256WithRSAEncryption)
#   responder.pem / responder.key  delegated OCSP signer issued by the CA (EKU OCSPSigning, OCSP No Check)
#   leaf-1001.pem .. leaf-1006.pem end-entity certificates, serials 0x1001..0x1006 (keys: leaf-*.key)
#   crl.pem / crl.der              CRL number 1 (see serials.txt)
#   crl2.pem / crl2.der            CRL number 2: as CRL 1, plus 0x1006 revoked (superseded) (see serials2.txt)
#   ca-db/                         the openssl ca configuration and the hand-written index files
#
# Usage: make-demo-pki.sh OUTDIR
# Environment: OCSP_DEMO_URL  OCSP URL written into the leaves' authorityInfoAccess
#                             (default http://127.0.0.1:8080/)
#
# Idempotent: OUTDIR's content is rebuilt from scratch on every run. To avoid deleting something that is not
# ours, an existing non-empty OUTDIR is only replaced if it carries the marker file left by a previous run.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR" >&2; exit 2; }
[[ $# -eq 1 && -n "$1" ]] || usage

command -v openssl >/dev/null || { echo "make-demo-pki: openssl not found (run scripts/setup.sh)" >&2; exit 1; }

OUTDIR=$1
MARKER=.made-by-make-demo-pki
OCSP_URL=${OCSP_DEMO_URL:-http://127.0.0.1:8080/}
SUBJECT_BASE="/C=JP/O=JPKI-DEMO/OU=Demo Signing CA"

if [[ -e "$OUTDIR" && ! -d "$OUTDIR" ]]; then
  echo "make-demo-pki: $OUTDIR exists and is not a directory" >&2; exit 1
fi
if [[ -d "$OUTDIR" && -n "$(ls -A "$OUTDIR")" && ! -e "$OUTDIR/$MARKER" ]]; then
  echo "make-demo-pki: $OUTDIR is not empty and was not made by this script; refusing to overwrite" >&2
  exit 1
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd -P)

# Build everything in a fresh sibling directory, then swap it in.
WORK=$(mktemp -d "$(dirname "$OUTDIR")/.$(basename "$OUTDIR").XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 022
cd "$WORK"
touch "$MARKER"

# ---------------------------------------------------------------------------------------------------------
# Times. Everything is relative to one reference instant T so the result is internally consistent:
#   CA valid from T-30d for 10 years, leaves from T-20d for 5 years, responder from T-1d for 1 year,
#   revocations between T-4d and T-1d, CRL 1 thisUpdate T-1h, CRL 2 (adds 0x1006, revoked T-30min) at T.
# Both CRLs have nextUpdate T+1d.
# ---------------------------------------------------------------------------------------------------------
T=$(date -u +%s)
DAY=86400
gt() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }   # GeneralizedTime, accepted by openssl ca -startdate etc.
ut() { date -u -d "@$1" +%y%m%d%H%M%SZ; }   # UTCTime, the format of index.txt date fields

CA_NB=$((T - 30 * DAY));     CA_NA=$((CA_NB + 3650 * DAY))
RESP_NB=$((T - DAY));        RESP_NA=$((RESP_NB + 365 * DAY))
LEAF_NB=$((T - 20 * DAY));   LEAF_NA=$((LEAF_NB + 1825 * DAY))
CRL1_THIS=$((T - 3600));     CRL2_THIS=$T;  CRL_NEXT=$((T + DAY))

mkdir -p ca-db/newcerts
cat > ca-db/openssl.cnf <<EOF
# openssl ca configuration used by make-demo-pki.sh (paths relative to the PKI directory).
[ ca ]
default_ca = demo_ca

[ demo_ca ]
dir              = ./ca-db
# Issuing uses a scratch database; the CRLs are generated from the hand-written index*.txt
# (passed with -name crl1 / crl2 below).
database         = \$dir/issued-index.txt
new_certs_dir    = \$dir/newcerts
serial           = \$dir/serial
certificate      = ./ca.pem
private_key      = ./ca.key
default_md       = sha256
policy           = policy_any
preserve         = yes
unique_subject   = no
email_in_dn      = no
copy_extensions  = none
default_days     = 365

[ crl1 ]
dir              = ./ca-db
database         = \$dir/index.txt
crlnumber        = \$dir/crlnumber
certificate      = ./ca.pem
private_key      = ./ca.key
default_md       = sha256
crl_extensions   = crl_ext

[ crl2 ]
dir              = ./ca-db
database         = \$dir/index2.txt
crlnumber        = \$dir/crlnumber
certificate      = ./ca.pem
private_key      = ./ca.key
default_md       = sha256
crl_extensions   = crl_ext

[ policy_any ]
countryName             = optional
organizationName        = optional
organizationalUnitName  = optional
commonName              = optional

[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder

[ v3_ca ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ v3_ocsp ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = OCSPSigning
noCheck                = ignored
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess    = OCSP;URI:${OCSP_URL}

[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF
CNF=ca-db/openssl.cnf
: > ca-db/issued-index.txt

newkey() { # FILE
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null)
}
# issue SERIAL_HEX KEY SUBJECT EXT NOTBEFORE NOTAFTER OUT [-selfsign]
issue() {
  local serial=$1 key=$2 subj=$3 ext=$4 nb=$5 na=$6 out=$7; shift 7
  echo "$serial" > ca-db/serial
  openssl req -new -config "$CNF" -key "$key" -subj "$subj" -out ca-db/req.csr
  openssl ca -batch -notext -config "$CNF" -extensions "$ext" -startdate "$(gt "$nb")" -enddate "$(gt "$na")" \
    -keyfile ca.key "$@" -in ca-db/req.csr -out "$out" 2>ca-db/ca.log ||
    { cat ca-db/ca.log >&2; exit 1; }
  rm -f ca-db/req.csr
}

echo "make-demo-pki: CA"
newkey ca.key
issue 01 ca.key "$SUBJECT_BASE" v3_ca "$CA_NB" "$CA_NA" ca.pem -selfsign

echo "make-demo-pki: OCSP responder certificate"
newkey responder.key
issue 0100 responder.key "$SUBJECT_BASE/CN=Demo OCSP Responder" v3_ocsp "$RESP_NB" "$RESP_NA" responder.pem -cert ca.pem

echo "make-demo-pki: end-entity certificates 0x1001..0x1006"
for n in 1001 1002 1003 1004 1005 1006; do
  newkey "leaf-$n.key"
  issue "$n" "leaf-$n.key" "$SUBJECT_BASE/CN=Demo Holder $n" v3_leaf "$LEAF_NB" "$LEAF_NA" "leaf-$n.pem" -cert ca.pem
done
chmod 600 ./*.key

# ---------------------------------------------------------------------------------------------------------
# Hand-written CA databases. Fields (tab-separated): status, expiry (UTCTime), revocation info, serial (hex),
# file name, subject.
# openssl ca quirk: "date,keyCompromise,COMPROMISE_TIME" silently drops the time; the invalidity date extension
# is only written for the pseudo-reason "keyTime" (reason code becomes keyCompromise). Likewise
# "certificateHold,OID" drops the hold instruction; "holdInstruction,OID" writes reason certificateHold plus
# the hold instruction code extension.
# ---------------------------------------------------------------------------------------------------------
LEAF_EXP=$(ut "$LEAF_NA")
entry() { # STATUS SERIAL REVINFO
  printf '%s\t%s\t%s\t%s\tunknown\t%s\n' "$1" "$LEAF_EXP" "$3" "$2" "$SUBJECT_BASE/CN=Demo Holder $2"
}
REV_1002=$((T - 2 * DAY)); INV_1002=$((T - 5 * DAY))
REV_1003=$((T - 3 * DAY))
REV_1004=$((T - 4 * DAY))
REV_1005=$((T - 1 * DAY))
REV_1006=$((T - 1800))
{
  entry V 1001 ""
  entry R 1002 "$(ut $REV_1002),keyTime,$(gt $INV_1002)"
  entry R 1003 "$(ut $REV_1003),affiliationChanged"
  entry R 1004 "$(ut $REV_1004),cessationOfOperation"
  entry R 1005 "$(ut $REV_1005),holdInstruction,holdInstructionReject"
  entry V 1006 ""
} > ca-db/index.txt
{
  awk -F'\t' '$4 != "1006"' ca-db/index.txt
  entry R 1006 "$(ut $REV_1006),superseded"
} > ca-db/index2.txt
# openssl ca warns when the attribute file is missing.
echo "unique_subject = no" > ca-db/index.txt.attr
cp ca-db/index.txt.attr ca-db/index2.txt.attr

echo "make-demo-pki: CRLs"
echo 01 > ca-db/crlnumber
openssl ca -batch -gencrl -config "$CNF" -name crl1 -crl_lastupdate "$(gt $CRL1_THIS)" \
  -crl_nextupdate "$(gt $CRL_NEXT)" -out crl.pem 2>ca-db/ca.log || { cat ca-db/ca.log >&2; exit 1; }
echo 02 > ca-db/crlnumber
openssl ca -batch -gencrl -config "$CNF" -name crl2 -crl_lastupdate "$(gt $CRL2_THIS)" \
  -crl_nextupdate "$(gt $CRL_NEXT)" -out crl2.pem 2>ca-db/ca.log || { cat ca-db/ca.log >&2; exit 1; }
openssl crl -in crl.pem -outform DER -out crl.der
openssl crl -in crl2.pem -outform DER -out crl2.der
rm -f ca-db/ca.log ca-db/*.old

cat > serials.txt <<'EOF'
# Expected status per serial according to crl.der (CRL number 1). Columns: serial status reason
0x1001 good -
0x1002 revoked keyCompromise
0x1003 revoked affiliationChanged
0x1004 revoked cessationOfOperation
0x1005 revoked certificateHold
0x1006 good -
EOF
sed -e 's/^# Expected status per serial according to crl.der (CRL number 1)/# Expected status per serial according to crl2.der (CRL number 2)/' \
    -e 's/^0x1006 good -$/0x1006 revoked superseded/' serials.txt > serials2.txt

# ---------------------------------------------------------------------------------------------------------
# Self-checks: fail loudly if this openssl behaves differently from what the demo and the tests expect.
# ---------------------------------------------------------------------------------------------------------
fail() { echo "make-demo-pki: self-check failed: $*" >&2; exit 1; }
openssl verify -CAfile ca.pem responder.pem leaf-100?.pem >/dev/null || fail "certificates do not verify"
resp_text=$(openssl x509 -in responder.pem -noout -text)
grep -q 'OCSP Signing' <<<"$resp_text" || fail "responder EKU OCSPSigning missing"
grep -q 'OCSP No Check' <<<"$resp_text" || fail "responder OCSP No Check missing"
for f in crl.der crl2.der; do
  openssl crl -in "$f" -inform DER -noout -CAfile ca.pem 2>&1 | grep -q 'verify OK' || fail "$f signature"
done
crl_text=$(openssl crl -in crl.der -inform DER -noout -text)
for want in 'Version 2' 'CRL Number' 'Authority Key Identifier' 'Key Compromise' 'Invalidity Date' \
            'Affiliation Changed' 'Cessation Of Operation' 'Certificate Hold' 'Hold Instruction Reject'; do
  grep -q "$want" <<<"$crl_text" || fail "crl.der lacks '$want'"
done
[[ $(grep -c 'Serial Number:' <<<"$crl_text") -eq 4 ]] || fail "crl.der should have 4 entries"
crl2_text=$(openssl crl -in crl2.der -inform DER -noout -text)
grep -q 'Superseded' <<<"$crl2_text" || fail "crl2.der lacks superseded"
[[ $(grep -c 'Serial Number:' <<<"$crl2_text") -eq 5 ]] || fail "crl2.der should have 5 entries"
openssl verify -crl_check -CAfile ca.pem -CRLfile crl.pem leaf-1001.pem >/dev/null 2>&1 ||
  fail "0x1001 should be good under crl.pem"
if openssl verify -crl_check -CAfile ca.pem -CRLfile crl.pem leaf-1002.pem >/dev/null 2>&1; then
  fail "0x1002 should be revoked under crl.pem"
fi

# Swap the new content in.
cd /
rm -rf "$OUTDIR"
mv "$WORK" "$OUTDIR"
chmod 755 "$OUTDIR"
trap - EXIT
echo "make-demo-pki: demo PKI written to $OUTDIR"
