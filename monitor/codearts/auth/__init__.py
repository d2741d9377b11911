"""Authentication schemes behind one small interface (`Auth`, in base.py).

Three schemes, a module each: `StaticTokenAuth` (token.py), `IamPasswordAuth`
(iam.py: tokens from IAM, refreshed) and `AkSkAuth` (aksk.py: SDK-HMAC-SHA256
signing, signer.py). health.py hears every exchange's outcome for /readyz.
"""

from monitor.codearts.auth.aksk import AkSkAuth
from monitor.codearts.auth.base import AUTH_TOKEN_HEADER, Auth
from monitor.codearts.auth.iam import IamPasswordAuth
from monitor.codearts.auth.token import StaticTokenAuth
from monitor.codearts.errors import AUTH_FAILURE_REASONS

__all__ = [
    "AUTH_FAILURE_REASONS",
    "AUTH_TOKEN_HEADER",
    "AkSkAuth",
    "Auth",
    "IamPasswordAuth",
    "StaticTokenAuth",
]
