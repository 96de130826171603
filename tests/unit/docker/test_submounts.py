"""spawner.docker.submounts: mountinfo parsing, the API gate, the refusal's text."""

from __future__ import annotations

import pytest

from spawner.docker.submounts import (
    SubmountRefused,
    api_has_recursive_read_only,
    check_sources,
    parse_mountinfo,
    submounts_below,
)

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/data rw shared:2 - ext4 /dev/sdb1 rw
41 40 0:36 / /srv/data/sales/nfs rw shared:3 - nfs srv:/x rw
42 22 0:37 / /srv/data-other rw shared:4 - tmpfs t rw
43 40 0:38 / /srv/data/with\\040space rw shared:5 - tmpfs t rw
"""


def test_parse_and_find_submounts():
    points = parse_mountinfo(MOUNTINFO)
    assert "/srv/data/with space" in points
    assert submounts_below("/srv/data/sales", points) == ["/srv/data/sales/nfs"]
    assert submounts_below("/srv/data", points) == ["/srv/data/sales/nfs",
                                                    "/srv/data/with space"]
    assert submounts_below("/srv/data-other", points) == []  # a sibling is not below
    assert submounts_below("/srv/data/sales/nfs", points) == []  # the mount itself is fine


@pytest.mark.parametrize(("version", "has"), [("1.41", False), ("1.43", False),
                                              ("1.44", True), ("1.47", True), ("", False)])
def test_recursive_read_only_from_api_1_44(version, has):
    assert api_has_recursive_read_only(version) is has


def test_refusal_names_the_source_the_submount_and_the_fixes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    with pytest.raises(SubmountRefused) as refused:
        check_sources({"sales": "/srv/data/sales"}, recursive=False, mountinfo=str(info))
    text = str(refused.value)
    assert "'sales'" in text and "/srv/data/sales/nfs" in text and "Docker 25" in text
    check_sources({"sales": "/srv/data/sales"}, recursive=True, mountinfo=str(info))
    check_sources({"other": "/srv/data-other"}, recursive=False, mountinfo=str(info))
