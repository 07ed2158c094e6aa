"""Files that settings name (keys, certificates, trust bundles), read once when the middleware is built.

Security caveat: such a file is read with a size limit, so a setting pointing at a huge
file (or a device) costs a bounded read, and its errors name the setting and the path,
never the file's content (a key).
"""

from __future__ import annotations

from .errors import ConfigError


def read_setting_file(name: str, path: str, limit: int) -> bytes:
    """The bytes of the file a setting names, read when the middleware is built; at most ``limit``.

    One ``ConfigError`` naming the setting when it cannot be read or is larger (a key or a
    trust bundle is small: a huge file is a mistake, and is never read whole).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(name, f"{path!r} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:
        raise ConfigError(name, f"{path!r} is larger than {limit} bytes")
    return data
