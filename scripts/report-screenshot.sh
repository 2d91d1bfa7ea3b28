#!/bin/sh
# Regenerates docs/report.png: a realistic campaign (300 recipients over 9 domains,
# mixed outcomes from the sink's fault addresses, a few slow replies) is sent to
# `mailq sink` on loopback, then `mailq report --format html` is rendered by
# headless Chromium. Takes about a minute and a half (the send is rate-limited so
# the timeline has a shape). Nothing leaves the machine.
#   sh scripts/report-screenshot.sh [out.png]
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-docs/report.png}
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROMIUM" ]; then
  echo "chromium not found: install it with \`apt-get install chromium\` (as root, Debian/Ubuntu)" >&2
  exit 1
fi
[ -f dist/cli/main.js ] || npm run build
WORK=$(mktemp -d)
SINK=
cleanup() {
  [ -n "$SINK" ] && kill "$SINK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
export MAILQ_DB="$WORK/report.db"
mailq() { node bin/mailq.js "$@"; }

# 300 recipients; a fixed linear congruential sequence picks each one's fault, so
# every run draws the same campaign.
node -e '
  const domains = ["gmail.com","gmail.com","gmail.com","outlook.com","outlook.com","yahoo.com","icloud.com","orange.fr","example.org","acme-corp.example","mail.example.net"];
  const faults = [[70,""],[4,"greylist-"],[3,"transient2-"],[3,"bounce-"],[1,"reject-"],[1,"blocked-"],[1,"transient9-"],[1,"drop1-"],[6,"slow400-"],[4,"slow1500-"],[3,"slow3000-"],[3,"slow120-"]];
  const names = ["ada","alan","grace","linus","margaret","ken","barbara","dennis","radia","edsger","frances","john"];
  let seed = 20240501;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const total = faults.reduce((a, f) => a + f[0], 0);
  const lines = ["email,first_name,last_name,plan,city"];
  for (let i = 0; i < 300; i++) {
    let r = rnd() * total, tag = "";
    for (const [w, t] of faults) { if ((r -= w) < 0) { tag = t; break; } }
    const name = names[i % names.length];
    const domain = domains[Math.floor(rnd() * domains.length)];
    lines.push(`${tag}${name}.${i}@${domain},${name[0].toUpperCase() + name.slice(1)},Example,${i % 3 ? "pro" : "free"},Paris`);
  }
  process.stdout.write(lines.join("\n") + "\n");
' > "$WORK/recipients.csv"

mailq import "$WORK/recipients.csv" --campaign spring-launch --template templates/newsletter >/dev/null
node bin/mailq.js sink --port 0 2>"$WORK/sink.log" &
SINK=$!
i=0
until grep -q 'listening on' "$WORK/sink.log" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 100 ] && { cat "$WORK/sink.log" >&2; exit 1; }; sleep 0.1
done
URL=$(sed -n 's/.*listening on \(smtp:[^,]*\),.*/\1/p' "$WORK/sink.log")
echo "==> sending 300 recipients to $URL at 4/s" >&2
mailq send --campaign spring-launch --transport "$URL" --rate 4/s --concurrency 8 \
  --backoff 5s:20s --max-attempts 3 --yes || true
mailq report --campaign spring-launch --format html --out "$WORK/report.html"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
  --user-data-dir="$WORK/chromium" --window-size=1200,2500 \
  --screenshot="$OUT" "file://$WORK/report.html" 2>/dev/null
echo "wrote $OUT" >&2
