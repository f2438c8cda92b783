"""The SMTP sink exim4 delivered to when exim4_sink.jsonl was recorded:
python sink.py PORT SECONDS (run from the repository root)."""
import json
import sys
import time

from tests.support.sink import SmtpSink

s = SmtpSink(port=int(sys.argv[1])).start()
time.sleep(float(sys.argv[2]))
for m in s.messages:
    print(json.dumps({"sender": m.sender, "params": m.mail_params, "rcpt": m.recipients,
                      "data": m.data.decode()}))
s.stop()
