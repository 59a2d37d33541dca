#!/bin/sh
# Test certificates for TLS to Redis, made by the openssl command in DIR:
#   ca.pem                 the CA the nodes trust (--redis-tls-ca) and Redis checks clients with
#   redis.pem/.key         Redis' certificate from ca, for 127.0.0.1 and localhost
#   client.pem/.key        a node's certificate from ca (for tls-auth-clients yes)
#   other-ca-redis.pem/.key  for 127.0.0.1 too, but signed by another CA
#   wrong-name-redis.pem/.key  from ca, but for another name (redis.elsewhere.example)
# Usage: make_redis_certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
ca() {  # NAME: a self-signed CA in NAME.pem/NAME.key
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=uniws test $1" \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
leaf() {  # NAME CA SUBJECT_ALT_NAME: NAME.pem/NAME.key signed by CA
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
leaf redis ca "IP:127.0.0.1,DNS:localhost"
leaf client ca "DNS:uniws-node"
leaf other-ca-redis other-ca "IP:127.0.0.1,DNS:localhost"
leaf wrong-name-redis ca "DNS:redis.elsewhere.example"
chmod 644 ./*.key
