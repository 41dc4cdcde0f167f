import pytest

from lab import addresses as A


def test_box_addresses_follow_the_index():
    assert (A.box_name(3), A.box_ipv4(3), A.box_ipv6(3)) == ("box3", "10.77.0.13", "fd77::13")
    assert A.box_ipv4(1) == "10.77.0.11"
    assert A.box_index("box12") == 12


@pytest.mark.parametrize("index", range(1, A.MAX_BOXES + 1, 7))
def test_every_address_is_valid_and_distinct_from_the_lab_side(index):
    import ipaddress

    v4 = ipaddress.ip_address(A.box_ipv4(index))
    v6 = ipaddress.ip_address(A.box_ipv6(index))
    assert v4 in ipaddress.ip_network("10.77.0.0/24")
    assert v6 in ipaddress.ip_network("fd77::/64")
    assert str(v4) not in (A.GATEWAY_V4, A.PROBER_V4)
    assert str(v6) not in (A.GATEWAY_V6, A.PROBER_V6)


def test_all_addresses_are_unique():
    indexes = range(1, A.MAX_BOXES + 1)
    assert len({A.box_ipv4(i) for i in indexes}) == A.MAX_BOXES
    assert len({A.box_ipv6(i) for i in indexes}) == A.MAX_BOXES


@pytest.mark.parametrize("bad", [0, -1, A.MAX_BOXES + 1])
def test_out_of_range_index_is_refused(bad):
    with pytest.raises(ValueError, match="lab down"):
        A.box_ipv4(bad)


@pytest.mark.parametrize("bad", ["box0", "box", "web1", "box01", "box1 "])
def test_box_index_rejects_foreign_names(bad):
    with pytest.raises(ValueError):
        A.box_index(bad)


def test_names_are_never_reused_within_a_run():
    assert A.next_free_index(0) == 1
    assert A.next_free_index(5) == 6  # even if box1..box5 were removed


def test_interface_names_fit_the_kernel_limit():
    assert A.veth_name(A.box_name(A.MAX_BOXES)) == "v-box240"
    assert len(A.veth_name(A.box_name(A.MAX_BOXES))) <= 15


def test_hosts_file_names_the_box_and_the_standin():
    hosts = A.hosts_file("box2")
    assert "127.0.1.1\tbox2.lab.test box2\n" in hosts
    assert "10.77.0.1\tsmtp.mailgun.lab.test\n" in hosts
