"""Session tokens: RS256 JWTs (e.g. from Clerk) as credentials, next to API keys.

Covers: a valid token acts as its `sub` (and `org_id` / `o.id`), sees only that user's
sessions, the same ones as an API key of that user, and has the write scope; every way a
token is refused (401 in the contract's shape: expired, not yet valid, wrong or missing
iss / aud / azp, `alg: none`, HS256 keyed with the public key, another key, a tampered
signature, malformed tokens, missing or unusable claims, pending sessions, bad `kid`s);
the 5 s leeway; JWKS (kid picks the key), PEM public key and PEM certificate files; no key
file configured; key files that fail at start; that a token is never stored, logged or
echoed; and the rate-limit bucket of a token (its user, not the token).

The RSA key pairs are made here; PyJWT checks exp / nbf / iat against the real wall clock,
so the tokens' times are relative to time.time(), not to the app's `clock` fixture.
"""
import base64
import datetime
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from gensessions.ratelimit import credential_key
from helpers import ACCESS, SESSIONS, assert_error, bearer, issue_key

USER = "user_2tokenUser"
OTHER_USER = "user_2otherUser"
ISSUER = "https://clerk.example.com"
WWW_AUTHENTICATE = 'Bearer realm="gensessions"'
# make_token(..., claim=MISSING) leaves that claim out.
MISSING = object()


# --- helpers --------------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value):
    """A JWT header or payload segment: compact JSON, base64url without padding."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def token_claims(**claims):
    """Claims of a token valid for five minutes from now, for USER; MISSING drops a claim."""
    now = int(time.time())
    defaults = {"sub": USER, "iat": now, "nbf": now, "exp": now + 300,
                "sid": "sess_2clerkSession"}
    return {name: value for name, value in {**defaults, **claims}.items()
            if value is not MISSING}


def make_token(private_key, kid=None, **claims):
    """An RS256 token signed by `private_key` (with `kid` in its header when given)."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(token_claims(**claims), private_key, algorithm="RS256", headers=headers)


def sign_raw(private_key, header, claims):
    """An RS256 signature over any header and payload (PyJWT refuses some headers we need)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def public_pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk(private_key, kid):
    entry = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**entry, "kid": kid, "use": "sig", "alg": "RS256"}


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def write_jwks(path, *entries):
    return write(path, json.dumps({"keys": list(entries)}))


def self_signed_certificate(private_key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clerk.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(name)
                   .public_key(private_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .sign(private_key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def flip(text, index):
    """`text` with the character at `index` replaced by another base64url character."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


def assert_refused(response, *secrets):
    """A 401 in the contract's shape, with the Bearer challenge, echoing none of `secrets`."""
    body = assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    text = response.get_data(as_text=True)
    for secret in secrets:
        assert secret not in text
    return body


def seen_ids(client, headers):
    response = client.get(f"{SESSIONS}?limit=100", headers=headers)
    assert response.status_code == 200, response.json
    return {item["id"] for item in response.json["data"]}


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key():
    """A second key pair: the provider's next key in a JWKS, or a forger's key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pem_file(tmp_path, private_key):
    return write(tmp_path / "public.pem", public_pem(private_key))


@pytest.fixture
def app(make_app, pem_file):
    """The conftest app, verifying session tokens with `private_key`'s public PEM."""
    return make_app(JWT_PUBLIC_KEY_FILE=pem_file)


@pytest.fixture
def token(private_key):
    return make_token(private_key)


@pytest.fixture
def headers(token):
    return bearer(token)


# --- a valid token acts as its user ---------------------------------------------------------

