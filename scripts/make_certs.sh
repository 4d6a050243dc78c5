#!/bin/sh
# Makes throwaway certificates for the TLS specs into DIR (created if missing):
#   ca.pem               a test CA (its key stays in DIR/ca)
#   server.pem/.key      for 127.0.0.1 and localhost, signed by the CA
#   expired.pem/.key     the same names, valid only in 2020
#   wronghost.pem/.key   for wrong.example only
#   client.pem/.key      a client certificate (CN=luaws test client), signed by the CA
#   other-ca.pem         a second CA that trusts none of the above
#   rogue.pem/.key       a client certificate signed by the other CA
# Keys are EC P-256: quick to make. Nothing here is meant to outlive a test run.
#   sh scripts/make_certs.sh DIR
set -e
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A CA: NAME.pem, and its key and `openssl ca` database in NAME/.
make_ca() {
  mkdir -p "$1"
  key "$1/key.pem"
  openssl req -x509 -new -key "$1/key.pem" -subj "/O=luaws tests/CN=$2" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
  : >"$1/index.txt"
  cat >"$1/ca.cnf" <<EOF
[ca]
default_ca = test
[test]
dir = $1
database = $1/index.txt
new_certs_dir = $1
serial = $1/serial
certificate = $1.pem
private_key = $1/key.pem
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
organizationName = optional
EOF
  echo 1000 >"$1/serial"
}

# sign CA NAME SUBJECT SAN EKU [DAYS | STARTDATE ENDDATE]: NAME.pem and NAME.key.
sign() {
  ca=$1 name=$2 subj=$3 san=$4 eku=$5
  key "$name.key"
  openssl req -new -key "$name.key" -subj "$subj" -addext "subjectAltName=$san" \
    -addext "extendedKeyUsage=$eku" -out "$name.csr"
  if [ -n "$7" ]; then dates="-startdate $6 -enddate $7"; else dates="-days ${6:-30}"; fi
  # shellcheck disable=SC2086
  openssl ca -batch -notext -config "$ca/ca.cnf" $dates -in "$name.csr" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
}

make_ca ca "luaws test CA"
make_ca other-ca "luaws other CA"
sign ca server "/O=luaws tests/CN=localhost" "IP:127.0.0.1,DNS:localhost" serverAuth
sign ca expired "/O=luaws tests/CN=localhost" "IP:127.0.0.1,DNS:localhost" serverAuth \
  20200101000000Z 20201231000000Z
sign ca wronghost "/O=luaws tests/CN=wrong.example" "DNS:wrong.example" serverAuth
sign ca client "/O=luaws tests/CN=luaws test client" "DNS:client.example" clientAuth
sign other-ca rogue "/O=luaws tests/CN=rogue client" "DNS:rogue.example" clientAuth
