#!/bin/sh
# Re-record Exim 4.96's behaviour for the recv_opts tests (tests/*/test_recv_opts*.py).
# Run as root from anywhere: sh tests/data/recv_opts/record.sh
# Needs exim4 (Debian package).  Writes the *.txt files next to this script.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
chmod 777 "$T"
mkdir -p "$T/spool" "$T/log"
chmod 777 "$T/spool" "$T/log"
cat > "$T/conf" <<CONF
keep_environment =
exim_user = Debian-exim
spool_directory = $T/spool
log_file_path = $T/log/%slog
primary_hostname = mx.test.example
acl_smtp_rcpt = accept
acl_smtp_data = check_data
.ifdef O1
O1
.endif
.ifdef O2
O2
.endif
.ifdef O3
O3
.endif
begin acl
check_data:
  deny !verify = header_syntax
  accept
begin routers
r:
  driver = redirect
  data = :blackhole:
CONF

# -D arguments for up to three main option settings separated by ";".
defs() {
    n=0
    echo "$1" | tr ';' '\n' | while IFS= read -r o; do
        [ -n "$o" ] || continue
        n=$((n + 1))
        printf '%s\n' "-DO$n=$o"
    done
}

# SMTP replies of a -bh session (the banner's date removed).
bh() {  # bh OUTFILE OPTS INPUT
    printf "$3" | (IFS='
'; exim4 -C "$T/conf" $(defs "$2") -bh 127.0.0.1 2>/dev/null) \
        | grep '^[0-9][0-9][0-9][ -]' | sed '1s/ESMTP Exim 4.96 .*/ESMTP/' > "$HERE/$1"
}

# The -H header lines (flag and name only) of a message received by -bs -odq.
headers() {  # headers OUTFILE OPTS
    rm -rf "$T/spool/input"
    printf 'HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nDelivery-date: x\r\nEnvelope-to: y\r\nReturn-path: <z>\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n' \
        | (IFS='
'; exim4 -C "$T/conf" $(defs "$2") -odq -bs >/dev/null 2>&1)
    sed -n 's/^[0-9][0-9][0-9]\(.\) \([A-Za-z-]*\):.*/\1 \2/p' "$T"/spool/input/*-H \
        | grep -v ' Received$\| Message-Id$\| From$\| Date$' > "$HERE/$1"
}

headers transit_default.txt ""
headers transit_off.txt "delivery_date_remove = false;envelope_to_remove = false;return_path_remove = false"

HELO_INPUT='MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@test.example>\r\nHELO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n'
bh helo_required_match.txt "hosts_require_helo = 127.0.0.1" "$HELO_INPUT"
bh helo_required_other.txt "hosts_require_helo = 127.0.0.2" "$HELO_INPUT"

ANGLE_INPUT='HELO x\r\nMAIL FROM:<<a@b.example>>\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<<<alice@test.example>>>\r\nRCPT TO:<<alice@test.example>\r\nRCPT TO:<<alice@test.example>>>\r\nRCPT TO:<<alice@test.example> >\r\nRCPT TO:<alice@test.example>>\r\nRSET\r\nMAIL FROM:<<>>\r\nQUIT\r\n'
bh angle_default.txt "smtp_max_synprot_errors = 1000" "$ANGLE_INPUT"
bh angle_strip.txt "strip_excess_angle_brackets = true;smtp_max_synprot_errors = 1000" "$ANGLE_INPUT"
DOT_INPUT='HELO x\r\nMAIL FROM:<a@b.example.>\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@test.example.>\r\nRCPT TO:<alice@test.example..>\r\nRCPT TO:<alice@[127.0.0.1].>\r\nRCPT TO:<alice@.>\r\nRCPT TO:alice@test.example.\r\nQUIT\r\n'
bh dot_default.txt "smtp_max_synprot_errors = 1000" "$DOT_INPUT"
bh dot_strip.txt "strip_trailing_dot = true;smtp_max_synprot_errors = 1000" "$DOT_INPUT"

UTF8_INPUT='HELO x\r\nMAIL FROM:<a@b\303\251.example>\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@t\303\251st.example>\r\nQUIT\r\n'
bh utf8_default.txt "" "$UTF8_INPUT"
bh utf8_allow.txt "allow_utf8_domains = true" "$UTF8_INPUT"

# verify = header_syntax on To: lines: "option|header|final DATA reply" per line.
: > "$HERE/header_syntax.txt"
for opt in "" "strip_trailing_dot = true" "strip_excess_angle_brackets = true" \
           "allow_utf8_domains = true"; do
    for hdr in "To: <alice@test.example.>" "To: alice@test.example." \
               "To: <<alice@test.example>>" "To: x <<alice@test.example>>" \
               "To: <<alice@test.example>" "To: c@d\303\251.example"; do
        reply=$(printf "HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n$hdr\r\n\r\nb\r\n.\r\nQUIT\r\n" \
            | (IFS='
'; exim4 -C "$T/conf" $(defs "$opt") -bh 127.0.0.1 2>/dev/null) \
            | grep '^[0-9][0-9][0-9] ' | sed -n 6p | sed 's/ id=.*//' | tr -d '\r')
        echo "$opt|$hdr|$reply" >> "$HERE/header_syntax.txt"
    done
done

# Which msglog files exist after reception (-odq) and after the delivery (-M).
msglogs() {  # msglogs OUTFILE OPTS
    rm -rf "$T/spool/input" "$T/spool/msglog" "$T/spool/msglog.OLD"
    printf 'HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n' \
        | (IFS='
'; exim4 -C "$T/conf" $(defs "$2") -odq -bs >/dev/null 2>&1)
    id=$(ls "$T/spool/input" | sed -n 's/-H$//p')
    { echo "after reception:"
      (cd "$T/spool" && find msglog* -type f 2>/dev/null | sed "s/$id/ID/" | sort)
      (IFS='
'; exim4 -C "$T/conf" $(defs "$2") -M "$id" >/dev/null 2>&1)
      echo "after delivery:"
      (cd "$T/spool" && find msglog* -type f 2>/dev/null | sed "s/$id/ID/" | sort)
    } > "$HERE/$1"
}
msglogs msglog_default.txt ""
msglogs msglog_off.txt "message_logs = false"
msglogs msglog_preserve.txt "preserve_message_logs = true"

# local_sender_retain: $message_headers of a message from the untrusted user nobody
# (exim4 -bf, which needs no spool), "option|headers" per line, Message-Id/Date masked;
# then the error for local_sender_retain with local_from_check left true.
chmod 644 "$T/conf"
printf '# Exim filter\ntestprint "$message_headers"\n' > "$T/filter"
chmod 644 "$T/filter"
: > "$HERE/sender_retain.txt"
for opt in "local_from_check = false" "local_from_check = false;local_sender_retain = true"; do
    hdrs=$(printf 'To: a@test.example\nFrom: x@else.example\nSender: fake@x.example\nSubject: s\n\nb\n' \
        | su -s /bin/sh nobody -c "exim4 -C $T/conf $(defs "$opt" | sed "s/.*/'&'/" | tr '\n' ' ') -bf $T/filter" 2>&1 \
        | sed -n 's/^Testprint: //p' \
        | sed 's/Message-Id: <[^>]*>/Message-Id: <ID>/; s/Date: [^\\]*$/Date: DATE/')
    printf "%s|%s\n" "$opt" "$hdrs" >> "$HERE/sender_retain.txt"
done
exim4 -C "$T/conf" -DO1="local_sender_retain = true" -bV 2>&1 \
    | sed -n 's/^[0-9-]* [0-9:]* //p' | head -1 > "$HERE/sender_retain_error.txt"

rm -rf "$T"