@pytest.mark.parametrize("claims, organization_id", [
    ({"org_id": "org_2flat"}, "org_2flat"),
    ({"o": {"id": "org_2nested", "rol": "admin", "slg": "acme"}}, "org_2nested"),
    ({}, None),
], ids=["org_id", "o.id", "no-organization"])
def test_a_token_creates_a_session_as_its_user_and_organization(
        client, private_key, claims, organization_id):
    headers = bearer(make_token(private_key, **claims))
    created = client.post(SESSIONS, json={}, headers=headers)
    assert created.status_code == 201, created.json
    assert created.json["userId"] == USER
    assert created.json["organizationId"] == organization_id
    fetched = client.get(f"{SESSIONS}/{created.json['id']}", headers=headers)
    assert fetched.status_code == 200, fetched.json
    assert fetched.json["userId"] == USER


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", ""], ids=["Bearer", "bearer", "bare"])
def test_the_token_is_accepted_with_or_without_the_bearer_scheme(client, token, scheme):
    response = client.get(SESSIONS, headers={"Authorization": scheme + token})
    assert response.status_code == 200, response.json


def test_a_tokens_list_shows_only_its_users_sessions(client, private_key, make_key, headers):
    own = {client.post(SESSIONS, json={}, headers=headers).json["id"] for _ in range(2)}
    other_token = bearer(make_token(private_key, sub=OTHER_USER))
    assert client.post(SESSIONS, json={}, headers=other_token).status_code == 201
    assert client.post(SESSIONS, json={}, headers=make_key(user_id="user_3keyed")) \
        .status_code == 201
    assert len(own) == 2
    assert seen_ids(client, headers) == own


def test_a_token_and_an_api_key_of_the_same_user_see_the_same_sessions(app, client, headers):
    key_headers = bearer(issue_key(app, USER, organization_id="org_1"))
    by_key = client.post(SESSIONS, json={}, headers=key_headers).json["id"]
    by_token = client.post(SESSIONS, json={}, headers=headers).json["id"]
    assert seen_ids(client, headers) == seen_ids(client, key_headers) == {by_key, by_token}
    assert client.get(f"{SESSIONS}/{by_key}", headers=headers).status_code == 200
    assert client.get(f"{SESSIONS}/{by_token}", headers=key_headers).status_code == 200


def test_a_token_has_the_write_scope(client, headers):
    session_id = client.post(SESSIONS, json={}, headers=headers).json["id"]
    updated = client.patch(f"{SESSIONS}/{session_id}", json={"status": "planning"},
                           headers=headers)
    assert updated.status_code == 200, updated.json
    assert updated.json["status"] == "planning"
    deleted = client.delete(f"{SESSIONS}/{session_id}", headers=headers)
    assert deleted.status_code == 204, deleted.get_data(as_text=True)
    assert client.get(f"{SESSIONS}/{session_id}", headers=headers).status_code == 404


def test_another_users_token_cannot_touch_a_session(client, private_key, headers):
    session_id = client.post(SESSIONS, json={}, headers=headers).json["id"]
    other = bearer(make_token(private_key, sub=OTHER_USER))
    url = f"{SESSIONS}/{session_id}"
    assert client.get(url, headers=other).status_code == 404
    assert client.patch(url, json={"status": "planning"}, headers=other).status_code == 404
    assert client.delete(url, headers=other).status_code == 404
    assert client.get(url, headers=headers).json["status"] == "intake"


# --- refused tokens -------------------------------------------------------------------------

def alg_none_by_hand(key, other):
    header = segment({"alg": "none", "typ": "JWT"})
    return f"{header}.{segment(token_claims())}."


def alg_none_by_pyjwt(key, other):
    return jwt.encode(token_claims(), None, algorithm="none")


