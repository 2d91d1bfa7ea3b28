#!/bin/sh
# One command from a fresh clone: install, build, and run a demo campaign end to end
# on the embedded defaults (SQLite file, example template, fixture CSV), then a real
# SMTP send to `mailq sink`, a capture server on loopback. Nothing leaves this machine.
set -eu
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ ! -f dist/cli/main.js ]; then
  echo "==> npm ci (installs dependencies and builds mailq)"
  npm ci --no-audit --no-fund
fi
DEMO=.mailq-demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
export MAILQ_DB="$DEMO/demo.db"
mailq() { node bin/mailq.js "$@"; }

echo "==> mailq import fixtures/demo-recipients.csv --campaign demo --template templates/newsletter"
mailq import fixtures/demo-recipients.csv --campaign demo --template templates/newsletter
echo
echo "==> mailq rejects --campaign demo"
mailq rejects --campaign demo
echo
echo "==> mailq check --campaign demo"
mailq check --campaign demo
echo
echo "==> mailq preview --campaign demo --row 1 --format text"
mailq preview --campaign demo --row 1 --format text
echo
echo "==> mailq preview --campaign demo --to ada@example.com --out $DEMO/ada.eml"
mailq preview --campaign demo --to ada@example.com --out "$DEMO/ada.eml"
head -n 12 "$DEMO/ada.eml"
echo "..."
echo
echo "==> mailq sink --port 0 --out $DEMO/inbox   (a local SMTP capture server, in the background)"
node bin/mailq.js sink --port 0 --out "$DEMO/inbox" 2>"$DEMO/sink.log" &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
i=0
until grep -q 'listening on' "$DEMO/sink.log" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 100 ] && { cat "$DEMO/sink.log"; exit 1; }; sleep 0.1
done
URL=$(sed -n 's/.*listening on \(smtp:[^,]*\),.*/\1/p' "$DEMO/sink.log")
echo
echo "==> mailq send --campaign demo --transport $URL --yes"
mailq send --campaign demo --transport "$URL" --yes
echo
echo "==> mailq status --campaign demo"
mailq status --campaign demo
echo
echo "==> mailq campaigns"
mailq campaigns
echo
echo "==> mailq report --campaign demo --out $DEMO/report.html   (self-contained: open it in a browser)"
mailq report --campaign demo --out "$DEMO/report.html"
echo
echo "The sink stored $(ls "$DEMO/inbox" | wc -l) messages in $DEMO/inbox"
echo
echo "Demo finished. The job database is $MAILQ_DB; try: MAILQ_DB=$MAILQ_DB node bin/mailq.js --help"
