"""Long ACL messages as SMTP replies: where the lines break (each case's answer is what
exim4 4.96 -bh sent for the same message), and the extended code on every line."""
import pytest

from pymta.acl.engine import smtp_reply_text
from pymta.acl.reply_text import split_user_message


@pytest.mark.parametrize("message,lines", [
    ("short enough", ["short enough"]),
    ("This is a very long rejection message that goes on and on: it has more than "
     "seventy five characters for sure",
     ["This is a very long rejection message that goes on and on:",
      "it has more than seventy five characters for sure"]),
    ("Rejected after DATA: syntax error in 'From:' header when scanning for sender: xx",
     ["Rejected after DATA: syntax error in 'From:' header when scanning for",
      "sender: xx"]),
    ("Deferring: " + "x" * 88 + " yyy zzz", ["Deferring: " + "x" * 88, "yyy zzz"]),
    ("short line\nThis second line is long enough to be split somewhere near the end "
     "of it ok",
     ["short line",
      "This second line is long enough to be split somewhere near the end of it ok"]),
    ("aaaa bbbb: " + "c" * 30 + " " + "d" * 20 + ": " + "e" * 22 + " fff: ggg hhh iii",
     ["aaaa bbbb: " + "c" * 30 + " " + "d" * 20 + ":", "e" * 22 + " fff: ggg hhh iii"]),
    ("0123456789 " * 6 + "01234567 9 0123456789",
     ["0123456789 " * 5 + "0123456789 01234567", "9 0123456789"]),
    ("x" * 100, ["x" * 100]),
])
def test_lines_break_where_exim_breaks_them(message, lines):
    assert split_user_message(message).split("\n") == lines


def test_the_code_counts_and_an_extended_code_is_repeated():
    code, text = smtp_reply_text("550 5.7.1 With a code, this message is also long "
                                 "enough to be broken into two lines", 550)
    assert code == 550
    assert text == ("5.7.1 With a code, this message is also long enough to be broken "
                    "into\n5.7.1 two lines")
    # without a three-digit code an extended one is only text
    assert smtp_reply_text("5.7.1 first\nsecond", 550) == (550, "5.7.1 first\nsecond")
    assert smtp_reply_text("551 5.7.1 other\nsecond", 550) == \
        (551, "5.7.1 other\n5.7.1 second")
