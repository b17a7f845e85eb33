# Copyright (c) mmgdkd contributors. All rights reserved.
"""MMSeg 1.2.2 model families, shrunk to toy size for the architecture matrix.

Each family is one of MMSeg's packaged configs (``mmseg::<family>/...``)
with its structure kept (backbone type, neck, head types, cascade stages,
auxiliary heads, output strides) and its widths/depths cut so that one
distillation step at 64x128 takes a fraction of a second on one core.
"""
import copy
import functools
from typing import Callable, Dict

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

NUM_CLASSES = 19
CHANNEL_KEYS = ('in_channels', 'channels', 'mid_channels', 'c1_in_channels',
                'c1_channels', 'project_channels', 'ocr_channels',
                'ema_channels', 'latent_channels', 'isa_channels',
                'fusion_channels', 'out_channels', 'ham_channels',
                'feat_channels', 'feedforward_channels')
_RESNETS = ('ResNetV1c', 'ResNet', 'ResNetV1d', 'ResNeSt')


def _scale(value, div: int):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(value // div, 4)
    if isinstance(value, (list, tuple)) and value and \
            all(isinstance(v, int) and not isinstance(v, bool)
                for v in value):
        return type(value)(max(v // div, 4) for v in value)
    return value


def _scale_widths(cfg, div: int, is_head: bool = False):
    """Divide every width key of a neck/head config (recursively) by div."""
    if isinstance(cfg, list):
        return [_scale_widths(c, div, is_head) for c in cfg]
    if not isinstance(cfg, dict):
        return cfg
    out = {}
    for key, value in cfg.items():
        if key in CHANNEL_KEYS and not (is_head and key == 'out_channels'):
            out[key] = _scale(value, div)
        elif isinstance(value, (dict, list)) and key not in (
                'loss_decode', 'norm_cfg', 'act_cfg', 'init_cfg'):
            out[key] = _scale_widths(value, div, is_head)
        else:
            out[key] = value
    return out


def _walk(cfg, fn):
    if isinstance(cfg, dict):
        cfg = fn({k: _walk(v, fn) for k, v in cfg.items()})
    elif isinstance(cfg, list):
        cfg = [_walk(v, fn) for v in cfg]
    return cfg


def _plain(cfg: dict) -> dict:
    """BN instead of SyncBN, 19 classes, no pretrained weights/init."""

    def fix(d):
        if d.get('type') == 'SyncBN':
            d['type'] = 'BN'
        if 'num_classes' in d and d['num_classes'] not in (1, 2):
            d['num_classes'] = NUM_CLASSES
        if isinstance(d.get('init_cfg'), dict) and \
                d['init_cfg'].get('type') == 'Pretrained':
            del d['init_cfg']  # no download (init_weights is not called)
        d.pop('pretrained', None)
        if d.get('type') == 'CrossEntropyLoss' and 'class_weight' in d:
            d['class_weight'] = None
        return d

    return _walk(cfg, fix)


def shrink_resnet(cfg: dict, div: int = 16) -> dict:
    """ResNet-50/101 families: R18-deep layout at 1/16 width, heads too."""
    cfg = copy.deepcopy(cfg)
    backbone = cfg['backbone']
    if backbone['type'] == 'ResNeSt':
        # Bottleneck only: base 4 x expansion 4 gives R18's 1/16 widths too
        backbone.update(depth=50, stem_channels=8, base_channels=4)
    else:
        backbone.update(depth=18, stem_channels=16, base_channels=16)
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        if cfg.get(key) is not None:
            cfg[key] = _scale_widths(cfg[key], div, key != 'neck')
    return cfg


def tiny(cfg: dict, family: str) -> dict:
    """A packaged config at toy size: BN, 19 classes, no download."""
    cfg = _plain(copy.deepcopy(cfg))
    # one normalisation for every family: teacher and student must agree
    cfg['data_preprocessor'] = dict(
        cfg['data_preprocessor'], size=(64, 128),
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True)
    cfg.pop('pretrained', None)
    if 'backbone' in cfg and cfg['backbone']['type'] in _RESNETS and \
            cfg['backbone'].get('depth', 0) >= 50:
        cfg = shrink_resnet(cfg)
    fix = FIXES.get(family)
    if fix is not None:
        cfg = fix(cfg)
    return cfg


# ---------------------------------------------------------------------------
# per-family width/depth cuts (families not built on a ResNet-50/101)
# ---------------------------------------------------------------------------
def _hrnet(cfg):
    extra = cfg['backbone']['extra']
    extra['stage1'].update(num_blocks=(1, ), num_channels=(8, ))
    extra['stage2'].update(num_blocks=(1, 1), num_channels=(4, 8))
    extra['stage3'].update(num_modules=1, num_blocks=(1, 1, 1),
                           num_channels=(4, 8, 16))
    extra['stage4'].update(num_modules=1, num_blocks=(1, 1, 1, 1),
                           num_channels=(4, 8, 16, 32))
    heads = cfg['decode_head']
    for head in heads if isinstance(heads, list) else [heads]:
        head['in_channels'] = [4, 8, 16, 32]
        head['channels'] = 60 if head['type'] == 'FCNHead' else 16
        if 'ocr_channels' in head:
            head['ocr_channels'] = 8
    return cfg


def _mit(cfg):
    cfg['backbone'].update(embed_dims=8, num_layers=[1, 1, 1, 1])
    cfg['decode_head'].update(in_channels=[8, 16, 40, 64], channels=16)
    return cfg


def _vit(embed=32, layers=4, heads_key='num_heads'):
    def fix(cfg):
        b = cfg['backbone']
        b.update(img_size=(64, 128), embed_dims=embed, num_layers=layers)
        b[heads_key] = 2
        if 'mlp_ratio' in b:
            b['mlp_ratio'] = 2
        if 'out_indices' in b:
            idx = b['out_indices']
            b['out_indices'] = (layers - 1 if isinstance(idx, int) else
                                tuple(range(layers))[-len(idx):])
        for key in ('neck', 'decode_head', 'auxiliary_head'):
            part = cfg.get(key)
            for p in (part if isinstance(part, list) else [part]):
                if not p:
                    continue
                for k in ('in_channels', 'channels', 'out_channels',
                          'embed_dims', 'embed_dim', 'post_process_channels',
                          'readout_type'):
                    if k not in p or (k == 'out_channels' and key != 'neck'):
                        continue
                    v = p[k]
                    if isinstance(v, int):
                        p[k] = embed if k != 'channels' else 16
                    elif isinstance(v, (list, tuple)) and k in (
                            'in_channels', 'out_channels',
                            'post_process_channels'):
                        p[k] = [embed] * len(v)
                if 'num_heads' in p:
                    p['num_heads'] = 2
                if 'num_layers' in p:
                    p['num_layers'] = 1
                if 'in_index' in p and isinstance(p['in_index'], int) and \
                        p['in_index'] >= 0 and key != 'neck':
                    p['in_index'] = min(p['in_index'], layers - 1)
        return cfg
    return fix


def _knet(cfg):
    head = cfg['decode_head']
    head['num_stages'] = 1
    head['kernel_update_head'] = head['kernel_update_head'][:1]
    for upd in head['kernel_update_head']:
        upd.update(in_channels=32, out_channels=32, num_heads=2)
        upd['kernel_updator_cfg'].update(in_channels=16, feat_channels=16,
                                         out_channels=16)
    return cfg


def _swin(cfg):
    cfg['backbone'].update(embed_dims=16, depths=[1, 1, 1, 1],
                           num_heads=[1, 2, 2, 4])
    cfg['decode_head'].update(in_channels=[16, 32, 64, 128], channels=16)
    cfg['auxiliary_head'].update(in_channels=64, channels=16)
    return cfg


def _convnext(cfg):
    cfg['backbone'].update(arch=dict(depths=[1, 1, 1, 1],
                                     channels=[16, 32, 64, 128]))
    cfg['backbone'].pop('init_cfg', None)
    cfg['decode_head'].update(in_channels=[16, 32, 64, 128], channels=16)
    cfg['auxiliary_head'].update(in_channels=64, channels=16)
    return cfg


def _unet(cfg):
    cfg['backbone'].update(base_channels=8)
    cfg['decode_head'].update(in_channels=8, channels=8)
    cfg['auxiliary_head'].update(in_channels=16, channels=8)
    return cfg


def _twins(cfg):
    cfg['backbone'].update(embed_dims=[8, 16, 40, 64], depths=[1, 1, 1, 1])
    cfg['neck'] = _scale_widths(cfg['neck'], 8)
    for key in ('decode_head', 'auxiliary_head'):
        if cfg.get(key):
            cfg[key] = _scale_widths(cfg[key], 8, True)
    return cfg


def _icnet(cfg):
    backbone = cfg['backbone']
    backbone['backbone_cfg'].update(depth=18, stem_channels=16,
                                    base_channels=16)
    backbone.update(layer_channels=(32, 128), psp_out_channels=32,
                    light_branch_middle_channels=4, out_channels=(4, 16, 16))
    cfg['neck'].update(in_channels=(4, 16, 16), out_channels=8)
    for key in ('decode_head', 'auxiliary_head'):
        heads = cfg[key]
        for head in heads if isinstance(heads, list) else [heads]:
            head.update(in_channels=8, channels=8)
    return cfg


def _mobilenet_v2(cfg):
    cfg['backbone']['widen_factor'] = 0.25
    cfg['decode_head'].update(in_channels=80, channels=16)
    cfg['auxiliary_head'].update(in_channels=24, channels=16)
    return cfg


def _poolformer(cfg):
    cfg['backbone'].update(arch=dict(layers=[1, 1, 1, 1],
                                     embed_dims=[8, 16, 32, 64],
                                     mlp_ratios=[2, 2, 2, 2],
                                     layer_scale_init_value=1e-5))
    cfg['backbone'].pop('init_cfg', None)
    cfg['neck'].update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg['decode_head'].update(in_channels=[16] * 4, channels=16)
    return cfg


def _generic(div):
    """Width cut for real-time nets: backbone widths and heads by div."""
    def fix(cfg):
        backbone = dict(cfg['backbone'])
        in_ch = backbone.get('in_channels')
        cfg['backbone'] = _scale_widths(backbone, div)
        if in_ch is not None:
            cfg['backbone']['in_channels'] = in_ch
        for key in ('neck', 'decode_head', 'auxiliary_head'):
            if cfg.get(key):
                cfg[key] = _scale_widths(cfg[key], div, key != 'neck')
        return cfg
    return fix


FIXES: Dict[str, Callable[[dict], dict]] = {
    'hrnet': _hrnet,
    'ocrnet': _hrnet,
    'segformer': _mit,
    'knet': _knet,
    'swin': _swin,
    'convnext': _convnext,
    'unet': _unet,
    'twins': _twins,
    'icnet': _icnet,
    'mobilenet_v2': _mobilenet_v2,
    'poolformer': _poolformer,
    'setr': _vit(),
    'vit': _vit(),
    'dpt': _vit(),
    'beit': _vit(),
    'mae': _vit(),
    'segmenter': _vit(),
}


def load_family(family: str, path: str) -> dict:
    from mmgdkd.models.distillers.utils import load_model_cfg
    return tiny(load_model_cfg(dict(cfg_path=path)).to_dict(), family)


#: family (= folder of mmseg/.mim/configs) -> a small packaged config of it
FAMILIES: Dict[str, str] = {
    'ann': 'ann_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'apcnet': 'apcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'beit': 'beit-base_upernet_8xb2-160k_ade20k-640x640.py',
    'bisenetv1': 'bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py',
    'bisenetv2': 'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py',
    'ccnet': 'ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'cgnet': 'cgnet_fcn_4xb8-60k_cityscapes-512x1024.py',
    'convnext': 'convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'danet': 'danet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ddrnet': 'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'deeplabv3': 'deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'deeplabv3plus': 'deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dmnet': 'dmnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dnlnet': 'dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dpt': 'dpt_vit-b16_8xb2-160k_ade20k-512x512.py',
    'emanet': 'emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    'encnet': 'encnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'erfnet': 'erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
    'fastfcn': 'fastfcn_r50-d32_jpu_aspp_4xb2-80k_cityscapes-512x1024.py',
    'fastscnn': 'fast_scnn_8xb4-160k_cityscapes-512x1024.py',
    'fcn': 'fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'gcnet': 'gcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'hrnet': 'fcn_hr18_4xb2-40k_cityscapes-512x1024.py',
    'icnet': 'icnet_r50-d8_4xb2-80k_cityscapes-832x832.py',
    'isanet': 'isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'knet': 'knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',
    'mae': 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'mask2former': 'mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
    'maskformer': 'maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    'mobilenet_v2':
    'mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
    'mobilenet_v3':
    'mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-512x1024.py',
    'nonlocal_net': 'nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ocrnet': 'ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py',
    'pidnet': 'pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
    'point_rend': 'pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    'poolformer': 'fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    'psanet': 'psanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'pspnet': 'pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'resnest': 'resnest_s101-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
    'san': 'san-vit-b16_coco-stuff164k-640x640.py',
    'segformer': 'segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
    'segmenter': 'segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',
    'segnext': 'segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py',
    'sem_fpn': 'fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    'setr': 'setr_vit-l_pup_8xb1-80k_cityscapes-768x768.py',
    'stdc': 'stdc1_4xb12-80k_cityscapes-512x1024.py',
    'swin':
    'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    'twins': 'twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py',
    'unet': 'unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py',
    'upernet': 'upernet_r50_4xb2-40k_cityscapes-512x1024.py',
    'vit': 'vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py',
    'vpd': 'vpd_sd_4xb8-25k_nyu-480x480.py',
}


@functools.lru_cache(maxsize=None)
def _family_cfg(family: str) -> dict:
    # parsing a packaged config (and its _base_ chain) costs ~0.5 s; every
    # family is a teacher once and a student once, some in several files
    return load_family(family, f'mmseg::{family}/{FAMILIES[family]}')


def family_cfg(family: str) -> dict:
    """The toy model config of ``family`` (a key of :data:`FAMILIES`), a
    fresh copy (callers edit it)."""
    return copy.deepcopy(_family_cfg(family))


#: Families that distil, as a ring: each is the teacher of the next one, so
#: every family is once teacher and once student, in mixed pairs (CNN with
#: transformer, cascade with non-cascade, stride 4/8/16/32 heads).
RING = [
    'pspnet', 'segformer', 'ocrnet', 'swin', 'point_rend', 'vit',
    'deeplabv3', 'knet', 'bisenetv1', 'setr', 'hrnet', 'dpt', 'stdc', 'beit',
    'ddrnet', 'mae', 'pidnet', 'segmenter', 'mobilenet_v3', 'fcn', 'twins',
    'icnet',
    'convnext', 'erfnet', 'poolformer', 'cgnet', 'segnext', 'fastscnn',
    'unet', 'bisenetv2', 'upernet', 'ann', 'apcnet', 'ccnet', 'danet',
    'deeplabv3plus', 'dmnet', 'dnlnet', 'emanet', 'encnet', 'fastfcn',
    'gcnet', 'isanet', 'nonlocal_net', 'resnest', 'sem_fpn', 'mobilenet_v2'
]

#: Input size per family (LR-ASPP pools with a 49x49 kernel at stride 8).
INPUT_SIZE = {'mobilenet_v3': (392, 392)}

#: Families refused when the distiller is built (ValueError), and why.
REFUSED = {
    'maskformer': 'MaskFormerHead',
    'mask2former': 'Mask2FormerHead',
    'san': 'MultimodalEncoderDecoder',
    'vpd': 'DepthEstimator',
}

#: Families that build but need compiled mmcv ops to run.
NEEDS_COMPILED_OPS = {'psanet': 'psamask'}


def batch(size, n=2, seed=0) -> dict:
    """``n`` random uint8 images of ``size`` with 19-class labels (top rows
    ignored, 255) and an edge map, as a data loader gives them."""
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        sample = SegDataSample()
        label = torch.randint(0, 19, (1, h, w), generator=gen)
        label[:, :4] = 255
        sample.gt_sem_seg = PixelData(data=label)
        # PIDNet's boundary branch trains on an edge map (GenerateEdge)
        sample.gt_edge_map = PixelData(data=(label % 2).to(torch.uint8))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, h, w), generator=gen,
                            dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)
