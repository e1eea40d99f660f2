#!/usr/bin/env python3
"""Times one FCN training step in PyTorch for goselfsup benchmark seg-step: the network of
seg_reference.py (a dilated ResNet, output stride 8, with an FCNHead decode head and an
auxiliary FCNHead), in float32, on random uint8 images and random label maps with ignored
(255) pixels: normalisation, forward, both heads' cross-entropy at the input size, backward
and an SGD step (momentum 0.9, weight decay 5e-4, on every parameter as mmengine's default).
Prints one JSON line: {"seconds_per_step", "images_per_second", "torch", "threads", "device",
"peak_rss_bytes"}.

  seg_step_reference.py --model resnet18 --size 128 --batch 4 --classes 21 --threads 2
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npid_reference import peak_rss  # noqa: E402
from seg_reference import MEAN, STD, EncoderDecoder  # noqa: E402

# The networks of seg-step: mmseg's FCN R50-D8 (configs/_base_/models/fcn_r50-d8.toml) and the
# R18-D8 of configs/benchmarks/segmentation/coco128/fcn_r18-d8_128x128_coco128.toml.
MODELS = {
    "resnet18": {"block": "basic", "stage_blocks": [2, 2, 2, 2],
                 "decode": {"in_channels": 512, "channels": 128}, "aux": {"in_channels": 256, "channels": 64}},
    "resnet50": {"block": "bottleneck", "stage_blocks": [3, 4, 6, 3],
                 "decode": {"in_channels": 2048, "channels": 512}, "aux": {"in_channels": 1024, "channels": 256}},
}


def spec_of(model, classes):
    m = MODELS[model]
    return {"block": m["block"], "stage_blocks": m["stage_blocks"], "strides": [1, 2, 1, 1],
            "dilations": [1, 1, 2, 4], "contract_dilation": True, "num_classes": classes, "dropout": 0.1,
            "decode": dict(m["decode"], in_index=3, num_convs=2, concat_input=True, loss_weight=1.0),
            "aux": dict(m["aux"], in_index=2, num_convs=1, concat_input=False, loss_weight=0.4)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--ignore", type=float, default=0.05, help="share of ignored (255) pixels")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = EncoderDecoder(spec_of(a.model, a.classes)).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8).to(dev)
    masks = torch.randint(0, a.classes, (a.batch, a.size, a.size))
    masks[torch.rand(masks.shape) < a.ignore] = 255
    masks = masks.to(dev)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

    def step():
        x = (images.permute(0, 3, 1, 2).float() - mean) / std
        feats = model(x)
        loss = model.decode_head.loss(model.decode_head(feats), masks)
        loss = loss + model.auxiliary_head.loss(model.auxiliary_head(feats), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
        loss.item()  # as goselfsup's step, which returns its loss to the host
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(json.dumps({"seconds_per_step": dt, "images_per_second": a.batch / dt, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "device": name, "peak_rss_bytes": peak_rss()}))


if __name__ == "__main__":
    main()
