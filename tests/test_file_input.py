"""The one reader for files people hand ldmpick, and the one rule for what an output may replace."""

from __future__ import annotations

import os

import pytest

from ldmpick.files.errors import UsageError
from ldmpick.files.reader import parse_json, read_json_file, read_text_file
from ldmpick.files.storage import atomic_write_text


def test_reads_a_json_file_and_drops_a_byte_order_mark(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')
    assert read_json_file(p, "profile") == {"a": [1, 2]}


@pytest.mark.parametrize("text, needle", [
    ('{"a": NaN}', "NaN"),
    ('{"a": Infinity}', "Infinity"),
    ("[" * 40 + "]" * 40, "nested more than"),
    ('{"name": "x\\ud800y"}', "unpaired"),
    ('{"a": ', "not valid JSON"),
    ('{"a": 1, "a": 2}', "appears twice"),
    ('{"a": ' + "1" * 5000 + "}", "thousands of digits"),
    ("   ", "empty"),
])
def test_strict_json_refusals_are_one_line(text, needle):
    with pytest.raises(UsageError) as exc:
        parse_json(text, "profile 'p'")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_special_files_and_oversize_files_are_refused(tmp_path):
    with pytest.raises(UsageError, match="not a regular file"):
        read_text_file("/dev/zero", "profile")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):  # and does not hang
        read_text_file(fifo, "profile")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(UsageError, match="larger than 1024 bytes"):
        read_text_file(big, "profile", max_bytes=1024)
    with pytest.raises(UsageError, match="does not exist"):
        read_text_file(tmp_path / "missing", "profile")
    with pytest.raises(UsageError, match="not UTF-8"):
        (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
        read_text_file(tmp_path / "bin", "profile")


def test_output_targets_that_are_not_plain_files_are_never_replaced(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="symbolic link"):
        atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "keep"
    hard = tmp_path / "hard.txt"
    os.link(real, hard)
    with pytest.raises(UsageError, match="hard links"):
        atomic_write_text(hard, "new")
    assert real.read_text() == "keep"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        atomic_write_text(fifo, "new")
    plain = tmp_path / "plain.txt"
    plain.write_text("old")
    atomic_write_text(plain, "new")
    assert plain.read_text() == "new"
