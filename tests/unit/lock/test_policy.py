"""Lock fields and channel URLs: what may reach a path, a URL or a command (issue 11)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spawner.lock.policy import ChannelError, ChannelPolicy, LockFieldError, check_package
from spawner.settings import Lockstep

SHA = "a" * 64
MD5 = "b" * 32
CHANNEL = "https://conda.anaconda.org/conda-forge"


def dep(**overrides):
    values = dict(
        name="numpy", version="2.0.1", build="py311_0", manager="conda", platform="linux-64",
        url=f"{CHANNEL}/linux-64/numpy-2.0.1-py311_0.conda", sha256=SHA, md5=MD5,
    )
    values.update(overrides)
    hashes = SimpleNamespace(sha256=values.pop("sha256"), md5=values.pop("md5"))
    return SimpleNamespace(hash=hashes, **values)


def test_a_plain_package_passes():
    check_package(dep(), source="conda-lock.yml")
    check_package(dep(url=f"{CHANNEL}/noarch/six-1.0-pyh_0.tar.bz2", name="six"), source="x")
    check_package(dep(version="1!2.0+local_1", name="_libgcc_mutex"), source="x")


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("sha256", "../../x", "64 lowercase hex digits"),
        ("sha256", "A" * 64, "64 lowercase hex digits"),
        ("sha256", "", "64 lowercase hex digits"),
        ("md5", "../x", "32 lowercase hex digits"),
        ("name", "../numpy", "letters, digits"),
        ("name", "num/py", "letters, digits"),
        ("version", "1..2", "letters, digits"),
        ("version", "1\0", "letters, digits"),
        ("build", "py/../x", "letters, digits"),
        ("url", f"{CHANNEL}/linux-64/../../../etc/passwd.conda", "'..' segments"),
        ("url", f"{CHANNEL}/linux-64/%2e%2e/x-1-0.conda", "'..' segments"),
        ("url", f"{CHANNEL}/linux-64/numpy-2.0.1-py311_0.conda?x=1", "'?query'"),
        ("url", f"{CHANNEL}/linux-64/numpy.whl", "NAME-VERSION-BUILD.conda"),
        ("url", f"{CHANNEL}/osx-64/numpy-2.0.1-py311_0.conda", "linux-64 or noarch"),
        ("url", "ftp://host/c/linux-64/numpy-2.0.1-py311_0.conda", "https://, http:// or file://"),
        ("url", "numpy-2.0.1-py311_0.conda", "https://, http:// or file://"),
    ],
)
def test_unsafe_fields_are_refused_naming_package_field_allowed_and_fix(field, value, allowed):
    key = {"sha256": "hash.sha256", "md5": "hash.md5"}.get(field, field)
    with pytest.raises(LockFieldError) as err:
        check_package(dep(**{field: value}), source="environments/demo/conda-lock.yml")
    message = str(err.value)
    assert message.startswith("environments/demo/conda-lock.yml: package ")
    assert f"field '{key}'" in message and allowed in message
    assert "`lockstep lock`" in message and "Nothing was fetched or written" in message
    assert err.value.exit_code == 2


def test_default_policy_allows_exactly_the_sites_channel_urls():
    policy = ChannelPolicy.from_settings(Lockstep())
    assert policy.allowed == (CHANNEL,)
    assert policy.problem(CHANNEL + "/") is None
    assert "not an allowed channel" in policy.problem("https://evil.example/conda-forge")
    assert "not an allowed channel" in policy.problem("file:///tmp/channel")


def test_allowed_channels_add_to_channel_urls_and_http_needs_an_insecure_host():
    settings = Lockstep(
        allowed_channels=["file:///srv/ch/", "http://mirror.lab:8080/cf", "http://other/cf"],
        insecure_channel_hosts=["mirror.lab:8080"],
    )
    policy = ChannelPolicy.from_settings(settings)
    assert policy.problem("file:///srv/ch") is None
    assert policy.problem("http://mirror.lab:8080/cf") is None
    problem = policy.problem("http://other/cf")
    assert "plain http://" in problem and "c.Lockstep.insecure_channel_hosts = ['other']" in problem


def test_lock_packages_from_an_unlisted_channel_are_refused():
    policy = ChannelPolicy(allowed=(CHANNEL,))
    policy.check_packages([dep()], source="x")
    evil = dep(url="https://evil.example/cf/linux-64/numpy-2.0.1-py311_0.conda")
    with pytest.raises(ChannelError) as err:
        policy.check_packages([evil], source="environments/demo/conda-lock.yml")
    message = str(err.value)
    assert "package 'numpy': field 'url'" in message and "'https://evil.example/cf'" in message
    assert "c.Lockstep.allowed_channels" in message and "Nothing was fetched" in message


def test_build_sandbox_setting_is_validated():
    assert Lockstep().build_sandbox == "bwrap"
    assert Lockstep(build_sandbox="none").build_sandbox == "none"
    with pytest.raises(Exception, match="allowed: 'bwrap' .default. or 'none' .unsafe."):
        Lockstep(build_sandbox="docker")


def test_pip_entries_are_listed_not_fetched_so_only_names_and_hashes_are_checked():
    pip = dep(manager="pip", build="", md5="", name="requests", version="2.32.3",
              url="https://files.pythonhosted.org/packages/x/requests-2.32.3.whl#sha256=ab")
    check_package(pip, source="x")
    with pytest.raises(LockFieldError, match="field 'name'"):
        check_package(dep(manager="pip", build="", md5="", name="../r"), source="x")