def hs256_keyed_with_the_public_key(key, other):
    """The classic key-confusion forgery: HMAC-SHA256 keyed with the public key's PEM."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(token_claims())}"
    signature = hmac.new(public_pem(key), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def signature_changed(index):
    def build(key, other):
        header, payload, signature = make_token(key).split(".")
        return f"{header}.{payload}.{flip(signature, index)}"
    return build


def payload_changed(key, other):
    """A valid token whose payload now names another user."""
    _, _, signature = make_token(key).split(".")
    header = segment({"alg": "RS256", "typ": "JWT"})
    return f"{header}.{segment(token_claims(sub=OTHER_USER))}.{signature}"


def claims_of(**claims):
    return lambda key, other: make_token(key, **claims)


def shifted(**offsets):
    """A token whose named time claims are now + offset seconds (now: when it is built)."""
    return lambda key, other: make_token(
        key, **{name: int(time.time()) + offset for name, offset in offsets.items()})


REFUSED = {
    "expired": (shifted(exp=-60), "expired"),
    "not-yet-valid-nbf": (shifted(nbf=60), "not valid yet"),
    "issued-in-the-future": (shifted(iat=60), "not valid yet"),
    "alg-none-by-hand": (alg_none_by_hand, None),
    "alg-none-by-pyjwt": (alg_none_by_pyjwt, None),
    "hs256-keyed-with-the-public-key": (hs256_keyed_with_the_public_key, None),
    "signed-by-another-key": (lambda key, other: make_token(other), None),
    "signature-first-char-changed": (signature_changed(0), None),
    "signature-middle-char-changed": (signature_changed(171), None),
    "payload-changed": (payload_changed, None),
    "signature-dropped": (lambda key, other: make_token(key).rpartition(".")[0], None),
    "signature-empty": (lambda key, other: make_token(key).rpartition(".")[0] + ".", None),
    "abc": (lambda key, other: "abc", None),
    "a.b.c": (lambda key, other: "a.b.c", None),
    "truncated": (lambda key, other: make_token(key)[:40], None),
    "non-ascii": (lambda key, other: "eyJhbGciOiJSUzI1NiJ9.\u00e9t\u00e9.sign\u00e9", None),
    "non-ascii-in-a-valid-token": (lambda key, other: make_token(key) + "\u00e9", None),
    "no-exp": (claims_of(exp=MISSING), "'exp'"),
    "exp-not-a-number": (claims_of(exp="tomorrow"), None),
    "no-sub": (claims_of(sub=MISSING), "'sub'"),
    "sub-a-number": (claims_of(sub=12345), None),
    "sub-empty": (claims_of(sub=""), "'sub'"),
    "sub-too-long": (claims_of(sub="u" * 256), "'sub'"),
    "sub-with-nul": (claims_of(sub="user_\x00x"), "'sub'"),
    "org_id-a-number": (claims_of(org_id=12345), "'org_id'"),
    "org_id-too-long": (claims_of(org_id="o" * 256), "'org_id'"),
    "o.id-too-long": (claims_of(o={"id": "o" * 256}), "'org_id'"),
    "sts-pending": (claims_of(sts="pending"), "pending"),
    "kid-a-list": (lambda key, other: sign_raw(key, {"alg": "RS256", "kid": ["k1"]},
                                               token_claims()), None),
    "kid-an-object": (lambda key, other: sign_raw(key, {"alg": "RS256", "kid": {"id": "k1"}},
                                                  token_claims()), None),
}


@pytest.mark.parametrize("build, reason", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_token_is_refused_with_401(client, private_key, other_key, build, reason):
    bad = build(private_key, other_key)
    response = client.post(SESSIONS, json={}, headers={"Authorization": f"Bearer {bad}"})
    body = assert_refused(response, bad)
    if reason is not None:
        assert reason in body["error"]
    # Nothing was created on its behalf.
    assert seen_ids(client, bearer(make_token(private_key))) == set()


def test_raw_signing_helper_makes_tokens_the_app_accepts(client, private_key):
    """The control for the hand-made `kid` tokens above: only the kid makes them fail."""
    good = sign_raw(private_key, {"alg": "RS256", "typ": "JWT"}, token_claims())
    assert client.get(SESSIONS, headers=bearer(good)).status_code == 200


@pytest.mark.parametrize("claims", [
    {"sub": "u" * 255},
    {"org_id": "o" * 255},
    {"sts": "active"},
    {"iss": "https://anyone.example.com", "aud": "anything", "azp": "https://any.example.com"},
], ids=["sub-255-chars", "org_id-255-chars", "sts-active", "unconfigured-iss-aud-azp"])
def test_an_acceptable_token_is_accepted(client, private_key, claims):
    response = client.post(SESSIONS, json={}, headers=bearer(make_token(private_key, **claims)))
    assert response.status_code == 201, response.json
    assert response.json["userId"] == claims.get("sub", USER)


@pytest.mark.parametrize("org_id", ["", 0], ids=["empty", "zero"])
def test_an_unusable_falsy_org_id_is_refused(client, private_key, org_id):
    response = client.get(SESSIONS, headers=bearer(make_token(private_key, org_id=org_id)))
    assert_refused(response)


# --- leeway ---------------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [
    {"exp": -2},
    {"nbf": 2},
    {"iat": 2},
], ids=["expired-2s-ago", "nbf-2s-ahead", "iat-2s-ahead"])
def test_five_seconds_of_clock_skew_are_tolerated(client, private_key, claims):
    now = int(time.time())
    shifted = {name: now + offset for name, offset in claims.items()}
    response = client.get(SESSIONS, headers=bearer(make_token(private_key, **shifted)))
    assert response.status_code == 200, response.json


# --- configured issuer, audience and authorized parties ------------------------------------

CLAIM_CHECKS = [
    # (settings, claims, accepted)
    ({"JWT_ISSUER": ISSUER}, {"iss": ISSUER}, True),
    ({"JWT_ISSUER": ISSUER}, {"iss": "https://evil.example.com"}, False),
    ({"JWT_ISSUER": ISSUER}, {}, False),
    ({"JWT_AUDIENCE": "api.example.com, other-api"}, {"aud": "api.example.com"}, True),
    ({"JWT_AUDIENCE": "api.example.com, other-api"}, {"aud": "other-api"}, True),
    ({"JWT_AUDIENCE": "api.example.com, other-api"}, {"aud": ["x", "other-api"]}, True),
    ({"JWT_AUDIENCE": "api.example.com, other-api"}, {"aud": "evil-api"}, False),
    ({"JWT_AUDIENCE": "api.example.com, other-api"}, {}, False),
    ({"JWT_AUTHORIZED_PARTIES": "https://app.example.com,http://localhost:3000"},
     {"azp": "http://localhost:3000"}, True),
    ({"JWT_AUTHORIZED_PARTIES": "https://app.example.com,http://localhost:3000"},
     {"azp": "https://evil.example.com"}, False),
    ({"JWT_AUTHORIZED_PARTIES": "https://app.example.com,http://localhost:3000"}, {}, False),
    ({"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": "api", "JWT_AUTHORIZED_PARTIES": "https://app"},
     {"iss": ISSUER, "aud": "api", "azp": "https://app"}, True),
]
CLAIM_CHECK_IDS = ["iss-right", "iss-wrong", "iss-missing", "aud-first", "aud-second",
                   "aud-list", "aud-wrong", "aud-missing", "azp-allowed", "azp-other",
                   "azp-missing", "all-three-right"]


@pytest.mark.parametrize("settings, claims, accepted", CLAIM_CHECKS, ids=CLAIM_CHECK_IDS)
def test_configured_claims_are_checked(make_app, pem_file, private_key, settings, claims,
                                       accepted):
    client = make_app(JWT_PUBLIC_KEY_FILE=pem_file, **settings).test_client()
    token = make_token(private_key, **claims)
    response = client.get(SESSIONS, headers=bearer(token))
    if accepted:
        assert response.status_code == 200, response.json
    else:
        assert_refused(response, token)


# --- key files: JWKS, PEM certificate, none -------------------------------------------------

@pytest.fixture
def two_key_client(make_app, tmp_path, private_key, other_key):
    """An app whose JWKS holds `private_key` as kid ins_one and `other_key` as ins_two."""
    path = write_jwks(tmp_path / "jwks.json", jwk(private_key, "ins_one"),
                      jwk(other_key, "ins_two"))
    return make_app(JWT_PUBLIC_KEY_FILE=path).test_client()


@pytest.mark.parametrize("which, kid", [("private_key", "ins_one"), ("other_key", "ins_two")])
def test_a_jwks_picks_the_key_by_kid(two_key_client, request, which, kid):
    key = request.getfixturevalue(which)
    response = two_key_client.post(SESSIONS, json={}, headers=bearer(make_token(key, kid=kid)))
    assert response.status_code == 201, response.json
    assert response.json["userId"] == USER


@pytest.mark.parametrize("kid, reason", [
    ("ins_two", None),  # signed by ins_one's key, but claiming the other one
    ("ins_unknown", "unknown key"),
    (None, "unknown key"),  # two keys: without a kid there is no telling which
], ids=["kid-of-the-other-key", "unknown-kid", "no-kid"])
def test_a_jwks_refuses_a_token_whose_kid_does_not_fit(two_key_client, private_key, kid,
                                                       reason):
    token = make_token(private_key, kid=kid)
    body = assert_refused(two_key_client.get(SESSIONS, headers=bearer(token)), token)
    if reason is not None:
        assert reason in body["error"]


def test_a_jwks_with_one_key_accepts_a_token_without_kid(make_app, tmp_path, private_key,
                                                         other_key):
    path = write_jwks(tmp_path / "jwks.json", jwk(private_key, "ins_one"))
    client = make_app(JWT_PUBLIC_KEY_FILE=path).test_client()
    assert client.get(SESSIONS, headers=bearer(make_token(private_key))).status_code == 200
    assert_refused(client.get(SESSIONS, headers=bearer(make_token(other_key))))


def test_a_jwks_skips_keys_that_are_not_rs256_signing_keys(make_app, tmp_path, private_key,
                                                           other_key):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_entry = {**jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True),
                "kid": "ins_ec", "use": "sig", "alg": "ES256"}
    path = write_jwks(tmp_path / "jwks.json", ec_entry, jwk(private_key, "ins_one"),
                      {**jwk(other_key, "ins_enc"), "use": "enc"})
    client = make_app(JWT_PUBLIC_KEY_FILE=path).test_client()
    assert client.get(SESSIONS, headers=bearer(make_token(private_key))).status_code == 200
    assert_refused(client.get(SESSIONS, headers=bearer(make_token(other_key, kid="ins_enc"))))


def test_a_pem_certificate_file_works(make_app, tmp_path, private_key, other_key):
    path = write(tmp_path / "cert.pem", self_signed_certificate(private_key))
    client = make_app(JWT_PUBLIC_KEY_FILE=path).test_client()
    response = client.post(SESSIONS, json={}, headers=bearer(make_token(private_key)))
    assert response.status_code == 201, response.json
    assert response.json["userId"] == USER
    assert_refused(client.get(SESSIONS, headers=bearer(make_token(other_key))))


def test_a_pem_key_file_accepts_a_token_with_a_kid(client, private_key):
    """Clerk's session tokens always carry a kid; its PEM public key (CLERK_JWT_KEY) has none."""
    token = make_token(private_key, kid="ins_2clerkInstance")
    response = client.get(SESSIONS, headers=bearer(token))
    assert response.status_code == 200, response.json


