"""AES-128 for OMS security: CBC decryption (modes 5 and 7), CTR (ELL) and AES-CMAC
(mode 7 key derivation and authentication, RFC 4493).

The block cipher is chosen at run time, in one place (`_ecb`):

- CPython: the `cryptography` package (already a dependency of estran: BTHome uses its
  AES-CCM), in ECB mode, one call for a whole run of blocks;
- MicroPython: the built-in `cryptolib.aes` (ECB, mode 1), present in the unix port and in
  most firmware builds.

We do not carry a pure-Python AES of our own: the two runtimes the codecs run on both
provide a native, constant-time AES; a Python AES would be slow on a gateway's CPU and
leak its key through table-lookup timings. Where neither is available (a MicroPython build
without cryptolib) the plain-text path still works: importing this module never fails,
and only decrypting raises RemoteProtocolError(UNSUPPORTED) saying what is missing.
"""

from protocols._typing import TYPE_CHECKING
from protocols.errors import UNSUPPORTED, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    Block = Callable[[bytes], bytes]

BLOCK = 16
_ZERO = bytes(BLOCK)


def _ecb_cryptography(key: "bytes") -> "tuple[Block, Block]":
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.ECB())

    def encrypt(data: "bytes") -> "bytes":
        e = cipher.encryptor()
        return e.update(data) + e.finalize()

    def decrypt(data: "bytes") -> "bytes":
        d = cipher.decryptor()
        return d.update(data) + d.finalize()

    return encrypt, decrypt


def _ecb_cryptolib(key: "bytes") -> "tuple[Block, Block]":
    import cryptolib  # type: ignore[import-not-found]

    def encrypt(data: "bytes") -> "bytes":
        return bytes(cryptolib.aes(key, 1).encrypt(data))

    def decrypt(data: "bytes") -> "bytes":
        return bytes(cryptolib.aes(key, 1).decrypt(data))

    return encrypt, decrypt


def backend() -> "str | None":
    """The name of the AES implementation this interpreter has, or None."""
    try:
        import cryptography.hazmat.primitives.ciphers  # noqa: F401
    except ImportError:
        pass
    else:
        return "cryptography"
    try:
        import cryptolib  # noqa: F401
    except ImportError:
        return None
    return "cryptolib"


def _ecb(key: "bytes") -> "tuple[Block, Block]":
    name = backend()
    if name == "cryptography":
        return _ecb_cryptography(key)
    if name == "cryptolib":
        return _ecb_cryptolib(key)
    raise RemoteProtocolError(
        UNSUPPORTED,
        "AES decryption needs the cryptography package (CPython) or cryptolib (MicroPython)",
    )


def _xor(a: "bytes", b: "bytes") -> "bytes":
    return bytes([a[i] ^ b[i] for i in range(len(a))])


def cbc_decrypt(key: "bytes", iv: "bytes", data: "bytes") -> "bytes":
    """AES-128-CBC decryption of whole blocks (len(data) a multiple of 16)."""
    _encrypt, decrypt = _ecb(key)
    plain = decrypt(bytes(data))
    previous = iv + bytes(data[: len(data) - BLOCK])
    return _xor(plain, previous)


def cbc_encrypt(key: "bytes", iv: "bytes", data: "bytes") -> "bytes":
    """AES-128-CBC encryption of whole blocks (simulators and tests build telegrams)."""
    encrypt, _decrypt = _ecb(key)
    out = b""
    previous = iv
    for i in range(0, len(data), BLOCK):
        previous = encrypt(_xor(data[i : i + BLOCK], previous))
        out += previous
    return out


def ctr_crypt(key: "bytes", iv: "bytes", data: "bytes") -> "bytes":
    """AES-128-CTR (ELL): the counter is the IV's last bytes, incremented big-endian."""
    encrypt, _decrypt = _ecb(key)
    counters = b""
    counter = bytearray(iv)
    for _ in range(0, len(data), BLOCK):
        counters += bytes(counter)
        for i in range(BLOCK - 1, -1, -1):
            counter[i] = (counter[i] + 1) & 0xFF
            if counter[i]:
                break
    stream = encrypt(counters)
    return _xor(bytes(data), stream[: len(data)])


def _double(block: "bytes") -> "bytes":
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(BLOCK, "big")


def cmac(key: "bytes", data: "bytes") -> "bytes":
    """AES-CMAC (RFC 4493 / NIST SP 800-38B), the full 16-byte tag."""
    encrypt, _decrypt = _ecb(key)
    k1 = _double(encrypt(_ZERO))
    k2 = _double(k1)
    n = (len(data) + BLOCK - 1) // BLOCK
    if n == 0:
        n = 1
    last = data[(n - 1) * BLOCK :]
    if len(last) == BLOCK:
        last = _xor(last, k1)
    else:
        last = _xor(last + b"\x80" + bytes(BLOCK - 1 - len(last)), k2)
    x = _ZERO
    for i in range(n - 1):
        x = encrypt(_xor(x, data[i * BLOCK : (i + 1) * BLOCK]))
    return encrypt(_xor(x, last))


__all__ = ["BLOCK", "backend", "cbc_decrypt", "cbc_encrypt", "cmac", "ctr_crypt"]
