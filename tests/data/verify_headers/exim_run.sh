#!/bin/sh
# Record Exim 4.96's replies and log lines for `session` under `configure` (-bh).
# Usage: sh tests/data/verify_headers/exim_run.sh > tests/data/verify_headers/exim-4.96-bh.txt
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 777 "$work"
{ printf 'keep_environment =\nexim_user = Debian-exim\nspool_directory = %s/spool\n' "$work"
  cat "$here/configure"; } > "$work/configure"
sed 's/$/\r/' "$here/session" | exim4 -C "$work/configure" -bh 192.0.2.1 2>&1 \
  | grep -v '^>>>' | grep -v '^250-' | grep -v '^\*\*\*\*' | grep -v '^220 ' | grep -v '^$'
rm -rf "$work"
