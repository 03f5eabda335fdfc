# Sourced by scripts/eval-figures.sh and scripts/learn-packs.sh (from the repository root, with
# $W a scratch directory): where the third-party data is, how each set is read, and config().
D=../shared/eval/data

TICKETS=(--data "$D/tobi_bueck_tickets_multi-lang-4-20k.head.csv" --text subject,body --label priority
         --filter language=en --map high=high,medium=normal,low=low)
AIRLINE=(--data "$D/twitter_us_airline_sentiment.csv" --text text --label airline_sentiment)
COMPLAINTS=(--data "$D/complaints_social_media_preotiuc2019.csv" --text 1 --label 2
            --map 1=complaint,0=other)
INTENTS=(--data "$D/bitext_customer_support_4514.csv" --text instruction --label intent --map
  get_refund=refund,track_refund=refund,check_refund_policy=refund,check_invoice=billing,get_invoice=billing,payment_issue=billing,cancel_order=cancel,delete_account=cancel,recover_password=access,registration_problems=access,complaint=complaint,*=none)
TONES=angry,frustrated,abusive,anxious

# A config like the example in $W/NAME, reading the default pack and, if given, one more rules
# file; prints its path.
config() {
    local dir="$W/$1"
    mkdir -p "$dir/rules"
    sed "s#^dir = \"../templates\".*#dir = \"$PWD/templates\"#" config/triaged.toml >"$dir/triaged.toml"
    cp config/rules/*.toml "$dir/rules/"
    [ -z "${2:-}" ] || cp "$2" "$dir/rules/zz-learned.toml"
    echo "$dir/triaged.toml"
}
