"""Hashes, folder names and alternative domains."""
import os
import subprocess
import sys

import pytest
from pyramid import testing

from pyramid_notebook.utils import BadUsername, make_dict_hash, route_to_alt_domain, username_to_folder_name


def test_dict_hash_stable_across_interpreters():
    d = {"startup": "import os", "greeting": "hi", "extra_template_paths": ["/a"], "n": 1}
    code = "from pyramid_notebook.core.names import make_dict_hash; print(make_dict_hash(%r))" % (d,)
    env = dict(os.environ)
    hashes = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=dict(env, PYTHONHASHSEED=str(seed))).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert hashes == {make_dict_hash(d)}


def test_dict_hash_changes_with_content_not_order():
    assert make_dict_hash({"a": 1, "b": 2}) == make_dict_hash({"b": 2, "a": 1})
    assert make_dict_hash({"a": 1}) != make_dict_hash({"a": 2})


@pytest.mark.parametrize("name", ["user", "john.smith@example.com", "a_b-c+d"])
def test_plain_names_kept(name):
    assert username_to_folder_name(name) == name


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "/etc", "a\\b", ".hidden", "x" * 200, "Jöhn Smith",
                                  "~evil"])
def test_unsafe_names_stay_inside(tmp_path, name):
    folder = username_to_folder_name(name)
    assert "/" not in folder and "\\" not in folder and folder not in (".", "..")
    assert len(folder) <= 64
    resolved = os.path.realpath(os.path.join(tmp_path, folder))
    assert os.path.dirname(resolved) == os.path.realpath(tmp_path)
    assert folder != username_to_folder_name(name + "x"), "different users need different folders"


def test_escaped_names_cannot_collide_with_plain_ones():
    escaped = username_to_folder_name("a/b")
    assert escaped.startswith("~")
    with pytest.raises(BadUsername):
        username_to_folder_name("\x00")
    assert username_to_folder_name(escaped) != escaped


@pytest.mark.parametrize("name", ["", None, "a\x00b", "tab\there", "x" * 1000, 42])
def test_unusable_names_rejected(name):
    with pytest.raises(BadUsername):
        username_to_folder_name(name)


def test_route_to_alt_domain(tmp_path):
    from pyramid_notebook.core.settings import parse_settings

    config = testing.setUp()
    try:
        request = testing.DummyRequest()
        config.registry.pyramid_notebook_settings = parse_settings(
            {"pyramid_notebook.notebook_folder": str(tmp_path)})
        assert route_to_alt_domain(request, "http://example.com/notebook/x?y=1") == "http://example.com/notebook/x?y=1"
        config.registry.pyramid_notebook_settings = parse_settings(
            {"pyramid_notebook.notebook_folder": str(tmp_path),
             "pyramid_notebook.alternative_domain": "https://shell.example.org:8443"})
        assert route_to_alt_domain(request, "http://example.com/notebook/x?y=1") == \
            "https://shell.example.org:8443/notebook/x?y=1"
    finally:
        testing.tearDown()


def test_change_directory(tmp_path):
    from pyramid_notebook.core.names import change_directory

    before = os.getcwd()
    with change_directory(str(tmp_path)):
        assert os.getcwd() == os.path.realpath(tmp_path)
    assert os.getcwd() == before
