"""environment.yml parsing, channel/platform/virtual-package inputs, mirrors (pure, fast)."""

from __future__ import annotations

import pytest

from spawner.errors import LockstepError
from spawner.lock import condalock
from spawner.lock.fetch import Archive, mirrored_url
from spawner.lock.spec import (
    SpecError,
    parse_channel_url_args,
    parse_environment,
    parse_virtual_packages,
    resolve_channels,
    select_platforms,
)

GOOD = """\
name: demo
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.11
  - numpy >=1.26  # [linux]
platforms:
  - linux-64
"""


def parse(text: str):
    return parse_environment(text, source="environments/demo/environment.yml")


def test_good_spec_is_read_as_written_without_nodefaults():
    spec = parse(GOOD)
    assert spec.name == "demo"
    assert spec.channels == ("conda-forge",)
    assert spec.dependencies == ("python=3.11", "numpy >=1.26")
    assert spec.platforms == ("linux-64",)


def test_pip_section_is_read_by_pipplan_not_as_conda_specs():
    text = GOOD.replace(
        "  - python=3.11\n", "  - python=3.11\n  - pip:\n    - requests\n    - rich==13\n"
    )
    spec = parse(text)
    assert "python=3.11" in spec.dependencies
    assert not any("requests" in d or "rich" in d for d in spec.dependencies)


def test_malformed_yaml_names_the_file_and_the_line():
    with pytest.raises(
        SpecError,
        match=r"(?s)^environments/demo/environment.yml: not valid YAML: .*"
        r'"environments/demo/environment.yml", line 1',
    ):
        parse("channels: [conda-forge\ndependencies:\n  - numpy\n")


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ("channels: [conda-forge]\ndependencies: numpy\n", "'dependencies'", "- python=3.11"),
        ("channels: [conda-forge]\n", "'dependencies'", "- numpy"),
        ("channels: conda-forge\ndependencies: [numpy]\n", "'channels'", "- conda-forge"),
        ("dependencies: [numpy]\n", "'channels'", "- conda-forge"),
        ("channels: [nodefaults]\ndependencies: [numpy]\n", "'channels'", "conda-forge"),
        (
            "channels: [conda-forge]\ndependencies: [numpy, {conda: x}]\n",
            "dependencies[1]",
            "'numpy>=1.26'",
        ),
        ("channels: [conda-forge]\ndependencies: [numpy, 3.11]\n", "dependencies[1]", "quote it"),
        (
            "name: [x]\nchannels: [conda-forge]\ndependencies: [numpy]\n",
            "'name'",
            "name: my-project",
        ),
        (
            "channels: [conda-forge]\ndependencies: [numpy]\nplatforms: linux-64\n",
            "platforms",
            "- linux-64",
        ),
        (
            "channels: [conda-forge]\ndependencies: [numpy]\nplatforms: [linux-32]\n",
            "linux-32",
            "allowed: linux-64",
        ),
        (
            "channels: [conda-forge]\ndependencies: [numpy]\nvariables: {A: 1}\n",
            "'variables'",
            "Remove or rename",
        ),
        ("- numpy\n", "must be a mapping", "channels:"),
    ],
)
def test_wrong_types_name_file_key_and_fix(text, key, fix):
    with pytest.raises(SpecError) as err:
        parse(text)
    message = str(err.value)
    assert message.startswith("environments/demo/environment.yml: ")
    assert key in message and fix in message


def test_exported_prefix_key_is_ignored():
    assert parse(GOOD + "prefix: /home/me/envs/demo\n").channels == ("conda-forge",)


def test_platforms_come_from_spec_then_flag_then_settings():
    with_key = parse(GOOD)
    without = parse(GOOD.split("platforms:")[0])
    assert select_platforms(spec=with_key, requested=(), default=["osx-64"]) == ("linux-64",)
    assert select_platforms(spec=with_key, requested=["linux-64"], default=[]) == ("linux-64",)
    assert select_platforms(
        spec=without, requested=["osx-arm64", "linux-64"], default=["win-64"]
    ) == ("osx-arm64", "linux-64")
    assert select_platforms(spec=without, requested=[], default=["linux-64"]) == ("linux-64",)
    with pytest.raises(SpecError, match="drop --platform, or change the platforms: key"):
        select_platforms(spec=with_key, requested=["osx-64"], default=[])
    with pytest.raises(SpecError, match="--platform names unknown platform"):
        select_platforms(spec=without, requested=["linux64"], default=[])


def test_channels_map_names_to_urls_and_keep_urls():
    resolved = resolve_channels(
        ["conda-forge", "https://repo.example.com/pkgs/main/"],
        channel_urls={"conda-forge": "file:///srv/cf/"},
        source="env.yml",
    )
    assert [(c.name, c.url) for c in resolved] == [
        ("conda-forge", "file:///srv/cf"),
        ("https://repo.example.com/pkgs/main/", "https://repo.example.com/pkgs/main"),
    ]


