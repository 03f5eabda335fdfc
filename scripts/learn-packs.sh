#!/usr/bin/env bash
# Rebuilds config/learned/intents-en.toml, the learned intent pack shipped beside the default pack
# (off by default: docs/rules.md "The learned intent pack"), from the intent data in
# ../shared/eval/data (bitext, CDLA-Sharing-1.0, whose section 3.5 puts no obligation on results
# such as learned rules; the data itself is not part of this repository), and prints the figures
# docs/rules.md gives for it: held out on the intent data, then on other data, without and with
# the pack (the tickets' queue "Billing and Payments" as the billing intent; the complaint
# tweets' label as the complaint intent).
#   bash scripts/learn-packs.sh [path/to/triaged]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-target/release/triaged}
[ -x "$T" ] || cargo build --release --locked --bin triaged
OUT=config/learned/intents-en.toml
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. scripts/eval-common.sh

QUEUES=(--data "$D/tobi_bueck_tickets_multi-lang-4-20k.head.csv" --text subject,body --label queue
        --filter language=en --intents --map "Billing and Payments=billing,*=none")
COMPLAINT_INTENT=("${COMPLAINTS[@]}" --tone complaint --positive complaint)

echo "== Learned on the intent data's training part (held out: its test part)"
"$T" tune --config config/triaged.toml "${INTENTS[@]}" --part train --intents --learn "$W/learned.toml" \
    | grep -E '^intent|^mean' | sed 's/^/    /'
{
    echo "# The learned intent pack, shipped OFF by default: copy it into your rules directory to use it,"
    echo "# after measuring it on your own mail (triaged eval). Learned from synthetic, templated requests;"
    echo "# measured on other text it lowers precision (docs/rules.md, \"The learned intent pack\")."
    echo "# Source: bitext customer-support sample (CDLA-Sharing-1.0; section 3.5: no obligation on results)."
    echo "# Rebuilt by scripts/learn-packs.sh."
    echo "#"
    sed "s|--learn $W/learned.toml|--learn $OUT|" "$W/learned.toml"
} >"$OUT"
echo "    written: $OUT ($(grep -c '^\[\[rule\]\]' "$OUT") rules)"

base=$(config base)
learned=$(config learned "$OUT")

for c in base learned; do
    cfg=$base
    [ $c = base ] || cfg=$learned
    echo
    echo "== The default pack$([ $c = base ] || echo ' with the learned intent pack')"
    echo "intent data, test part (eval --intents):"
    "$T" eval --config "$cfg" "${INTENTS[@]}" --intents --part test | grep '^macro-F1' | sed 's/^/    /'
    echo "tickets, queue as intents (Billing and Payments = billing, the rest none), every English row:"
    "$T" eval --config "$cfg" "${QUEUES[@]}" | grep -E "^billing  |^macro-F1" | sed 's/^/    /'
    echo "complaint tweets, the complaint intent, every row:"
    "$T" eval --config "$cfg" "${COMPLAINT_INTENT[@]}" | grep '^positive class' | sed 's/^/    /'
done
