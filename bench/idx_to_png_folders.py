#!/usr/bin/env python3
"""Writes IDX image/label files (MNIST, Fashion-MNIST) as folders of grey PNG pictures.

    idx_to_png_folders.py IDX_DIR OUT_DIR [--train N] [--test N] [--names a,b,...]

makes OUT_DIR/train/<class>/<index>.png from the first N training images and
OUT_DIR/test/<class>/<index>.png from the first N test images (standard library only).
Class folders are named by --names (default: the digit), so sorted folder names keep the
label order when they sort as the labels do.
"""
import argparse, gzip, os, struct, zlib


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return shape, data[4 + 4 * dims :]


def png_grey(width, height, pixels):
    raw = b"".join(b"\0" + pixels[y * width : (y + 1) * width] for y in range(height))
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def find(d, name):
    for n in (name, name[:-3]):
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    raise SystemExit(f"{name} not found in {d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("idx_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=10000)
    ap.add_argument("--names", default=None)
    a = ap.parse_args()
    for split, prefix, count in [("train", "train", a.train), ("test", "t10k", a.test)]:
        (n, h, w), images = read_idx(find(a.idx_dir, f"{prefix}-images-idx3-ubyte.gz"))
        _, labels = read_idx(find(a.idx_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        names = a.names.split(",") if a.names else [str(i) for i in range(10)]
        for i in range(min(count, n)):
            d = os.path.join(a.out_dir, split, names[labels[i]])
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{i:05d}.png"), "wb") as f:
                f.write(png_grey(w, h, images[i * h * w : (i + 1) * h * w]))
    print("wrote", a.out_dir)


if __name__ == "__main__":
    main()
