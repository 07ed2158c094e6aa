"""gunicorn settings for ``gunicorn --paste app.ini``, read from the current folder.

Every ``SSO_<NAME>`` environment variable becomes the PasteDeploy global variable
``<name>``, as ``--paste-global name=value`` would, without putting secrets on the
command line.  app.ini uses the names its ``[DEFAULT]`` section lists.
"""

import os


def _paste_global(name: str, value: str) -> str:
    return name[len("SSO_"):].lower() + "=" + value.replace("=", "\\=")  # gunicorn unescapes "\="


bind = "127.0.0.1:6543"  # same as app.ini's base_url; override with --bind
workers = 2
raw_paste_global_conf = [_paste_global(name, value) for name, value in os.environ.items() if name.startswith("SSO_")]
