"""Per-user passwords for lockstep's demo and small Docker hubs, on NativeAuthenticator.

``PrecreatedNativeAuthenticator`` is ``jupyterhub-nativeauthenticator``'s
``NativeAuthenticator`` (bcrypt hashes in the hub database, failed-login blocking, users
changing their own password at ``/hub/change-password``; the login form is JupyterHub's own,
see ``get_handlers``) with its users made at hub start
from a private file (``passwords_file``: ``{"alice": "<password>", ...}``, mode 0600) and
authorized at once. Sign-up is off: only the users in the file exist, each logs in with
their own password and no other, so knowing one user's password never lets anyone act as
another (issue 11, finding 1). JupyterHub's shared-password and dummy authenticators are
not used anywhere lockstep sets up a login.

Guarantees: a user already in the table keeps the password it has (a password changed at
``/hub/change-password`` survives restarts); a file readable by group or others, or one
that is not a JSON object of non-empty strings, stops the hub with a message naming the file
and the fix. Passwords are hashed by NativeAuthenticator's own ``bcrypt`` call and never
logged. This module must not make up its own password scheme nor write the file.
"""

from __future__ import annotations

import json
import os
import stat

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode, default


class PrecreatedNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with sign-up off and its users pre-created from a 0600 file."""

    passwords_file = Unicode(
        "",
        help="""A JSON object ``{"user": "password", ...}``, mode 0600, read at hub start.

        Each user in it that NativeAuthenticator does not know yet is created with that
        password and authorized; users it knows keep their (possibly changed) password.
        ``scripts/demo.sh`` generates the file on its first run.

            c.PrecreatedNativeAuthenticator.passwords_file = "/root/.local/share/lockstep/demo/passwords.json"
        """,  # noqa: E501
    ).tag(config=True)

    @default("enable_signup")
    def _no_signup(self):
        return False

    @default("open_signup")
    def _no_open_signup(self):
        return False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.passwords_file:
            self.precreate(read_passwords(self.passwords_file))

    def get_handlers(self, app):
        """NativeAuthenticator's pages but its ``/login``: that handler times logins with
        ``self.statsd``, which JupyterHub 5 removed (every login POST fails on 5 and 6), so
        JupyterHub's own login form is used; it calls this authenticator's
        ``authenticate`` (bcrypt check, blocking after failed logins) as any other."""
        return [(path, handler) for path, handler in super().get_handlers(app)
                if path != "/login"]

    def precreate(self, passwords: dict[str, str]) -> list[str]:
        """Create and authorize each user of ``passwords`` not in the table; the names made."""
        made = []
        for name, password in sorted(passwords.items()):
            username = self.normalize_username(name)
            if self.get_user(username) is not None:
                continue
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.db.add(UserInfo(username=username, password=hashed, is_authorized=True))
            made.append(username)
        if made:
            self.db.commit()
            self.log.info("lockstep: created %d users from %s: %s", len(made),
                          self.passwords_file, ", ".join(made))
        return made


def read_passwords(path: str) -> dict[str, str]:
    """The user -> password map in ``path``; ValueError naming the fix when it is unsafe."""
    try:
        mode = os.stat(path).st_mode
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; scripts/demo.sh generates it, or write "
                         '{"alice": "<password>"} there with mode 0600') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); it must be an object "
                         '{"user": "password", ...}') from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                         f"it holds passwords: chmod 600 {path}")
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items()):
        raise ValueError(f"{path} must be a JSON object of user name -> password (non-empty "
                         'strings), e.g. {"alice": "<password>"}')
    return data