def test_without_a_key_file_a_valid_token_is_refused(make_app, private_key):
    client = make_app().test_client()
    token = make_token(private_key)
    body = assert_refused(client.get(SESSIONS, headers=bearer(token)), token)
    assert "JWT_PUBLIC_KEY_FILE" in body["error"]


# --- unusable key files fail at start -------------------------------------------------------

def ec_public_pem(path):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return write(path, key.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo))


def ec_only_jwks(path):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    entry = {**jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True), "kid": "ins_ec",
             "use": "sig", "alg": "ES256"}
    return write_jwks(path, entry)


BAD_KEY_FILES = [
    pytest.param(lambda path: str(path), id="missing"),
    pytest.param(lambda path: write(path, b"this is not a key\n\x00\xff"), id="garbage"),
    pytest.param(lambda path: write(path, b""), id="empty"),
    pytest.param(ec_public_pem, id="ec-public-key"),
    pytest.param(ec_only_jwks, id="jwks-with-only-an-ec-key"),
    pytest.param(lambda path: write_jwks(path), id="jwks-with-no-keys"),
    pytest.param(lambda path: write(path, '{"keys": [{"kty": "RSA", '), id="broken-json"),
    pytest.param(lambda path: write_jwks(path, {"kty": "RSA", "kid": "ins_x", "e": "AQAB"}),
                 id="rsa-jwk-without-modulus"),
]


