#!/usr/bin/env python3
"""PyTorch transcriptions of mmdet 2.x's FPN detector parts, for goselfsup's parity tests
(models/det). JSON on stdin, JSON on stdout; arrays are flat lists in goselfsup's layouts
(NHWC feature maps, convolution weights [kh, kw, in, out], linear weights [out, in]).

  fpn_reference.py fpn       mmdet's FPN.forward (ConvModule lateral 1x1 and fpn 3x3 convs,
                             with BN in train mode when "norm", else with a bias; nearest
                             top-down F.interpolate to the lateral's size; extra levels by
                             max_pool2d(kernel 1, stride 2)); the outputs, and the gradients of
                             sum_l <out_l, cot_l> w.r.t. the inputs and every parameter.
  fpn_reference.py levels    SingleRoIExtractor.map_roi_levels.
  fpn_reference.py extract   SingleRoIExtractor.forward with torchvision.ops.roi_align
                             (aligned=True), and the gradient of <out, cot> w.r.t. the maps.
                             torchvision.ops.MultiScaleRoIAlign is not used: it maps levels with
                             floor(4 + log2(sqrt(area) / 224) + 1e-6) (the eps outside the log),
                             infers the scales from the map sizes, and pools with aligned=False.
  fpn_reference.py proposals RPNHead._get_bboxes_single (mmdet 2.x): per level the sigmoid
                             scores sorted, the nms_pre best, decode (delta2bbox, means 0, stds
                             1, clipped), min_bbox_size, mmcv's batched_nms with the level ids
                             (the coordinate-offset path), the first max_per_img.
  fpn_reference.py convfc    ConvFCBBoxHead (shared convs: ConvModule conv + BN train + ReLU;
                             flatten(1) of NCHW; shared fcs + ReLU; fc_cls, fc_reg) forward, and
                             the gradient of <cls, cot_cls> + <reg, cot_reg> w.r.t. the input.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
import torchvision


def dtype_of(req):
    return torch.float64 if req.get('dtype') == 'float64' else torch.float32


def nhwc(a, shape, dt):
    return torch.tensor(a, dtype=dt).reshape(shape).permute(0, 3, 1, 2).contiguous()


def flat_nhwc(t):
    return t.detach().permute(0, 2, 3, 1).reshape(-1).tolist()


def params_of(req, dt):
    """The parameters, named as PyTorch's state_dict, as leaf tensors in PyTorch's layout."""
    out = {}
    for name, p in req['params'].items():
        t = torch.tensor(p['data'], dtype=dt).reshape(p['shape'])
        if t.dim() == 4:  # [kh, kw, in, out] -> [out, in, kh, kw]
            t = t.permute(3, 2, 0, 1).contiguous()
        out[name] = t.requires_grad_(True)
    return out


def flat_grad_go(t):
    g = t.grad
    if g is None:
        g = torch.zeros_like(t)
    if g.dim() == 4:
        g = g.permute(2, 3, 1, 0)
    return g.reshape(-1).tolist()


def conv_module(p, prefix, x, padding, norm, eps=1e-5):
    w = p[prefix + '.conv.weight']
    b = p.get(prefix + '.conv.bias')
    y = F.conv2d(x, w, b, padding=padding)
    if norm:
        y = F.batch_norm(y, None, None, p[prefix + '.bn.weight'], p[prefix + '.bn.bias'], training=True, eps=eps)
    return y


def mode_fpn(req):
    dt = dtype_of(req)
    p = params_of(req, dt)
    xs = [nhwc(a, s, dt).requires_grad_(True) for a, s in zip(req['inputs'], req['shapes'])]
    norm, num_outs = req['norm'], req['num_outs']
    laterals = [conv_module(p, f'lateral_convs.{i}', x, 0, norm) for i, x in enumerate(xs)]
    for i in range(len(laterals) - 1, 0, -1):
        prev_shape = laterals[i - 1].shape[2:]
        laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=prev_shape, mode='nearest')
    outs = [conv_module(p, f'fpn_convs.{i}', l, 1, norm) for i, l in enumerate(laterals)]
    for _ in range(num_outs - len(outs)):
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
    loss = sum((o.permute(0, 2, 3, 1).reshape(-1) * torch.tensor(c, dtype=dt)).sum() for o, c in zip(outs, req['cots']))
    loss.backward()
    return {'outs': [flat_nhwc(o) for o in outs], 'out_shapes': [list(o.permute(0, 2, 3, 1).shape) for o in outs],
            'input_grads': [x.grad.permute(0, 2, 3, 1).reshape(-1).tolist() for x in xs],
            'param_grads': {n: flat_grad_go(t) for n, t in p.items()}}


def map_roi_levels(rois, num_levels, finest_scale):
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    target_lvls = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return target_lvls.clamp(min=0, max=num_levels - 1).long()


def rois5(boxes, dt):
    b = torch.tensor(boxes, dtype=dt).reshape(-1, 4)
    return b


def mode_levels(req):
    dt = dtype_of(req)
    boxes = torch.tensor(req['boxes'], dtype=dt).reshape(-1, 4)
    rois = torch.cat([torch.zeros(boxes.shape[0], 1, dtype=dt), boxes], 1)
    return {'levels': map_roi_levels(rois, req['num_levels'], req['finest_scale']).tolist()}


def mode_extract(req):
    dt = dtype_of(req)
    feats = [nhwc(a, s, dt).requires_grad_(True) for a, s in zip(req['feats'], req['shapes'])]
    b, k = req['b'], req['k']
    boxes = torch.tensor(req['rois'], dtype=dt).reshape(b * k, 4)
    batch = torch.arange(b, dtype=dt).repeat_interleave(k)[:, None]
    rois = torch.cat([batch, boxes], 1)
    out_size, strides = req['output_size'], req['strides']
    layer = lambda i, r: torchvision.ops.roi_align(feats[i], r, out_size, 1.0 / strides[i], req['sampling_ratio'], aligned=True)
    num_levels = len(strides)
    if num_levels == 1:
        roi_feats = layer(0, rois)
    else:
        roi_feats = feats[0].new_zeros(rois.size(0), feats[0].shape[1], out_size, out_size)
        target_lvls = map_roi_levels(rois, num_levels, req['finest_scale'])
        for i in range(num_levels):
            inds = (target_lvls == i).nonzero(as_tuple=False).squeeze(1)
            if inds.numel() > 0:
                roi_feats[inds] = layer(i, rois[inds])
            else:
                roi_feats = roi_feats + feats[i].sum() * 0.
    cot = torch.tensor(req['cot'], dtype=dt).reshape(b * k, out_size, out_size, -1).permute(0, 3, 1, 2)
    (roi_feats * cot).sum().backward()
    return {'out': flat_nhwc(roi_feats), 'grads': [f.grad.permute(0, 2, 3, 1).reshape(-1).tolist() for f in feats],
            'levels': map_roi_levels(rois, num_levels, req['finest_scale']).tolist() if num_levels > 1 else []}


def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    dx, dy, dw, dh = deltas.unbind(-1)
    max_ratio = abs(math.log(wh_ratio_clip))
    dw, dh = dw.clamp(-max_ratio, max_ratio), dh.clamp(-max_ratio, max_ratio)
    px, py = (rois[:, 0] + rois[:, 2]) * 0.5, (rois[:, 1] + rois[:, 3]) * 0.5
    pw, ph = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1, x2, y2 = gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5
    h, w = float(max_shape[0]), float(max_shape[1])
    return torch.stack([x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)], -1)


def mmcv_batched_nms(boxes, scores, idxs, iou_thr):
    """mmcv 1.x batched_nms, class_agnostic False, below split_thr: the offset trick."""
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    keep = torchvision.ops.nms(boxes + offsets[:, None], scores, iou_thr)
    return keep  # sorted by score, descending


def mode_proposals(req):
    dt = dtype_of(req)
    b = req['b']
    nms_pre, max_per_img, iou_thr, min_size = req['nms_pre'], req['max_per_img'], req['iou_thr'], req['min_bbox_size']
    cls = [torch.tensor(c, dtype=dt).reshape(s) for c, s in zip(req['cls'], req['cls_shapes'])]
    reg = [torch.tensor(r, dtype=dt).reshape(s[0], s[1], s[2], -1) for r, s in zip(req['reg'], req['cls_shapes'])]
    anchors = [torch.tensor(a, dtype=dt).reshape(-1, 4) for a in req['anchors']]
    img_shape = req['img_shape']
    out = []
    for i in range(b):
        mlvl_scores, mlvl_bbox_preds, mlvl_valid_anchors, level_ids = [], [], [], []
        for lvl in range(len(cls)):
            scores = cls[lvl][i].reshape(-1).sigmoid()  # permute(1, 2, 0) of NCHW is NHWC
            bbox_pred = reg[lvl][i].reshape(-1, 4)
            a = anchors[lvl]
            if 0 < nms_pre < scores.shape[0]:
                ranked_scores, rank_inds = scores.sort(descending=True)
                topk_inds = rank_inds[:nms_pre]
                scores = ranked_scores[:nms_pre]
                bbox_pred = bbox_pred[topk_inds, :]
                a = a[topk_inds, :]
            mlvl_scores.append(scores)
            mlvl_bbox_preds.append(bbox_pred)
            mlvl_valid_anchors.append(a)
            level_ids.append(scores.new_full((scores.size(0),), lvl, dtype=torch.long))
        scores = torch.cat(mlvl_scores)
        anchors_ = torch.cat(mlvl_valid_anchors)
        rpn_bbox_pred = torch.cat(mlvl_bbox_preds)
        proposals = delta2bbox(anchors_, rpn_bbox_pred, img_shape[i])
        ids = torch.cat(level_ids)
        if min_size >= 0:
            w = proposals[:, 2] - proposals[:, 0]
            h = proposals[:, 3] - proposals[:, 1]
            valid_mask = (w > min_size) & (h > min_size)
            if not valid_mask.all():
                proposals, scores, ids = proposals[valid_mask], scores[valid_mask], ids[valid_mask]
        if proposals.numel() > 0:
            keep = mmcv_batched_nms(proposals, scores, ids, iou_thr)[:max_per_img]
            out.append({'boxes': proposals[keep].reshape(-1).tolist(), 'scores': scores[keep].tolist()})
        else:
            out.append({'boxes': [], 'scores': []})
    return {'images': out}


def mode_convfc(req):
    dt = dtype_of(req)
    p = params_of(req, dt)
    x = nhwc(req['x'], req['x_shape'], dt).requires_grad_(True)
    y = x
    for i in range(req['num_shared_convs']):
        y = F.relu(conv_module(p, f'shared_convs.{i}', y, 1, req['norm']))
    y = y.flatten(1)
    for i in range(req['num_shared_fcs']):
        y = F.relu(F.linear(y, p[f'shared_fcs.{i}.weight'], p[f'shared_fcs.{i}.bias']))
    cls = F.linear(y, p['fc_cls.weight'], p['fc_cls.bias'])
    reg = F.linear(y, p['fc_reg.weight'], p['fc_reg.bias'])
    loss = (cls * torch.tensor(req['cot_cls'], dtype=dt).reshape(cls.shape)).sum() + \
        (reg * torch.tensor(req['cot_reg'], dtype=dt).reshape(reg.shape)).sum()
    loss.backward()
    return {'cls': cls.detach().reshape(-1).tolist(), 'reg': reg.detach().reshape(-1).tolist(),
            'x_grad': x.grad.permute(0, 2, 3, 1).reshape(-1).tolist(),
            'param_grads': {n: flat_grad_go(t) for n, t in p.items()}}


MODES = {'fpn': mode_fpn, 'levels': mode_levels, 'extract': mode_extract, 'proposals': mode_proposals, 'convfc': mode_convfc}

if __name__ == '__main__':
    torch.set_num_threads(1)
    req = json.load(sys.stdin)
    json.dump(MODES[sys.argv[1]](req), sys.stdout)
