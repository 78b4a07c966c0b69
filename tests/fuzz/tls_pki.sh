#!/bin/sh
# tls_pki.sh - writes tls_pki.h: the fixed test PKI of fuzz_tls (a CA and
# two server certificates it signed, for localhost and for other.test,
# P-256, valid until 2126), as PEM strings.  Fixed, and committed, so
# that a recorded server flight (tests/fuzz/corpus/tls) keeps verifying
# against the CA the fuzzer trusts.  Run once by hand; rerunning makes a
# new PKI, after which the seeds must be recorded again (fuzz_tls_seeds).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=coreio fuzz CA" -days 36500 -sha256 \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
for n in localhost other.test; do
	openssl ecparam -name prime256v1 -genkey -noout -out "$n.key"
	openssl req -new -key "$n.key" -subj "/CN=$n" -out "$n.csr"
	printf 'subjectAltName=DNS:%s,DNS:*.%s\n' "$n" "$n" >"$n.ext"
	openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
		-days 36500 -sha256 -extfile "$n.ext" -out "$n.crt"
	openssl pkcs8 -topk8 -nocrypt -in "$n.key" -out "$n.pk8"
done
# A PEM file as a C string literal, a line of it a line of C.
cstr() { sed 's/.*/\t"&\\n"/' "$1"; }
{
	echo "/* tls_pki.h - the fixed test PKI of fuzz_tls, written by tls_pki.sh. */"
	echo "static const char pki_ca[] ="; cstr ca.crt; echo ";"
	echo "static const char pki_local_crt[] ="; cstr localhost.crt; echo ";"
	echo "static const char pki_local_key[] ="; cstr localhost.pk8; echo ";"
	echo "static const char pki_other_crt[] ="; cstr other.test.crt; echo ";"
	echo "static const char pki_other_key[] ="; cstr other.test.pk8; echo ";"
} >"$here/tls_pki.h"
