#!/usr/bin/env bash
# packaging/nginx/ocsp-cache.conf in front of a responder on loopback: a second identical GET is served from
# nginx's cache (RFC 9919 Cache-Control honoured), while an unauthorized answer, a nonce-bearing answer and POST
# are never served from it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NGINX_BINARY=${OCSP_NGINX:-/usr/sbin/nginx}
[[ -x "$NGINX_BINARY" ]] || fail "nginx not found ($NGINX_BINARY); run scripts/setup.sh"

ops_pki
# Nonces honoured, so that a nonce-bearing request gets a unique, uncacheable answer (with the default,
# "ignore", it gets the shared stored response, which nginx may cache like any other).
ops_start_responder 'nonce = "honour"'
upstream=${URL#http://}; upstream=${upstream%/}
port=$(ops_free_port)

# The shipped snippet, with the test's ports and a cache directory under the prefix.
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/cache"
sed -e "s|server 127.0.0.1:8080;|server $upstream;|" -e "s|listen 80;|listen 127.0.0.1:$port;|" \
    -e "s|/var/cache/nginx/ocsp|$WORK/nginx/cache|" -e "/listen \[::\]:80;/d" \
    "$OCSP_SOURCE_DIR/packaging/nginx/ocsp-cache.conf" > "$WORK/nginx/ocsp-cache.conf"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
user $(id -un);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log $WORK/nginx/logs/access.log;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  include $WORK/nginx/ocsp-cache.conf;
}
CONF
"$NGINX_BINARY" -t -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" 2>&1 ||
  fail "nginx rejects the configuration"
"$NGINX_BINARY" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" &
EXTRA_PIDS+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
PROXY="http://127.0.0.1:$port"

# get NAME: GET through nginx; prints "<http code> <X-Cache-Status>" and keeps the body in $WORK/NAME.body.
get() {
  local headers=$WORK/$1.headers
  local code
  code=$("$CURL" -s -o "$WORK/$1.body" -D "$headers" -w '%{http_code}' "$PROXY/$(<"$WORK/$2.path")")
  echo "$code $(tr -d '\r' < "$headers" | sed -n 's/^[Xx]-[Cc]ache-[Ss]tatus: //p')"
}
check() {  # check WHAT GOT WANT
  [[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"
  echo "ok: $1: $2"
}

ops_request good "$WORK/pki/ca.pem" 0x1001 -no_nonce
check "first GET of a good answer" "$(get good1 good)" "200 MISS"
ops_is_successful "$WORK/good1.body" || fail "the first answer is not a successful OCSP response"
grep -qi '^cache-control: max-age=[1-9][0-9]*, public, no-transform, must-revalidate' "$WORK/good1.headers" ||
  fail "the responder's RFC 9919 Cache-Control did not reach the client: $(cat "$WORK/good1.headers")"
check "second identical GET" "$(get good2 good)" "200 HIT"
cmp -s "$WORK/good1.body" "$WORK/good2.body" || fail "the cached body differs from the first"

# A CA the responder does not serve (the responder certificate stands in for one): unauthorized, never cached.
ops_request stranger "$WORK/pki/responder.pem" 0x1001 -no_nonce
check "first GET of an unauthorized answer" "$(get stranger1 stranger)" "200 MISS"
grep -qi '^cache-control: max-age=0, no-cache' "$WORK/stranger1.headers" || fail "unauthorized is not marked no-cache"
ops_response_text "$WORK/stranger1.body" | grep -q 'Responder Error: unauthorized' ||
  fail "the stranger's answer is not unauthorized"
check "second GET of an unauthorized answer" "$(get stranger2 stranger)" "200 MISS"

# A request with a nonce gets a unique answer: not cacheable either.
ops_request nonce "$WORK/pki/ca.pem" 0x1002
check "first GET with a nonce" "$(get nonce1 nonce)" "200 MISS"
check "second GET with a nonce" "$(get nonce2 nonce)" "200 MISS"

# POST goes through to the responder every time.
for i in 1 2; do
  status=$("$CURL" -s -o "$WORK/post$i.body" -D "$WORK/post$i.headers" -w '%{http_code}' \
           -H 'Content-Type: application/ocsp-request' --data-binary "@$WORK/good.der" "$PROXY/")
  [[ "$status" == 200 ]] || fail "POST $i: HTTP $status"
  ! grep -qi '^x-cache-status: HIT' "$WORK/post$i.headers" || fail "POST $i was served from the cache"
  ops_is_successful "$WORK/post$i.body" || fail "POST $i is not a successful OCSP response"
done
echo "ok: POST is never served from the cache"
echo "PASS"
