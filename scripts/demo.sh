#!/usr/bin/env bash
# The quick start from README.md: install the local mail stack (Debian packages, as root), build,
# and run the demo: Dovecot + an SMTP server on loopback, eight sample customer emails, the
# triaged daemon, and a summary of what it did. Pass --keep-running to leave it all up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo run --quiet --locked --example demo -- "$@"