def test_unknown_channel_names_the_setting_and_the_flag():
    with pytest.raises(SpecError) as err:
        resolve_channels(["bioconda"], channel_urls={"conda-forge": "https://x"}, source="env.yml")
    message = str(err.value)
    assert "channel 'bioconda' has no URL" in message
    assert (
        "c.Lockstep.channel_urls = {'bioconda': 'https://conda.anaconda.org/bioconda'}" in message
    )
    assert "--channel-url bioconda=URL" in message


def test_channel_url_flag():
    assert parse_channel_url_args(
        ["conda-forge=file:///a/", "x=https://b", "conda-forge=http://c"]
    ) == {"conda-forge": "http://c", "x": "https://b"}
    for bad in ["conda-forge", "=https://x", "conda-forge=/srv/cf"]:
        with pytest.raises(SpecError, match="must be NAME=URL"):
            parse_channel_url_args([bad])


def test_virtual_packages_per_platform():
    config = {"linux-64": ["__glibc=2.36=0", "__unix=0=0"]}
    assert parse_virtual_packages("linux-64", config) == (
        ("__glibc", "2.36", "0"),
        ("__unix", "0", "0"),
    )
    with pytest.raises(SpecError, match=r"c.Lockstep.virtual_packages\['osx-arm64'\] = \["):
        parse_virtual_packages("osx-arm64", config)
    with pytest.raises(SpecError, match="NAME=VERSION=BUILD"):
        parse_virtual_packages("linux-64", {"linux-64": ["glibc=2.36"]})


def test_mirrors_replace_the_longest_prefix_at_a_path_boundary():
    mirrors = {
        "https://conda.anaconda.org/conda-forge": "http://mirror/cf",
        "https://conda.anaconda.org": "http://mirror/all/",
    }
    url = "https://conda.anaconda.org/conda-forge/noarch/a-1-0.conda"
    assert mirrored_url(url, mirrors) == "http://mirror/cf/noarch/a-1-0.conda"
    assert (
        mirrored_url("https://conda.anaconda.org/bioconda/x.conda", mirrors)
        == "http://mirror/all/bioconda/x.conda"
    )
    assert (
        mirrored_url(
            "https://conda.anaconda.org/conda-forge-extra/x.conda",
            {"https://conda.anaconda.org/conda-forge": "http://m"},
        )
        == "https://conda.anaconda.org/conda-forge-extra/x.conda"
    )
    assert mirrored_url(url, {}) == url


def test_archive_file_name_comes_from_the_url():
    archive = Archive("a", "1", "0", "file:///c/noarch/a-1-0.conda", "00" * 32)
    assert archive.file_name == "a-1-0.conda"


class _Dep:
    def __init__(self, name, version, url, build=None, manager="conda"):
        self.name, self.version, self.url, self.build, self.manager = (
            name,
            version,
            url,
            build,
            manager,
        )


def test_build_string_is_read_from_the_url_when_the_entry_lacks_it():
    url = "https://conda.anaconda.org/conda-forge/linux-64/python-3.11.7-hab00c5b_1_cpython.conda"
    assert condalock.locked_build(_Dep("python", "3.11.7", url)) == "hab00c5b_1_cpython"
    assert condalock.locked_build(_Dep("x", "1", "https://h/noarch/x-1-py_0.tar.bz2")) == "py_0"
    assert condalock.locked_build(_Dep("x", "1", url, build="given")) == "given"
    assert (
        condalock.locked_build(
            _Dep("x", "1", "https://files.pythonhosted.org/x.whl", manager="pip")
        )
        == ""
    )


def test_depends_become_conda_locks_dependency_mapping():
    assert condalock.depends_to_dependencies(
        [
            "python >=3.11,<3.12.0a0",
            "python_abi 3.11.* *_cp311",
            "libgcc-ng >=12",
            "numpy",
            "__glibc >=2.17",
        ]
    ) == {
        "python": ">=3.11,<3.12.0a0",
        "python_abi": "3.11.*",
        "libgcc-ng": ">=12",
        "numpy": "",
        "__glibc": ">=2.17",
    }


def test_server_package_names_are_parsed_like_conda_lock_does():
    assert (
        condalock.versioned_dependency("jupyterhub-singleuser>=5").name == "jupyterhub-singleuser"
    )
    assert condalock.versioned_dependency("conda-forge::ipykernel 6.*").name == "ipykernel"
    with pytest.raises(LockstepError):
        condalock.versioned_dependency(">=3")
