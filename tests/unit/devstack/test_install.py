from __future__ import annotations

from scripts.devstack import install, venv


def test_requirements_hash_changes_with_any_requirements_file(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi==1\n")
    before = venv.requirements_hash(tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pytest==1\n")
    after = venv.requirements_hash(tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pytest==2\n")
    assert len({before, after, venv.requirements_hash(tmp_path)}) == 3


def test_missing_apt_packages_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(install, "find_pg_bin", lambda: None)
    monkeypatch.setattr(install, "nginx_binary", lambda: None)
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    monkeypatch.setattr(install, "POSTGREST_BIN", install.CACHE / "absent" / "postgrest")
    missing = install.missing_apt_packages(test_tools=True)
    assert missing[:3] == ["postgresql", "nginx-light", "npm"]
    assert missing[-2:] == ["chromium", "wrk"]
    assert "chromium" not in install.missing_apt_packages(test_tools=False)
