"""Secret files generated on first use (Django's secret key, the encryption key file)."""

from __future__ import annotations

from mailconfig.keyfile import read_or_create


def test_a_missing_file_is_created_with_mode_0600_in_a_new_directory(tmp_path):
    path = tmp_path / "data" / "secret"
    assert read_or_create(path, lambda: "generated") == "generated"
    assert (path.stat().st_mode & 0o777) == 0o600


def test_an_existing_file_is_read_and_kept(tmp_path):
    path = tmp_path / "secret"
    path.write_text("kept")
    assert read_or_create(path, lambda: "generated") == "kept"
    assert path.read_text() == "kept"


def test_a_file_another_process_created_meanwhile_is_read_not_overwritten(tmp_path):
    path = tmp_path / "secret"

    def another_process_wins_the_race() -> str:
        path.write_text("theirs")  # between our existence check and our create
        return "ours"

    assert read_or_create(path, another_process_wins_the_race) == "theirs"
    assert path.read_text() == "theirs"
