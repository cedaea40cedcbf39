"""Session tokens: RS256 JWTs from an identity provider (e.g. Clerk), verified with PyJWT.

The verification key comes from JWT_PUBLIC_KEY_FILE: a PEM public key (or
certificate), or a JWKS document as identity providers publish them, from
which the token's `kid` picks the key. Only RS256 is accepted, so neither
`alg: none` nor an HS256 token "signed" with the public key can pass.
"""
import json
from dataclasses import dataclass

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

ALGORITHMS = ["RS256"]
# Clock skew between the identity provider and this host that still counts as on time.
LEEWAY_SECONDS = 5
# As long as the user_id / organization_id columns are.
MAX_ID_LENGTH = 255


class TokenRefused(Exception):
    """The token is not one this service accepts; the message says why, for the client."""


@dataclass(frozen=True)
class TokenIdentity:
    user_id: str
    organization_id: str | None


def split_setting(value):
    """A comma-separated setting as a list (None when unset or empty)."""
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    return items or None


def load_verification_keys(path):
    """Return {kid or None: RSA public key} from a PEM or JWKS file; ValueError if unusable."""
    try:
        with open(path, "rb") as stored:
            data = stored.read()
    except OSError as error:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE={path!r} cannot be read: {error.strerror}") \
            from None
    if data.lstrip().startswith(b"{"):
        keys = keys_from_jwks(data, path)
    else:
        keys = {None: key_from_pem(data, path)}
    if not keys:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE={path!r} holds no RSA signing key")
    return keys


def key_from_pem(data, path):
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except ValueError:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE={path!r} is neither a PEM public key, "
                         "a PEM certificate nor a JWKS document") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"JWT_PUBLIC_KEY_FILE={path!r} is not an RSA key (RS256 needs one)")
    return key


def keys_from_jwks(data, path):
    """The RSA signature keys of a JWKS document (or of a single JWK), by `kid`."""
    try:
        document = json.loads(data)
        entries = document["keys"] if "keys" in document else [document]
        keys = {}
        for entry in entries:
            if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" \
                    or entry.get("alg", "RS256") != "RS256":
                continue
            key = jwt.PyJWK(entry, algorithm="RS256").key
            if isinstance(key, RSAPrivateKey):  # a private JWK by mistake: keep its public half
                key = key.public_key()
            keys[entry.get("kid")] = key
        return keys
    except (ValueError, TypeError, KeyError, AttributeError, jwt.PyJWTError) as error:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE={path!r} is not a usable JWKS document "
                         f"({error})") from None


class TokenVerifier:
    """Verifies session tokens against the configured key(s) and claims."""

    def __init__(self, keys, issuer=None, audience=None, authorized_parties=None):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.authorized_parties = authorized_parties

    @classmethod
    def from_config(cls, config):
        """The verifier the app's settings describe, or None when no key is configured."""
        path = config.get("JWT_PUBLIC_KEY_FILE")
        if not path:
            return None
        return cls(load_verification_keys(path), issuer=config.get("JWT_ISSUER") or None,
                   audience=split_setting(config.get("JWT_AUDIENCE")),
                   authorized_parties=split_setting(config.get("JWT_AUTHORIZED_PARTIES")))

    def signing_key(self, token):
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, (str, type(None))):
            raise TokenRefused("Invalid session token")
        if kid in self.keys:
            return self.keys[kid]
        # One key that names no kid (a PEM file, say) is the key, whatever kid the token
        # gives: Clerk's tokens carry a kid, its PEM does not. One key of a JWKS likewise
        # signs tokens that give no kid.
        if len(self.keys) == 1 and (None in self.keys or kid is None):
            return next(iter(self.keys.values()))
        raise TokenRefused("Session token signed with an unknown key")

    def verify(self, token):
        """Return the TokenIdentity of a valid token; raise TokenRefused otherwise."""
        try:
            claims = jwt.decode(
                token, self.signing_key(token), algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS,
                issuer=self.issuer, audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError:
            raise TokenRefused("Session token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("Session token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("Session token is from an issuer this service does not accept") \
                from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("Session token is for another audience") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenRefused(f"Session token lacks the {error.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise TokenRefused("Invalid session token") from None
        if self.authorized_parties is not None and \
                claims.get("azp") not in self.authorized_parties:
            raise TokenRefused("Session token was issued to a party this service does not accept")
        if claims.get("sts") == "pending":
            raise TokenRefused("Session is pending; finish signing in first")
        return TokenIdentity(identifier(claims.get("sub"), "sub"), organization_of(claims))


def identifier(value, claim):
    # NUL could not be stored in PostgreSQL; no identity provider issues it anyway.
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or "\x00" in value:
        raise TokenRefused(f"Session token's {claim!r} claim is not a usable id")
    return value


def organization_of(claims):
    """`org_id`, or `o.id` in Clerk's newer token format; None without an organization."""
    nested = claims.get("o")
    value = claims.get("org_id")
    if value is None and isinstance(nested, dict):
        value = nested.get("id")
    return None if value is None else identifier(value, "org_id")
