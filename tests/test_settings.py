"""Settings are validated once, with errors that name the setting."""
import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.settings import NotebookSettings, get_notebook_settings, parse_settings


def commit(settings):
    config = Configurator(settings=settings)
    config.include("pyramid_notebook")
    config.commit()
    return config.registry


def test_defaults(tmp_path):
    registry = commit({"pyramid_notebook.notebook_folder": str(tmp_path)})
    s = get_notebook_settings(registry)
    assert isinstance(s, NotebookSettings)
    assert s.notebook_folder == str(tmp_path)
    assert s.websocket_proxy is None and s.alternative_domain == ""
    assert s.kill_timeout == 3600 and s.port_base == 29000 and s.port_range == 100 and s.startup_timeout == 60
    assert registry.pyramid_notebook_manager.notebook_folder == str(tmp_path)


def test_all_settings_parsed(tmp_path):
    s = parse_settings({
        "pyramid_notebook.notebook_folder": str(tmp_path),
        "pyramid_notebook.kill_timeout": "30",
        "pyramid_notebook.websocket_proxy": "pyramid_notebook.core.names.make_dict_hash",
        "pyramid_notebook.alternative_domain": "https://shell.example.com/",
        "pyramid_notebook.port_base": "50000",
        "pyramid_notebook.port_range": "5",
        "pyramid_notebook.startup_timeout": "2.5",
    })
    from pyramid_notebook.core.names import make_dict_hash

    assert s.kill_timeout == 30 and s.port_base == 50000 and s.port_range == 5 and s.startup_timeout == 2.5
    assert s.websocket_proxy is make_dict_hash
    assert s.alternative_domain == "https://shell.example.com"


@pytest.mark.parametrize("settings, named", [
    ({"pyramid_notebook.kill_timeout": "soon"}, "pyramid_notebook.kill_timeout"),
    ({"pyramid_notebook.kill_timeout": "0"}, "pyramid_notebook.kill_timeout"),
    ({"pyramid_notebook.port_base": "80"}, "pyramid_notebook.port_base"),
    ({"pyramid_notebook.port_range": "0"}, "pyramid_notebook.port_range"),
    ({"pyramid_notebook.port_base": "65535", "pyramid_notebook.port_range": "10"}, "pyramid_notebook.port_range"),
    ({"pyramid_notebook.startup_timeout": "-1"}, "pyramid_notebook.startup_timeout"),
    ({"pyramid_notebook.websocket_proxy": "no.such.module.fn"}, "pyramid_notebook.websocket_proxy"),
    ({"pyramid_notebook.websocket_proxy": "pyramid_notebook.core.settings.PREFIX"}, "pyramid_notebook.websocket_proxy"),
    ({"pyramid_notebook.alternative_domain": "shell.example.com"}, "pyramid_notebook.alternative_domain"),
    ({"pyramid_notebook.shutdown_url": "javascript:alert(1)"}, "pyramid_notebook.shutdown_url"),
    ({"pyramid_notebook.recipe_max_bytes": "lots"}, "pyramid_notebook.recipe_max_bytes"),
    ({"pyramid_notebook.recipe_strip_outputs": "maybe"}, "pyramid_notebook.recipe_strip_outputs"),
])
def test_bad_setting_is_named(tmp_path, settings, named):
    full = {"pyramid_notebook.notebook_folder": str(tmp_path)}
    full.update(settings)
    with pytest.raises(ConfigurationError) as e:
        commit(full)
    assert named in str(e.value)


def test_notebook_folder_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigurationError, match="pyramid_notebook.notebook_folder"):
        commit({"pyramid_notebook.notebook_folder": str(f)})


def test_views_without_include_explain(tmp_path):
    from pyramid.testing import DummyRequest, setUp, tearDown

    from pyramid_notebook.views import launch_notebook

    config = setUp()
    try:
        with pytest.raises(RuntimeError, match='config.include\\("pyramid_notebook"\\)'):
            launch_notebook(DummyRequest(), "user", {})
    finally:
        tearDown()


def test_the_settings_table_documents_exactly_what_is_parsed(caplog):
    """docs/settings.rst is generated from the table: it cannot drift from NotebookSettings."""
    import dataclasses
    import logging

    from pyramid_notebook.core.settingstable import SETTINGS, setting_names

    assert setting_names() == {field.name for field in dataclasses.fields(NotebookSettings)}
    assert all(setting.doc and setting.names for setting in SETTINGS)
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        parse_settings({"pyramid_notebook.notebook_folder": "/tmp/x", "pyramid_notebook.idel_timeout": "60",
                        "pyramid_notebook.demo.config_file": "x.ini"})
    assert [r.getMessage().split()[2] for r in caplog.records] == ["pyramid_notebook.idel_timeout"]
