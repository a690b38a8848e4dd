"""Code that runs inside the notebook daemon process, not in the web site."""
