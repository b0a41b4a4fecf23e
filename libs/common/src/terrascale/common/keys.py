"""Ed25519 key handling for access tokens: loading PEM text, key files, generating key pairs.

``python -m terrascale.common.keys PRIVATE_DIR [PUBLIC_DIR]`` writes ``jwt_private_key`` into
PRIVATE_DIR and ``jwt_public_key`` into PUBLIC_DIR (default: the same) unless a key pair exists;
the compose file's key-generation step uses it, so only the signer can read the private half.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise ValueError("JWT_PUBLIC_KEY is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("JWT_PUBLIC_KEY must be an Ed25519 key")  # noqa: TRY004 - a config error
    return key


def load_private_key(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("JWT_PRIVATE_KEY is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("JWT_PRIVATE_KEY must be an Ed25519 key")  # noqa: TRY004 - a config error
    return key


def generate_private_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def public_key_pem(private_key: Ed25519PrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def read_key_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read key file {path}: {exc.strerror}") from None


def write_key_pair(private_dir: Path, public_dir: Path | None = None) -> None:
    """Create a key pair unless one exists; the private half is readable by its owner only."""
    private_file = private_dir / "jwt_private_key"
    public_file = (public_dir or private_dir) / "jwt_public_key"
    if not private_file.exists():
        private_dir.mkdir(parents=True, exist_ok=True)
        private_file.write_text(generate_private_key_pem())
        private_file.chmod(0o600)
    public_file.parent.mkdir(parents=True, exist_ok=True)
    public_file.write_text(public_key_pem(load_private_key(private_file.read_text())))


if __name__ == "__main__":
    directories = [Path(argument) for argument in sys.argv[1:3]] or [Path()]
    write_key_pair(*directories)
