"""The leak check of the lab's secret test finds what the state read once printed."""
import hashlib

from tests.lab.secret_forms import leaks, needles

RELAYHOST, LOGIN, PASSWORD = "[10.77.0.1]:587", "postmaster@lab.test", "pw-weak"
SEARCHED = needles(RELAYHOST, LOGIN, PASSWORD)


def test_the_old_state_read_sha256_is_a_leak():
    old = hashlib.sha256(f"{RELAYHOST} {LOGIN}:{PASSWORD}\n".encode()).hexdigest()
    printed = f"[box1] source: file root root 600 1795699581 2026-11-26 13:26:21.8 +0000 {old}"
    assert leaks(printed, SEARCHED) and leaks(printed.upper(), SEARCHED)


def test_other_forms_and_encodings_are_leaks():
    assert leaks(f"x {PASSWORD} y", SEARCHED) == ["the password"]
    assert leaks(hashlib.md5(f"{LOGIN}:{PASSWORD}".encode()).hexdigest(), SEARCHED)
    assert "AUTH PLAIN base64" in leaks("AHBvc3RtYXN0ZXJAbGFiLnRlc3QAcHctd2Vhaw==", SEARCHED)


def test_a_salted_scrypt_stamp_and_unrelated_digests_are_not():
    from pyinfra_lockdown.secret_stamp import new_stamp

    stamp = new_stamp(f"{RELAYHOST} {LOGIN}:{PASSWORD}\n")
    assert leaks(f"stamp: valid {stamp} " + hashlib.sha256(b"aliases").hexdigest(), SEARCHED) == []
