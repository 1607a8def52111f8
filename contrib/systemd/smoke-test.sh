#!/usr/bin/env bash
# Exercise systemd/hubwatch.service on a host where systemd runs (PID 1), as root:
#   sudo contrib/systemd/smoke-test.sh /opt/hubwatch/bin/hubwatch
# Installs the unit as hubwatch-smoke.service (ExecStart pointed at the given hubwatch), with a
# config in a temporary /etc folder, and checks: (1) a config error exits 78 and is NOT restarted;
# (2) an empty state database exits 78 naming state.path; (3) a good config starts (READY=1) and
# the systemd-run admin command reads the service's database as the same dynamic user;
# (4) stop is clean. Removes everything it installed. Prints one line per check; exit 0 = all passed.
# Not run by CI (no systemd as PID 1 there): tests/test_systemd.py checks the unit statically.
# `smoke-test.sh --print-unit HUBWATCH` only prints the unit it would install (tests/test_systemd.py).
set -euo pipefail
PRINT_ONLY=no
if [ "${1:-}" = --print-unit ]; then PRINT_ONLY=yes; shift; fi
HW=${1:?usage: smoke-test.sh [--print-unit] /path/to/bin/hubwatch}
NAME=hubwatch-smoke
ETC=/etc/$NAME
UNIT=/etc/systemd/system/$NAME.service
SRC=$(cd "$(dirname "$0")/../.." && pwd)/systemd/hubwatch.service
# The unit under another name: every path and name of its own (state, HF_HOME, credentials, config).
smoke_unit() {
  sed -e "s#/opt/hubwatch/bin/hubwatch#$HW#" -e "s#/etc/hubwatch#$ETC#g" \
      -e "s#StateDirectory=hubwatch#StateDirectory=$NAME#" -e "s#LoadCredential=hubwatch:#LoadCredential=$NAME:#" \
      -e "s#%S/hubwatch/#%S/$NAME/#" "$SRC"
}
if [ "$PRINT_ONLY" = yes ]; then smoke_unit; exit 0; fi
cleanup() {
  systemctl stop "$NAME" 2>/dev/null || true
  systemctl reset-failed "$NAME" 2>/dev/null || true
  rm -f "$UNIT"; rm -rf "$ETC"; rm -rf "/var/lib/private/$NAME" "/var/lib/$NAME"
  systemctl daemon-reload
}
trap cleanup EXIT
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; journalctl -u "$NAME" -n 20 --no-pager || true; exit 1; }

install -d -m 0755 "$ETC" && install -d -m 0700 "$ETC/credentials"
smoke_unit > "$UNIT"
write_config() { printf '%s\n' "$@" > "$ETC/config.toml"; chmod 0644 "$ETC/config.toml"; }
systemctl daemon-reload

# (1) a config error: 78, not restarted
write_config '[state]' 'path = "state.db"' '[[pin]]' 'repo = "org/m"' 'trakc = "main"'
systemctl start "$NAME" || true
sleep 15  # longer than RestartSec=10: a restart would show as a second start
[ "$(systemctl show -p ExecMainStatus --value "$NAME")" = 78 ] || fail "config error: exit status is not 78"
[ "$(systemctl show -p NRestarts --value "$NAME")" = 0 ] || fail "config error: restarted"
journalctl -u "$NAME" --no-pager | grep -q "pin\[0\].trakc: unknown key" || fail "config error: the key is not named"
ok "a config error exits 78, names the key, and is not restarted"
systemctl reset-failed "$NAME"

# (2) an empty state database: 78, naming state.path and the absolute path
write_config '[hub]' 'endpoint = "http://127.0.0.1:9"' '[state]' 'path = "state.db"' \
             '[[pin]]' 'repo = "org/m"' 'track = "main"'
systemctl start "$NAME" || true; sleep 3; systemctl stop "$NAME" || true  # creates the state folder
systemctl reset-failed "$NAME" 2>/dev/null || true
STATE=/var/lib/private/$NAME/state.db
# owned by the service's dynamic user (as its folder is): a root-owned file would be refused as
# "owned by uid 0" before it is ever read
: > "$STATE.empty" && chown --reference="$(dirname "$STATE")" "$STATE.empty" && mv "$STATE.empty" "$STATE"
rm -f "$STATE-wal" "$STATE-shm"
systemctl start "$NAME" || true; sleep 3
[ "$(systemctl show -p ExecMainStatus --value "$NAME")" = 78 ] || fail "empty database: exit status is not 78"
journalctl -u "$NAME" --no-pager | grep -q "state.path: /var/lib/$NAME/state.db: empty file" \
  || fail "empty database: state.path and the absolute path are not named"
ok "an empty state database exits 78 naming state.path and /var/lib/$NAME/state.db"
systemctl reset-failed "$NAME"; rm -f "$STATE"

# (3) a good start, then the admin command as the same dynamic user
systemctl start "$NAME"
[ "$(systemctl is-active "$NAME")" = active ] || fail "did not become active (READY=1)"
OUT=$(systemd-run --pipe --wait --collect --quiet -p DynamicUser=yes -p User="$NAME" -p StateDirectory="$NAME" \
      -p LoadCredential="$NAME:$ETC/credentials" -E HUBWATCH_CONFIG="$ETC/config.toml" "$HW" status 2>&1) \
  || fail "admin status failed: $OUT"
echo "$OUT" | grep -q "model:org/m@main" || fail "admin status did not read the service's database: $OUT"
ok "active; the systemd-run admin command reads the service's database as its user"

# (4) a clean stop
systemctl stop "$NAME"
[ "$(systemctl show -p ExecMainStatus --value "$NAME")" = 0 ] || fail "stop: exit status is not 0"
ok "SIGTERM: exit 0"
