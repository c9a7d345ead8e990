#!/usr/bin/env python3
"""Package the filter's .wasm as an OCI image that Istio's `oci://` puller accepts.

    python3 scripts/oci.py WASM OUT_DIR [TAG]      (TAG defaults to Cargo.toml's version)

writes
    OUT_DIR/layout/                      an OCI image layout (oci-layout, index.json, blobs/sha256/…)
    OUT_DIR/cognito-edge-auth-TAG.tar    the same layout as one tarball (an "oci-archive")

and prints the manifest digest (what a WasmPlugin's `sha256:` pins) and the tarball's size
and digest. Python 3 standard library only; no Docker, no registry.

The image is the "compat" variant of the Wasm image specification: a plain single-layer OCI
image whose layer (application/vnd.oci.image.layer.v1.tar+gzip) holds one file,
`plugin.wasm`, with the manifest annotation module.wasm.image/variant=compat. Istio tries this
form first; unlike the custom `application/vnd.module.wasm.*` media types it is an ordinary
image, so every registry, mirror and tool that handles images handles it.

The output is reproducible: the same .wasm and TAG give the same bytes and digests (fixed
timestamps, owners and modes; gzip without a name or time).
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

NAME = "cognito-edge-auth"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    wasm_path, out_dir = argv[1], argv[2]
    tag = argv[3] if len(argv) == 4 else cargo_version()
    with open(wasm_path, "rb") as f:
        wasm = f.read()
    if wasm[:4] != b"\0asm":
        sys.exit(f"{wasm_path}: not a WebAssembly module")

    layer_tar = tar_bytes([("plugin.wasm", wasm)])
    layer = gzip_bytes(layer_tar)
    config = canonical({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        # No title annotation on the layer: `oras pull` would save the gzipped tar under it.
        "layers": [descriptor(LAYER_TYPE, layer)],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": NAME,
            "org.opencontainers.image.version": tag,
            "org.opencontainers.image.description":
                "Envoy proxy-wasm filter that validates Amazon Cognito tokens",
        },
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [dict(descriptor(MANIFEST_TYPE, manifest),
                           annotations={"org.opencontainers.image.ref.name": tag})],
    })
    files = [
        ("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ] + sorted((blob_path(b), b) for b in (config, layer, manifest))

    layout = os.path.join(out_dir, "layout")
    if os.path.isdir(layout):
        shutil.rmtree(layout)
    for name, data in files:
        path = os.path.join(layout, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    archive = os.path.join(out_dir, f"{NAME}-{tag}.tar")
    archive_bytes = tar_bytes(files, with_dirs=True)
    with open(archive, "wb") as f:
        f.write(archive_bytes)

    print(f"wasm      {len(wasm)} bytes  {digest(wasm)}")
    print(f"manifest  {len(manifest)} bytes  {digest(manifest)}   <- WasmPlugin sha256 / @digest")
    print(f"layer     {len(layer)} bytes  {digest(layer)}")
    print(f"layout    {layout}  (ref.name {tag})")
    print(f"archive   {archive}  {len(archive_bytes)} bytes  {digest(archive_bytes)}")


def cargo_version():
    """The package version in the Cargo.toml beside scripts/."""
    cargo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Cargo.toml")
    with open(cargo, encoding="utf-8") as f:
        for line in f:
            if line.startswith("version = "):
                return line.split('"')[1]
    sys.exit(f"{cargo}: no version")


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data):
    return {"mediaType": media_type, "digest": digest(data), "size": len(data)}


def blob_path(data):
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def tar_bytes(files, with_dirs=False):
    """A ustar archive of (name, bytes) with fixed metadata, directories first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        if with_dirs:
            dirs = sorted({os.path.dirname(n) for n, _ in files} - {""})
            parents = sorted({p for d in dirs for p in prefixes(d)})
            for d in parents:
                tar.addfile(tar_info(d + "/", 0, tarfile.DIRTYPE, 0o755))
        for name, data in files:
            tar.addfile(tar_info(name, len(data), tarfile.REGTYPE, 0o644), io.BytesIO(data))
    return buf.getvalue()


def prefixes(path):
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def tar_info(name, size, kind, mode):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, mode
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


if __name__ == "__main__":
    main(sys.argv)