@pytest.mark.parametrize("build", BAD_KEY_FILES)
def test_an_unusable_key_file_fails_at_start(make_app, tmp_path, build):
    path = build(tmp_path / "key-file")
    with pytest.raises(ValueError, match="JWT_PUBLIC_KEY_FILE"):
        make_app(JWT_PUBLIC_KEY_FILE=path)


# --- a token is never stored, logged or echoed ----------------------------------------------

def test_a_token_is_never_stored_or_logged(client, tmp_path, private_key, token, headers,
                                           caplog):
    caplog.set_level(logging.DEBUG)
    signature = token.rpartition(".")[2]
    bad = make_token(private_key, exp=int(time.time()) - 60)
    tampered = token[:-60] + flip(token[-60:], 0)
    created = client.post(SESSIONS, json={}, headers=headers)
    assert created.status_code == 201, created.json
    url = f"{SESSIONS}/{created.json['id']}"
    answers = [created, client.get(SESSIONS, headers=headers), client.get(url, headers=headers),
               client.patch(url, json={"status": "planning"}, headers=headers)]
    assert [answer.status_code for answer in answers] == [201, 200, 200, 200]
    refusals = [client.get(SESSIONS, headers=bearer(bad)),
                client.get(url, headers=bearer(tampered))]
    for refusal in refusals:
        assert_refused(refusal, token, signature, bad, bad.rpartition(".")[2], tampered)

    secrets = [token, signature, bad, bad.rpartition(".")[2], tampered]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("test.db*"))
    assert USER.encode() in stored, "the session was not found in the database files"
    for secret in secrets:
        assert secret.encode() not in stored

    records = "\n".join(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}"
                        for record in caplog.records)
    for secret in secrets:
        assert secret not in records
    lines = [json.loads(record.getMessage()) for record in caplog.records
             if record.name == ACCESS]
    assert [line["status"] for line in lines] == [201, 200, 200, 200, 401, 401]
    assert [line["credential"] for line in lines] == [f"token:{USER}"] * 4 + [None] * 2
    assert [line["user_id"] for line in lines] == [USER] * 4 + [None] * 2


