#!/bin/sh
# One command from a fresh clone: install, build, and run a demo campaign end to end
# on the embedded defaults (SQLite file, example template, fixture CSV). Nothing leaves
# this machine: the demo stops at preview until the send engine lands.
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
echo "Demo finished. The job database is $MAILQ_DB; try: MAILQ_DB=$MAILQ_DB node bin/mailq.js --help"
