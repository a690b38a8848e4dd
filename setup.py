"""pyramid_notebook: a per-user Jupyter Notebook shell embedded in a Pyramid site."""
import os

from setuptools import find_namespace_packages, setup

here = os.path.abspath(os.path.dirname(__file__))
with open(os.path.join(here, "README.rst"), encoding="utf-8") as f:
    long_description = f.read()

install_requires = [
    "pyramid>=2.0,<3",
    "notebook>=7,<8",
    "jupyter_server>=2.4,<3",
    "ipykernel>=6",
    "nbformat>=5",
    "daemonocle>=1.2,<2",
    "psutil>=5",
    "urllib3>=2,<3",
    "requests>=2.28",
    # Fork server: forked notebook daemons show an honest command line (pid checks read it).
    "setproctitle>=1.3",
    # The operator console's metrics (/notebook-admin/metrics), in a registry of the site's own.
    "prometheus_client>=0.17",
    # Memory (and the user's limit) in every notebook's top bar.
    "jupyter-resource-usage>=1.0,<2",
    # Static files go out brotli-compressed (relays/compress.py; gzip is the standard library's).
    "brotli>=1.1",
    # Team recipes (issue 36): git without a git binary (dulwich), notebooks rendered (nbconvert) and
    # sanitised (nh3), the diff between versions (nbdime), pages from templates (Jinja2).
    "dulwich>=1.0",
    "nbconvert>=7",
    "nh3>=0.2",
    "nbdime>=4",
    "Jinja2>=3",
    # Live shared sessions (issue 31): real-time co-editing in the notebook servers
    # (pyramid_notebook.collaboration; server/collaboration.py guards a watcher's document websocket).
    "jupyter-collaboration>=4,<6",
]

# ASGI (pyramid_notebook.asgi): the site under uvicorn, notebook websockets relayed on the event loop.
asgi_requires = [
    "uvicorn>=0.30",
    "a2wsgi>=1.10,<2",
    "websockets>=13",
]

# The demo runs on uvicorn (egg:pyramid_notebook#uvicorn), so it includes the asgi extra.
demo_requires = [
    "waitress>=2",
    "SQLAlchemy>=2,<3",
] + asgi_requires

hub_requires = [
    "jupyterhub>=6,<7",
    "jupyterhub-idle-culler>=2",
]

test_requires = demo_requires + hub_requires + [
    "pytest>=7",
    "pytest-timeout",
    # Tests run in a random order, so that none depends on another having run first; the header
    # prints the seed ("Using --randomly-seed=N"), which repeats an order (README, "Development").
    "pytest-randomly>=3.15",
    "websocket-client>=1.6",
    "splinter>=0.21",
    "selenium>=4.10",
    "hypothesis>=6",
    # nginx accel mode (accel.ini) is tested under gunicorn as well as waitress.
    "gunicorn>=22",
    # The package's import contract (.importlinter): layers, process boundaries, no cycles.
    "import-linter>=2.1",
    # Test files run on two workers (scripts/test): most of a test's time is waiting on real servers.
    "pytest-xdist>=3.5",
    # A test that fails is run again (twice at most) and reported as rerun: see scripts/test.
    "pytest-rerunfailures>=14",
    # tests/sites/wiki: a site as Pyramid's cookiecutter writes it (pyramid_tm in explicit mode, its
    # own WebTest suite), and pyramid_debugtoolbar under the uvicorn runner.
    "pyramid_tm>=2.5",
    "zope.sqlalchemy>=3",
    "transaction>=4",
    "WebTest>=3",
    "pyramid_debugtoolbar>=4.10",
    # The audit logger's records under a site's JSON formatter (issue 35).
    "python-json-logger>=3.1",
    # Live sessions' grants on a real PostgreSQL, two web nodes (tests/test_shares.py).
    "psycopg[binary]>=3.1",
]

setup(
    name="pyramid_notebook",
    version="0.4.0.dev0",
    description="Embed a per-user Jupyter Notebook shell in your Pyramid web site",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Framework :: Pyramid",
        "Framework :: Jupyter",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
    author="pyramid_notebook developers",
    url="https://github.com/websauna/pyramid_notebook",
    license="MIT",
    keywords="web pyramid jupyter notebook ipython shell",
    # Namespace discovery: data-only folders (server/hub_config) are packages to setuptools too.
    packages=find_namespace_packages(include=["pyramid_notebook", "pyramid_notebook.*"]),
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=install_requires,
    extras_require={
        "demo": demo_requires,
        "test": test_requires,
        "uwsgi": ["uwsgi>=2.0.22", "wsproto>=1.2"],
        "asgi": asgi_requires,
        # The JupyterHub backend (issue 15): the hub, its idle culler; configurable-http-proxy is npm's.
        "hub": hub_requires,
        # scripts/docs: Sphinx, and what autodoc imports (the uvicorn relay, the hub extension).
        "docs": ["sphinx>=7.2"] + asgi_requires + hub_requires,
    },
    entry_points={
        "console_scripts": ["pyramid-notebook = pyramid_notebook.cli:main"],
        "paste.app_factory": ["demo = pyramid_notebook.demo:main"],
        # The factory is found first: it checks the asgi extra before pserve loads the site.
        "paste.server_factory": ["uvicorn = pyramid_notebook.relays.asgi_runner:server_factory"],
        # Kernels forked from the kernel zygote (pyramid_notebook.kernel_fork, server/kernel_provisioner.py).
        "jupyter_client.kernel_provisioners": [
            "pyramid-notebook-zygote = pyramid_notebook.server.kernel_provisioner:ZygoteProvisioner",
        ],
        "paste.server_runner": [
            "demo_server = pyramid_notebook.demo.server:serve",
            "uvicorn = pyramid_notebook.relays.asgi_runner:serve_paste",
        ],
    },
)