# --- rate-limit bucket ----------------------------------------------------------------------

def bucket_of(app, authorization, remote_addr="203.0.113.9"):
    with app.test_request_context(SESSIONS, headers={"Authorization": authorization},
                                  environ_base={"REMOTE_ADDR": remote_addr}):
        return credential_key()


def test_a_tokens_bucket_is_its_user(app, private_key):
    first = make_token(private_key, jti="one")
    second = make_token(private_key, jti="two", exp=int(time.time()) + 600)
    assert first != second
    assert bucket_of(app, f"Bearer {first}") == f"token:{USER}"
    assert bucket_of(app, first) == bucket_of(app, f"Bearer {second}") == f"token:{USER}"
    assert bucket_of(app, f"Bearer {make_token(private_key, sub=OTHER_USER)}") \
        == f"token:{OTHER_USER}"


def test_a_refused_tokens_bucket_is_its_address(app, private_key, other_key):
    for refused in [make_token(private_key, exp=int(time.time()) - 60), make_token(other_key)]:
        assert bucket_of(app, f"Bearer {refused}") == "address:203.0.113.9"


def test_fresh_tokens_of_one_user_share_the_rate_limit(make_app, pem_file, private_key):
    client = make_app(JWT_PUBLIC_KEY_FILE=pem_file, RATE_LIMIT="3/minute").test_client()
    first = bearer(make_token(private_key, jti="first"))
    assert [client.get(SESSIONS, headers=first).status_code for _ in range(3)] == [200] * 3
    fresh = bearer(make_token(private_key, jti="fresh"))
    assert fresh != first
    assert_error(client.get(SESSIONS, headers=fresh), 429)
    # Another user's token has a bucket of its own.
    other = bearer(make_token(private_key, sub=OTHER_USER))
    assert client.get(SESSIONS, headers=other).status_code == 200
