"""redact(): strip credentials from text before it is logged, raised or rendered (reports, artifacts, the terminal).

Sources are described by paths, URLs and error messages of HTTP clients, and any of them can carry a secret: a URL
with a password (`https://user:pw@host/prices.csv`, a proxy in HTTPS_PROXY), a token in a query string
(`?apikey=...`, Yahoo's `crumb=...`), an `Authorization: Bearer ...` header echoed in an error, or the value of an
environment variable such as `FDR_TOKEN`. Each is replaced by `***`; the rest of the text stays readable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

MASK = "***"

# scheme://user:password@host  (also scheme:/user:password@host, which is what pathlib makes of a URL).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*:/{1,2}[^/\s:@]+:)(?P<secret>[^/\s@]+)(?P<at>@)")
# ?apikey=...&x=1, &access_token=..., &crumb=... (the parameter name ends with one of these words).
_PARAM_WORDS = r"token|secret|passw(?:or)?d|pwd|api[_\-]?key|key|signature|sig|crumb|auth|credentials?"
_SECRET_PARAM = re.compile(rf"(?P<head>[?&;][\w.\-]*?(?:{_PARAM_WORDS})=)(?P<secret>[^&#\s'\"]+)", re.I)
# Authorization: Basic dXNlcjpwdw== / Bearer abc...
_AUTH_HEADER = re.compile(
    r"(?P<head>\bauthorization['\"]?\s*[:=]\s*['\"]?(?:\w+\s+)?|\bbearer\s+)(?P<secret>[\w.~+/=\-]+)", re.I
)
# FDR_TOKEN=abc, "api_key": "abc", password: abc (a name=value or name: value pair in a message).
_PAIR_WORDS = r"token|secret|passw(?:or)?d|pwd|api[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?"
_SECRET_PAIR = re.compile(
    rf"(?P<head>\b[\w\-]*?(?:{_PAIR_WORDS})\b['\"]?\s*[=:]\s*['\"]?)(?P<secret>[^\s'\",;&}}]+)", re.I
)
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH", re.I)
_MIN_ENV_SECRET = 6  # shorter values ("1", "true") would mask ordinary words


def redact(text: object, *, environ: Mapping[str, str] | None = None) -> str:
    """`text` as a string with URL passwords, secret query parameters, auth headers and secret env values masked.

    Args:
        environ: where to look for secret-named variables (TOKEN, SECRET, PASSWORD, API_KEY, ...) whose values are
            masked wherever they appear; os.environ by default.
    """
    out = str(text)
    for value in _secret_env_values(os.environ if environ is None else environ):
        out = out.replace(value, MASK)
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", out)
    out = _SECRET_PARAM.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m['head']}{MASK}", out)
    return _SECRET_PAIR.sub(lambda m: f"{m['head']}{MASK}", out)


def _secret_env_values(environ: Mapping[str, str]) -> list[str]:
    """Values of secret-named environment variables, longest first (so a value containing another is masked whole)."""
    values = {v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)
