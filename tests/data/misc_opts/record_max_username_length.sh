#!/bin/sh
# Record Exim 4.96's answers with max_username_length (run as root where exim4 is
# installed: sh tests/data/misc_opts/record_max_username_length.sh).  "messagebus" is a
# system user (10 characters) on the recording machine; "nobody" has 6.
set -e
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
mkdir -p "$tmp/spool/log"
chmod -R 777 "$tmp"
for limit in 8 0; do
  { printf 'keep_environment =\nexim_user = Debian-exim\n'
    sed "s#SPOOL#$tmp/spool#; s/^max_username_length = .*/max_username_length = $limit/" \
      "$here/max_username_length.conf"; } > "$tmp/conf"
  out="$here/max_username_length_$limit.txt"
  printf 'EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<messagebus@test.example>\r\nRCPT TO:<nobody@test.example>\r\nQUIT\r\n' |
    exim4 -C "$tmp/conf" -bh 127.0.0.1 2>&1 | grep -v '^>>>\|^\*\*\*\|^$' | grep -v '^220 ' > "$out"
  exim4 -C "$tmp/conf" -be '${lookup passwd{messagebus}{found}{not found}}' >> "$out"
done
rm -rf "$tmp"
