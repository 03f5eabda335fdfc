#!/usr/bin/env bash
# The test command from README.md: installs what the tests need (Debian packages, as root), then
# runs every test, unit and integration (real Dovecot + SMTP on loopback), and the clippy/fmt gates.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked "$@"
