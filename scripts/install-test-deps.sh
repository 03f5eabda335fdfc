#!/usr/bin/env bash
# Installs what the integration tests and the demo need, from Debian's packages, when missing:
# Dovecot (IMAP + LMTP), Python's aiosmtpd for the test SMTP server, and openssl for test certs.
set -euo pipefail

missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd dovecot-lmtpd)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${missing[*]}; run as root or: sudo apt-get install -y dovecot-imapd dovecot-lmtpd python3-aiosmtpd openssl" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd python3-aiosmtpd openssl >/dev/null
# The package starts no service we need; the tests run their own instances.
