#!/usr/bin/env bash
# Screenshots an HTML file (say a rendered email) in headless Chromium at a phone width (390 px)
# and a desktop width (1280 px), each as tall as the page:
#   bash scripts/screenshot.sh IN.html OUT_PREFIX   ->  OUT_PREFIX-phone.png, OUT_PREFIX-desktop.png
# Installs Chromium (Debian package) when it is missing, which needs root.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: bash scripts/screenshot.sh IN.html OUT_PREFIX" >&2
  exit 2
fi
[ -f "$1" ] || { echo "screenshot: no such file: $1" >&2; exit 1; }
in=$(realpath "$1")
out=$2
chromium=/usr/bin/chromium

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "screenshot: $chromium is missing; run as root or: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  echo "screenshot: installing chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Headless, and without the background traffic (updates, sync, ...) that otherwise floods the log
# with refused connections. Chromium's chatter goes to a log, shown only when a run fails.
shoot() {
  "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$tmp/profile" --hide-scrollbars --allow-file-access-from-files "$@" \
    2>"$tmp/log" || { cat "$tmp/log" >&2; return 1; }
}

mkdir -p "$(dirname "$out")"
for view in phone:390 desktop:1280; do
  name=${view%%:*} width=${view#*:} png=$(realpath -m "$out-$name.png")

  # Measure the page at this width. Chromium lays out a page it only dumps at least 500 px wide,
  # so the page goes into an iframe of exactly this width, and the wrapper (not the page, which
  # stays untouched) writes the page's size into the DOM that --dump-dom prints.
  printf '<body><iframe src="file://%s" style="width:%spx;height:99px;border:0" onload="%s"></iframe>' \
    "$in" "$width" 'const e = this.contentDocument.documentElement;
      document.body.dataset.w = e.scrollWidth; document.body.dataset.h = e.scrollHeight' \
    >"$tmp/measure.html"
  dom=$(shoot --dump-dom "file://$tmp/measure.html")
  wide=$(grep -o 'data-w="[0-9]*"' <<<"$dom" | tr -dc 0-9 || true)
  height=$(grep -o 'data-h="[0-9]*"' <<<"$dom" | tr -dc 0-9 || true)
  height=${height:-2600}  # if measuring failed, a height that fits most emails
  if [ "${wide:-0}" -gt "$width" ]; then
    echo "screenshot: warning: at $width px the page is $wide px wide, so it scrolls sideways" >&2
  fi

  # A screenshot is laid out at the window's width, so the page itself is shot.
  rm -f "$png"
  shoot --window-size="$width,$height" --screenshot="$png" "file://$in" >/dev/null
  [ -s "$png" ] || { echo "screenshot: chromium wrote no $png" >&2; cat "$tmp/log" >&2; exit 1; }
  echo "$png (${width}x$height)"
done
