#!/usr/bin/env bash
# Render a report's index.html in headless Chromium and write a PNG (the README's screenshot).
#   scripts/screenshot_report.sh reports/latest/index.html docs/report.png [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install chromium). No network: the report is self-contained.
set -euo pipefail
html=${1:?usage: screenshot_report.sh INDEX_HTML OUT_PNG [WIDTHxHEIGHT]}
out=${2:?usage: screenshot_report.sh INDEX_HTML OUT_PNG [WIDTHxHEIGHT]}
size=${3:-1200x2400}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "error: chromium not found (apt-get install chromium)" >&2; exit 2; }
[ -f "$html" ] || { echo "error: $html does not exist" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.png"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --window-size="${size/x/,}" --screenshot="$tmp" "file://$(realpath "$html")" >/dev/null 2>&1
mv "$tmp" "$out"
echo "wrote $out"
