"""Token minting for `make bench`: Cognito-shaped RS256 ID tokens, cached under bench/.tokens/.

A token file holds one token per line (the wrk Lua script loads it in `init`). Each file has a
`.meta.json` beside it with the key's fingerprint, the count and the earliest `exp`; a file is
minted again when the key changed or the tokens expire within REMINT_MARGIN seconds.

Run on its own to (re)mint and print the paths:  .venv/bin/python bench/tokens.py 50000
"""

import base64
import hashlib
import json
import multiprocessing
import os
import sys
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN_DIR = os.path.join(ROOT, "bench", ".tokens")

POOL = "us-east-1_Abc123"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}"
CLIENT = "client1"
KEY_FILE = os.path.join(ROOT, "tests", "keys", "key1.pem")
KID = "k1"
LIFETIME = 2 * 3600  # exp = now + 2 h
REMINT_MARGIN = 45 * 60  # a run takes ~10 min; leave plenty of room


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key():
    with open(KEY_FILE, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def jwks() -> dict:
    """The public JWKS of the signing key, as Cognito publishes it."""
    numbers = _key().public_key().public_numbers()

    def uint(n: int) -> str:
        return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
                      "n": uint(numbers.n), "e": uint(numbers.e)}]}


def claims(label: str, i: int, now: int, lifetime: int = LIFETIME) -> dict:
    """Cognito ID-token claims (as tests/common/tokens.rs), with a distinct sub and jti; for a
    label starting with "access", Cognito access-token claims (client_id, scope, no aud)."""
    sub = str(uuid.UUID(bytes=hashlib.sha256(f"{label}-{i}".encode()).digest()[:16], version=4))
    user = f"{label}-user{i}"
    if label.startswith("access"):
        return {
            "sub": sub, "iss": ISSUER, "client_id": CLIENT, "token_use": "access",
            "scope": "openid email aws.cognito.signin.user.admin", "username": user,
            "iat": now - 10 + min(0, lifetime), "auth_time": now - 10 + min(0, lifetime),
            "exp": now + lifetime, "jti": str(uuid.uuid4()), "event_id": str(uuid.uuid4()),
            "origin_jti": str(uuid.uuid4()),
        }
    return {
        "sub": sub, "iss": ISSUER, "aud": CLIENT, "token_use": "id",
        "cognito:username": user, "email": f"{user}@example.com", "email_verified": True,
        "iat": now - 10 + min(0, lifetime), "auth_time": now - 10 + min(0, lifetime),
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()), "event_id": str(uuid.uuid4()),
    }


_HEADER = b64(json.dumps({"alg": "RS256", "kid": KID, "typ": "JWT"}, separators=(",", ":")).encode())
_worker_key = None


def _sign_range(job):
    global _worker_key
    label, start, stop, now, lifetime = (job + (LIFETIME,))[:5]
    if _worker_key is None:
        _worker_key = _key()
    out = []
    for i in range(start, stop):
        payload = b64(json.dumps(claims(label, i, now, lifetime), separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{payload}".encode()
        sig = _worker_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        out.append(f"{_HEADER}.{payload}.{b64(sig)}")
    return out


def mint(label: str, count: int, lifetime: int) -> list:
    """`count` fresh tokens expiring `lifetime` seconds from now (negative: already expired),
    not cached: for tokens whose window is short (the soak's clock-skew phase)."""
    return _sign_range((label, 0, count, int(time.time()), lifetime))


def key_fingerprint() -> str:
    with open(KEY_FILE, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def token_file(label: str, count: int, log=print) -> str:
    """The path of a file of `count` valid tokens for `label`; minted when missing or stale."""
    fp = key_fingerprint()
    path = os.path.join(TOKEN_DIR, f"{KID}-{fp}-{label}-{count}.txt")
    meta_path = path[:-4] + ".meta.json"
    now = int(time.time())
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if (meta.get("count") == count and meta.get("key") == fp
                and meta.get("exp", 0) - now > REMINT_MARGIN and os.path.exists(path)):
            return path
    except (OSError, ValueError):
        pass
    os.makedirs(TOKEN_DIR, exist_ok=True)
    started = time.time()
    procs = max(1, os.cpu_count() or 1)
    chunk = max(1, min(2000, (count + procs - 1) // procs))
    jobs = [(label, s, min(count, s + chunk), now) for s in range(0, count, chunk)]
    if count >= 500 and procs > 1:
        with multiprocessing.Pool(procs) as pool:
            parts = pool.map(_sign_range, jobs)
    else:
        parts = [_sign_range(j) for j in jobs]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for part in parts:
            for token in part:
                f.write(token + "\n")
    os.replace(tmp, path)
    with open(meta_path, "w") as f:
        json.dump({"count": count, "key": fp, "kid": KID, "exp": now + LIFETIME, "minted": now}, f)
    log(f"minted {count} tokens ({label}) in {time.time() - started:.1f}s → {os.path.relpath(path, ROOT)}")
    return path


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    for label, count in (("hot", 1), ("users", 1000), ("unique", n)):
        print(token_file(label, count))
