"""Log in the sandbox's user the way a browser would, for the development API (user playlists need a login)."""

from collections import Counter

import requests

from producers.settings import ProducerSettings
from producers.spotify import http_session, user_auth


def log_in_sandbox_user(settings: ProducerSettings) -> None:
    """Follow the sandbox's /authorize redirect and exchange the code (PKCE); the token lands in the
    producer's token file, as after `python -m producers login`."""
    auth = user_auth(settings, http_session(settings, Counter()))
    auth.get_pkce_handshake_parameters()
    answer = requests.get(auth.get_authorize_url("state"), allow_redirects=False, timeout=10)
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    auth.get_access_token(code, check_cache=False)
