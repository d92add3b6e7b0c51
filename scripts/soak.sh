#!/usr/bin/env bash
# Memory and stability soak of `edge run`: runs the daemon over the sample
# frames in a loop for MINUTES (default 10) with the live view on, samples
# its resident memory (VmRSS) and goroutine count every 10 s, and checks
# that RSS grows by at most 5% after the first minute and goroutines do not
# grow. Both swing (RSS with each garbage collection, goroutines with
# connections coming and going), so the check compares the peak of the
# second minute with the peak of the last minute. Prints a table; exits
# non-zero when a bound is broken.
#   scripts/soak.sh [MINUTES] [extra edge run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
shift || true
port=$(( 20000 + RANDOM % 20000 ))
log=$(mktemp)
bin/edge run --loop --http "127.0.0.1:$port" "$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
end=$(( $(date +%s) + minutes * 60 ))
start=$(date +%s)
printf "%6s %10s %11s %10s\n" "t(s)" "rss(KiB)" "goroutines" "frames"
base_rss=0 end_rss=0 base_g=0 end_g=0
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 10
  kill -0 $pid 2>/dev/null || { echo "soak: edge run exited:"; tail -20 "$log"; exit 1; }
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
  state=$(curl -s "127.0.0.1:$port/api/state" || true)
  g=$(printf '%s' "$state" | sed -n 's/.*"goroutines":\([0-9]*\).*/\1/p')
  frames=$(printf '%s' "$state" | sed -n 's/.*"processed":\([0-9]*\).*/\1/p')
  now=$(date +%s)
  t=$(( now - start ))
  printf "%6d %10s %11s %10s\n" "$t" "$rss" "${g:--}" "${frames:--}"
  if [ "$t" -ge 60 ] && [ "$t" -lt 120 ]; then
    [ "$rss" -gt "$base_rss" ] && base_rss=$rss
    [ -n "$g" ] && [ "$g" -gt "$base_g" ] && base_g=$g
  fi
  if [ "$t" -ge 120 ] && [ $(( end - now )) -lt 60 ]; then
    [ "$rss" -gt "$end_rss" ] && end_rss=$rss
    [ -n "$g" ] && [ "$g" -gt "$end_g" ] && end_g=$g
  fi
done
[ "$end_rss" -gt 0 ] && [ "$base_g" -gt 0 ] || { echo "soak: run at least 3 minutes"; exit 1; }
growth=$(awk -v a="$base_rss" -v b="$end_rss" 'BEGIN {printf "%.2f", 100 * (b - a) / a}')
echo "peaks in minute 2 / in the last minute: RSS $base_rss / $end_rss KiB ($growth%), goroutines $base_g / $end_g"
awk -v g="$growth" 'BEGIN {exit !(g <= 5)}' || { echo "soak: RSS grew more than 5%"; exit 1; }
[ "$end_g" -le "$base_g" ] || { echo "soak: goroutines grew"; exit 1; }
echo "soak: ok"
