# shellcheck shell=sh
# The relay canary (pyinfra_lockdown/canary.py), run as `sh -c <this> lockdown-canary ID TO
# LIMIT FROM`: $1 id, $2 recipient, $3 time limit in seconds, $4 envelope sender (root, or a
# fallback route's sender: fallback.canary_sender). Exits 0 whenever it reached a verdict.
set -u
id=$1; to=$2; limit=$3; from=$4; start=$(date +%s)
out() { echo "lockdown-canary $1"; }
lf=$(postconf -h maillog_file 2>/dev/null || true)
if [ -n "$lf" ]; then src="file"
elif command -v journalctl >/dev/null 2>&1 && [ -d /run/systemd/journal ]; then src=journal
else src="file"; lf=/var/log/mail.log; fi
skip=1
# only lines Postfix's daemons wrote (their uid, from the kernel), never `logger -t postfix/...`
pu=$(id -u postfix 2>/dev/null || echo none)
if [ "$src" = file ]; then skip=$(( $(wc -l 2>/dev/null < "$lf" || echo 0) + 1 )); fi
logs() {
  if [ "$src" = journal ]; then
    journalctl -q --no-pager -o cat --since "@$((start - 1))" _UID="$pu" -t postfix/cleanup \
      -t postfix/smtp -t postfix/error -t postfix/qmgr -t postfix/bounce 2>/dev/null
  else tail -n +"$skip" "$lf" 2>/dev/null; fi
}
out "log=$src"
printf 'To: %s\nFrom: root\nSubject: lockdown relay check %s\n%s: %s\n%s\n\n%s\n' \
  "$to" "$id" "X-Lockdown-Canary" "$id" "Message-ID: <lockdown-canary-$id@lockdown.invalid>" \
  "lockdown sent this after changing the relay settings, to prove mail leaves this host." \
  | sendmail -t -i -f "$from" || { out "result=submit-failed"; exit 0; }
qid=; line=; polls=0
while :; do
  text=$(logs)
  if [ -z "$qid" ]; then
    qid=$(printf '%s\n' "$text" | grep -F "message-id=<lockdown-canary-$id@" | awk \
      '{for (i = 1; i < NF; i++) if ($(i+1) ~ /^message-id=/) {sub(/:$/, "", $i); print $i; exit}}')
  fi
  if [ -n "$qid" ]; then
    verdict="(^|[^0-9A-Za-z])$qid: to=<.*status=(sent|deferred|bounced|expired)"
    line=$(printf '%s\n' "$text" | grep -E "$verdict" | head -n 1)
    [ -n "$line" ] && break
  fi
  [ $(( $(date +%s) - start )) -ge "$limit" ] && break
  # a healthy relay takes a few 100 ms: look often at first, then every 0.5 s
  polls=$((polls + 1)); if [ "$polls" -le 20 ]; then sleep 0.1; else sleep 0.5; fi
done
out "queue_id=${qid:-unknown}"
status=$(printf '%s\n' "$line" | sed -n 's/.* status=\([a-z]*\).*/\1/p')
out "result=${status:-timeout}"
[ -n "$line" ] && out "line=${line#*: to=}"
if [ "$status" != sent ]; then
  # the last thing Postfix said about the canary, even without a verdict yet
  [ -z "$line" ] && [ -n "$qid" ] && last=$(printf '%s\n' "$text" | grep -F "$qid: " | tail -n 1) \
    && [ -n "$last" ] && out "last=${last#*"$qid": }"
  for q in $(postqueue -j 2>/dev/null | sed -n 's/.*"queue_id": *"\([^"]*\)".*/\1/p'); do
    if postcat -hq "$q" 2>/dev/null | grep -qx "X-Lockdown-Canary: $id"; then
      postsuper -d "$q" >/dev/null 2>&1 && out "removed=$q"
    fi
  done
fi
exit 0
