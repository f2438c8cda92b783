"""Exim's private error numbers as named outcomes (pymta.errnos)."""
from pymta.address import Address, Host
from pymta.delivery import retry
from pymta.errnos import EximErrno


def test_values_are_exims():
    # These numbers appear in log lines ("defer (-53)") and must match Exim 4.96's.
    assert (EximErrno.RCPT4XX, EximErrno.MAIL4XX, EximErrno.DATA4XX) == (-44, -45, -46)
    assert (EximErrno.RRETRY, EximErrno.LRETRY, EximErrno.HRETRY) == (-52, -53, -54)
    assert EximErrno.SMTPCLOSED == -18 and EximErrno.CONNECTTIMEOUT == -43


def test_log_text_is_the_bare_number():
    assert f"defer ({EximErrno.RRETRY})" == "defer (-52)"
    assert str(EximErrno.RCPT4XX) == "-44"


def test_retry_error_names_by_outcome():
    h = Host("mx.example", "192.0.2.1", 25, mx=10)
    names = {e: retry.error_name(Address("a@b.example", basic_errno=e, more_errno=451,
                                         host_used=h))
             for e in (EximErrno.RCPT4XX, EximErrno.MAIL4XX, EximErrno.DATA4XX,
                       EximErrno.SMTPCLOSED, EximErrno.CONNECTTIMEOUT, EximErrno.EXIMQUOTA)}
    assert names == {EximErrno.RCPT4XX: "rcpt_451", EximErrno.MAIL4XX: "mail_451",
                     EximErrno.DATA4XX: "data_451", EximErrno.SMTPCLOSED: "lost_connection",
                     EximErrno.CONNECTTIMEOUT: "timeout_connect_MX",
                     EximErrno.EXIMQUOTA: "quota"}
