"""``pipspec``: each pip line lockstep cannot lock is refused naming the line and the fix."""

from __future__ import annotations

import pytest

from spawner.lock.pipspec import parse_pip_section
from spawner.lock.spec import SpecError

TEXT = "dependencies:\n  - pip:\n    - {line}\n"


def parse(*lines, include=None):
    text = "dependencies:\n  - pip:\n" + "".join(f"    - {ln}\n" for ln in lines)
    return parse_pip_section(list(lines), source="environment.yml", text=text, include=include)


def test_names_versions_extras_and_markers_are_kept():
    section = parse("Requests[socks]>=2.31", 'msgpack==1.2.4; sys_platform == "linux"', "six")
    assert section.requirements == (
        "Requests[socks]>=2.31", 'msgpack==1.2.4; sys_platform == "linux"', "six")
    assert [ln.name for ln in section.lines] == ["requests", "msgpack", "six"]
    assert section.lines[1].where == "environment.yml:4"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("-e ./mypkg", "is an editable install"),
        ("--editable=git+https://x/y.git", "is an editable install"),
        ("./wheels/mypkg-1.0-py3-none-any.whl", "is a local path"),
        ("/srv/mypkg", "is a local path"),
        ("git+https://github.com/me/pkg.git@v1", "is a VCS URL"),
        ("pkg @ git+https://github.com/me/pkg.git", "is a VCS URL"),
        ("pkg @ https://example.org/pkg-1.0-py3-none-any.whl", "installs from a direct URL"),
        ("requests>>2", "is not a pip requirement"),
        ("requests==2.32 --hash=sha256:00", "carries --hash"),
        ("--pre", "pip option '--pre' is not one lockstep locks with"),
        ("--index-url ftp://mirror/simple", "needs an https:// URL"),
    ],
)
def test_lines_lockstep_cannot_lock(line, says):
    with pytest.raises(SpecError) as err:
        parse("six", line)
    message = str(err.value)
    assert message.startswith("environment.yml:4: "), message
    assert says in message


def test_index_options_and_requirement_files():
    files = {"reqs.txt": ["msgpack==1.2.4  # pinned", "-r more.txt"], "more.txt": ["tabulate"]}

    def include(name, from_source):
        return name, files[name]

    section = parse("--index-url https://pypi.lab/simple/", "--extra-index-url "
                    "https://extra.lab/simple", "-r reqs.txt", include=include)
    assert section.index_url == "https://pypi.lab/simple"
    assert section.extra_index_urls == ("https://extra.lab/simple",)
    assert section.requirements == ("msgpack==1.2.4", "tabulate")
    assert section.includes == ("reqs.txt", "more.txt")
    assert section.lines[1].where == "more.txt:1"


def test_one_package_required_twice_differently():
    with pytest.raises(SpecError, match="msgpack is required twice"):
        parse("msgpack==1.0", "msgpack==1.2")
