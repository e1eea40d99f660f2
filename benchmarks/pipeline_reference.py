#!/usr/bin/env python3
"""torchvision's counterpart of goselfsup's data pipelines, for benchmarks and parity tests.

  pipeline_reference.py bench --size 224 --images DIR_OR_LIST
      NPID's training pipeline (decode, RandomResizedCrop(scale 0.2-1), RandomGrayscale(0.2),
      ColorJitter(0.4, 0.4, 0.4, 0.4), RandomHorizontalFlip, PILToTensor: uint8, as mmselfsup 1.x
      packs its inputs) on the images in one process, one thread: print a JSON line with the
      versions, then, for each line "pipeline" or "decode" read from stdin, run that over the
      images once and print a JSON line with the images per second
  pipeline_reference.py parity DIR
      read DIR/cases.json and DIR/*.png, apply each case's transform with fixed parameters,
      write DIR/<case>.out.png (see datasets/parity_test.go)
  pipeline_reference.py hsv DIR
      write Pillow's conversions of every colour: DIR/rgb2hsv.bin (the 2^24 RGB colours, R major,
      converted to HSV) and DIR/hsv2rgb.bin (the 2^24 HSV triples, H major, converted to RGB)
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as TF


def bench(a):
    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(a.images, "**", "*.jp*g"), recursive=True)) if os.path.isdir(a.images) else \
        [l.strip() for l in open(a.images) if l.strip()]
    paths = paths[: a.limit] if a.limit else paths
    pipeline = T.Compose([
        T.RandomResizedCrop(a.size, scale=(0.2, 1.0)),
        T.RandomGrayscale(p=0.2),
        T.ColorJitter(0.4, 0.4, 0.4, 0.4),
        T.RandomHorizontalFlip(),
        T.PILToTensor(),
    ])
    data = [open(p, "rb").read() for p in paths]
    import io

    def decode(b):
        return Image.open(io.BytesIO(b)).convert("RGB")

    # Warm up, then time passes over the images, as the caller asks for them on stdin
    # ("decode" or "pipeline", a line each; it alternates them with its own), printing each
    # pass's images per second as a JSON line.
    for b in data[:4]:
        pipeline(decode(b))
    passes = {"decode": decode, "pipeline": lambda b: pipeline(decode(b))}
    import PIL
    import torchvision
    print(json.dumps({"images": len(data), "pillow": PIL.__version__, "torchvision": torchvision.__version__}), flush=True)
    for line in sys.stdin:
        f = passes[line.strip()]
        t0 = time.perf_counter()
        for b in data:
            f(b)
        print(json.dumps({"images_per_second": len(data) / (time.perf_counter() - t0)}), flush=True)


INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
          "lanczos": Image.LANCZOS, "area": Image.BOX}


def parity(d):
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        op = c["op"]
        if op == "decode":
            Image.open(c["path"]).convert("RGB").save(os.path.join(d, c["name"] + ".out.png"))
            continue
        img = Image.open(os.path.join(d, c["input"] + ".png")).convert("RGB")
        if op == "resized_crop":
            top, left, h, w = c["box"]
            out = TF.resized_crop(img, top, left, h, w, c["size"], interpolation=TF.InterpolationMode(c["interpolation"]))
        elif op == "resize":
            out = img.resize(tuple(c["size"]), INTERP[c["interpolation"]])
        elif op == "hflip":
            out = TF.hflip(img)
        elif op == "vflip":
            out = TF.vflip(img)
        elif op == "grayscale":
            # mmcv's RandomGrayscale: the weighted sum of the channels with the normalised
            # weights (given in BGR order), truncated to 8 bits, on every channel.
            wts = np.array(c["weights"], dtype=np.float64)
            wts = wts / wts.sum()
            bgr = np.asarray(img)[..., ::-1].astype(np.float64)
            g = (wts * bgr).sum(axis=2).astype(np.uint8)
            out = Image.fromarray(np.dstack([g, g, g]))
        elif op == "brightness":
            out = TF.adjust_brightness(img, c["factor"])
        elif op == "contrast":
            out = TF.adjust_contrast(img, c["factor"])
        elif op == "saturation":
            out = TF.adjust_saturation(img, c["factor"])
        elif op == "hue":
            out = TF.adjust_hue(img, c["factor"])
        elif op == "center_crop":
            out = TF.center_crop(img, c["size"])
        elif op == "resize_edge":
            out = TF.resize(img, c["size"], interpolation=TF.InterpolationMode(c["interpolation"]))
        else:
            sys.exit("unknown op " + op)
        out.save(os.path.join(d, c["name"] + ".out.png"))


def hsv(d):
    every = np.arange(1 << 24, dtype=np.uint32)
    triples = np.stack([every >> 16, (every >> 8) & 255, every & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    with open(os.path.join(d, "rgb2hsv.bin"), "wb") as f:
        f.write(np.asarray(Image.fromarray(triples, "RGB").convert("HSV")).tobytes())
    with open(os.path.join(d, "hsv2rgb.bin"), "wb") as f:
        f.write(np.asarray(Image.fromarray(triples, "HSV").convert("RGB")).tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pb = sub.add_parser("bench")
    pb.add_argument("--size", type=int, default=224)
    pb.add_argument("--images", required=True)
    pb.add_argument("--limit", type=int, default=0)
    pp = sub.add_parser("parity")
    pp.add_argument("dir")
    ph = sub.add_parser("hsv")
    ph.add_argument("dir")
    a = p.parse_args()
    if a.cmd == "bench":
        bench(a)
    elif a.cmd == "hsv":
        hsv(a.dir)
    else:
        parity(a.dir)


if __name__ == "__main__":
    main()
