"""Startup scripts and greetings, including SQLAlchemy 2 models."""
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, declarative_base, mapped_column

from pyramid_notebook.core import startup


def test_make_startup_bootstraps_pyramid(tmp_path):
    """The startup script, run as a kernel runs it (a fresh interpreter elsewhere), bootstraps the
    real demo site from its INI: app, request, root, registry, with the INI's relative paths
    taken from the INI's folder."""
    import json
    import subprocess
    import sys

    from tests.conftest import write_demo_ini

    site = tmp_path / "site"
    site.mkdir()
    (site / "notebooks").mkdir()
    ini = write_demo_ini(site, str(site / "notebooks"), **{"sqlalchemy.url": "sqlite:///relative.sqlite"})
    nb = {}
    startup.make_startup(nb, ini)
    assert repr(ini) in nb["startup"]
    for name in ("app", "request", "root", "registry", "datetime", "time"):
        assert f"**{name}**" in nb["greeting"]
    try:
        import transaction  # noqa: F401
    except ImportError:
        assert "transaction" not in nb["startup"]
    else:
        assert "import transaction" in nb["startup"]
    elsewhere = tmp_path / "kernel-cwd"
    elsewhere.mkdir()
    probe = nb["startup"] + (
        "import json, os\n"
        "print(json.dumps({'registry': type(registry).__name__, 'url': request.application_url,\n"
        "    'folder': registry.settings['pyramid_notebook.notebook_folder'], 'root': type(root).__name__,\n"
        "    'app': callable(app), 'cwd': os.getcwd(), 'datetime': datetime.__name__, 'time': time.__name__}))\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"registry": "Registry", "url": "http://localhost", "folder": str(site / "notebooks"),
                   "root": out["root"], "app": True, "cwd": str(elsewhere), "datetime": "datetime", "time": "time"}
    assert (site / "relative.sqlite").exists() and not (elsewhere / "relative.sqlite").exists(), \
        "the INI's relative paths are the INI folder's"


def test_add_script_and_greeting_append():
    nb = {}
    startup.add_script(nb, "a = 1")
    startup.add_script(nb, "b = a + 1\n")
    startup.add_greeting(nb, "* **a**")
    ns = {}
    exec(nb["startup"], ns)
    assert ns["b"] == 2
    assert nb["greeting"] == "* **a**\n"


class Base(DeclarativeBase):
    pass


class Planet(Base):
    __tablename__ = "planets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Moon(Base):
    __tablename__ = "moons"
    id: Mapped[int] = mapped_column(primary_key=True)


OldBase = declarative_base()


def test_include_sqlalchemy_2_models():
    nb = {}
    startup.include_sqlalchemy_models(nb, Base)
    ns = {}
    exec(nb["startup"], ns)
    assert ns["Planet"] is Planet and ns["Moon"] is Moon
    assert "* **Planet** - tests.test_startup.Planet" in nb["greeting"]


def test_include_models_of_classic_base():
    class Old(OldBase):
        __tablename__ = "old"
        from sqlalchemy import Column, Integer
        id = Column(Integer, primary_key=True)

    nb = {}
    startup.include_sqlalchemy_models(nb, OldBase)
    assert "Old" in nb["greeting"]


def test_demo_database_setup_is_safe_from_many_processes(tmp_path):
    """Web server workers and kernels all set the demo database up at once."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    code = f"from pyramid_notebook.demo.models import setup_database; setup_database({url!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    from sqlalchemy import create_engine, text

    with create_engine(url).connect() as conn:
        assert conn.execute(text("select count(*) from items")).scalar() == 1
