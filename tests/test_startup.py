"""Startup scripts and greetings, including SQLAlchemy 2 models."""
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, declarative_base, mapped_column

from pyramid_notebook import startup


def test_make_startup_bootstraps_pyramid(tmp_path):
    ini = tmp_path / "site.ini"
    nb = {}
    startup.make_startup(nb, str(ini))
    # The bootstrap needs a real INI; check the script is valid Python naming the file.
    compile(nb["startup"], "startup", "exec")
    assert repr(str(ini)) in nb["startup"]
    for name in ("app", "request", "root", "registry", "datetime", "time"):
        assert f"**{name}**" in nb["greeting"]
    try:
        import transaction  # noqa: F401
    except ImportError:
        assert "transaction" not in nb["startup"]
    else:
        assert "import transaction" in nb["startup"]


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
