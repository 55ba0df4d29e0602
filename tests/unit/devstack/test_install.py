from __future__ import annotations

from scripts.devstack import install, venv


def test_requirements_hash_changes_with_any_requirements_file(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi==1\n")
    before = venv.requirements_hash(tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pytest==1\n")
    after = venv.requirements_hash(tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pytest==2\n")
    assert len({before, after, venv.requirements_hash(tmp_path)}) == 3
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert venv.requirements_hash(tmp_path) == venv.requirements_hash(tmp_path)


def test_project_stamp_follows_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'a'\n")
    stamp = tmp_path / "stamp"
    stamp.write_text(venv.project_hash(tmp_path) + "\n")
    assert venv.stamped(stamp, venv.project_hash(tmp_path))
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'b'\n")
    assert not venv.stamped(stamp, venv.project_hash(tmp_path))
    assert not venv.stamped(tmp_path / "absent", venv.project_hash(tmp_path))


def test_venv_installs_the_project_editable_without_dependencies():
    command = venv.pip("--no-deps", "-e", "/repo")
    assert command[0] == str(venv.VENV_PY)
    assert command[1:4] == ["-m", "pip", "install"] and command[-3:] == ["--no-deps", "-e", "/repo"]


def test_missing_apt_packages_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(install, "has_server", lambda major: False)
    monkeypatch.setattr(install, "nginx_binary", lambda: None)
    monkeypatch.setattr(install, "pgbouncer_binary", lambda: None)
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    monkeypatch.setattr(install, "POSTGREST_BIN", install.CACHE / "absent" / "postgrest")
    missing = install.missing_apt_packages(test_tools=True)
    assert missing[:4] == ["postgresql", "pgbouncer", "nginx-light", "npm"]
    assert missing[-2:] == ["chromium", "wrk"]
    assert "chromium" not in install.missing_apt_packages(test_tools=False)
