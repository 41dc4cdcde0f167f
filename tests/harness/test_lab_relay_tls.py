"""The lab's relay path as production has it (issue 22 item 1): a CA made once, the stand-in's
certificates for the real relay names, and a resolver that answers only those names."""
from cryptography import x509

from lab import addresses as A
from lab import resolver, tls
from lab.config import LabConfig
from lab.relay_names import CERTIFICATE_NAMES, RELAY_NAMES, SECOND_RELAY_NAME
from lab.state import LabState, ProcessRecord
from lab.teardown import Snapshot, plan


def _names(cert_path):
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert, set(san.get_values_for_type(x509.DNSName))


def test_genuine_and_impostor_certificates_name_the_same_relays_from_different_cas(tmp_path):
    lab_ca = tls.ensure_lab_ca(tmp_path / "cache")
    assert tls.ensure_lab_ca(tmp_path / "cache") == lab_ca  # made once, then kept
    made_once = lab_ca[0].read_bytes()
    assert tls.ensure_lab_ca(tmp_path / "cache")[0].read_bytes() == made_once
    impostor_ca = tls.ensure_impostor_ca(tmp_path / "state")
    tls.issue_relay_certificate(lab_ca, tmp_path / "cert.pem", tmp_path / "key.pem")
    tls.issue_relay_certificate(impostor_ca, tmp_path / "i-cert.pem", tmp_path / "i-key.pem")
    genuine, genuine_names = _names(tmp_path / "cert.pem")
    impostor, impostor_names = _names(tmp_path / "i-cert.pem")
    assert genuine_names == impostor_names == set(CERTIFICATE_NAMES)
    assert {"smtp.mailgun.org", "email-smtp.eu-west-1.amazonaws.com", "smtp.sendgrid.net",
            "smtp.postmarkapp.com", "smtp-relay.brevo.com"} <= genuine_names
    ca_subject = x509.load_pem_x509_certificate(made_once).subject
    assert genuine.issuer == ca_subject and impostor.issuer != ca_subject
    genuine.verify_directly_issued_by(x509.load_pem_x509_certificate(made_once))
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0


def test_resolver_answers_only_relay_names_from_its_own_command_line(tmp_path):
    config = LabConfig(state_dir=tmp_path, cache_dir=tmp_path, netns="ldtest")
    argv = resolver.argv(config)
    # no upstream, no host files, no config file of this machine; the lab bridge address only
    for option in ("--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--bind-interfaces",
                   f"--listen-address={A.GATEWAY_V4}", "--address=/#/"):
        assert option in argv
    assert not [a for a in argv if a.startswith(("--server", "--interface", "--resolv-file"))]
    records = [a.split("=", 1)[1].split(",") for a in argv if a.startswith("--host-record=")]
    stand_in = [r for r in records if r[0] != SECOND_RELAY_NAME]
    assert {r[0] for r in stand_in} == set(RELAY_NAMES)
    assert all(r[1:] == [A.GATEWAY_V4, A.GATEWAY_V6] for r in stand_in)
    assert [r[1:] for r in records if r[0] == SECOND_RELAY_NAME] == [[A.SECOND_RELAY_V4]]


def test_down_stops_the_resolver_by_its_recorded_pid(tmp_path):
    config = LabConfig(state_dir=tmp_path, cache_dir=tmp_path, netns="ldtest")
    state = LabState(resolver=ProcessRecord(pid=4242, start_time=7))
    actions = plan(config, Snapshot(state=state))
    assert [(a.kind, a.target, a.process) for a in actions] == [
        ("stop_process", "resolver", ProcessRecord(pid=4242, start_time=7))]
