"""SetSegNet: a small multi-view segmentation network.

Every view goes through the same depthwise-separable U-Net encoder. At the
coarsest scale (S/16) the views exchange information by attention over the
tokens of all present views, and an optional category hint is added to every
token. A U-Net decoder then predicts each view's product probability.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CATEGORY_COUNT = 8
"""Entries of the category embedding: id 0 means no hint, ids 1-7 the vocabulary."""


class ConvBnRelu(nn.Sequential):
    """Convolution, batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, with a residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBnRelu(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = ConvBnRelu(in_channels, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return out + x if self.residual else out


class CrossViewAttention(nn.Module):
    """Multi-head attention from every token of every view to all tokens of the present views."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.project = nn.Linear(channels, channels)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(channels), nn.Linear(channels, 2 * channels), nn.ReLU(), nn.Linear(2 * channels, channels)
        )

    def forward(self, tokens: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """Mix tokens across views.

        Args:
            tokens: (B, T, C) float32, T = views x cells.
            key_bias: (B, 1, 1, T) float32, 0 on present views and -1e4 on missing ones.
        Returns:
            (B, T, C) float32.
        """
        batch, count, channels = tokens.shape
        head_dim = channels // self.heads
        qkv = self.qkv(self.norm(tokens)).reshape(batch, count, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * head_dim**-0.5 + key_bias, dim=-1)
        mixed = torch.matmul(weights, value).permute(0, 2, 1, 3).reshape(batch, count, channels)
        tokens = tokens + self.project(mixed)
        return tokens + self.feed_forward(tokens)


class SetSegNet(nn.Module):
    """Segment the product in each view of a set of up to 4 photos.

    Args:
        width: channel multiplier; channels per scale are width x (1, 1.5, 3, 5, 8).
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (width, int(width * 1.5), width * 3, width * 5, width * 8)
        self.stem = ConvBnRelu(3, c1, 3, 2)  # S/2
        self.down2 = nn.Sequential(SeparableBlock(c1, c2, 2), SeparableBlock(c2, c2))  # S/4
        self.down3 = nn.Sequential(SeparableBlock(c2, c3, 2), SeparableBlock(c3, c3))  # S/8
        self.down4 = nn.Sequential(SeparableBlock(c3, c4, 2), SeparableBlock(c4, c4), SeparableBlock(c4, c4))  # S/16
        self.to_tokens = nn.Conv2d(c4, c5, 1)
        self.category = nn.Embedding(CATEGORY_COUNT, c5)
        self.fusion = nn.ModuleList([CrossViewAttention(c5), CrossViewAttention(c5)])
        self.from_tokens = ConvBnRelu(c5, c4, 1)
        self.up3 = nn.Sequential(ConvBnRelu(c4 + c3, c3, 1), SeparableBlock(c3, c3))
        self.up2 = nn.Sequential(ConvBnRelu(c3 + c2, c2, 1), SeparableBlock(c2, c2))
        self.up1 = nn.Sequential(ConvBnRelu(c2 + c1, c1, 1), SeparableBlock(c1, c1))
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(self, images: torch.Tensor, valid: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Predict product logits.

        Args:
            images: (B, V, 3, S, S) float32, RGB scaled to [-1, 1]; S divisible by 16.
            valid: (B, V) float32, 1 on present views and 0 on padding views.
            category: (B,) int64 category id, 0 for no hint.
        Returns:
            (B, V, S, S) float32 logits.
        """
        batch, views, _, size, _ = images.shape
        x = images.reshape(batch * views, 3, size, size)
        s2 = self.stem(x)
        s4 = self.down2(s2)
        s8 = self.down3(s4)
        s16 = self.to_tokens(self.down4(s8))
        channels, cells = s16.shape[1], s16.shape[2] * s16.shape[3]

        tokens = s16.reshape(batch, views, channels, cells).permute(0, 1, 3, 2).reshape(batch, views * cells, channels)
        tokens = tokens + self.category(category).unsqueeze(1)
        key_bias = ((valid - 1.0) * 1e4).unsqueeze(-1).expand(batch, views, cells).reshape(batch, 1, 1, views * cells)
        for block in self.fusion:
            tokens = block(tokens, key_bias)
        fused = (
            tokens.reshape(batch, views, cells, channels).permute(0, 1, 3, 2).reshape(batch * views, channels, s16.shape[2], s16.shape[3])
        )

        y = self.from_tokens(fused)
        y = self.up3(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s8], 1))
        y = self.up2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s4], 1))
        y = self.up1(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s2], 1))
        logits = F.interpolate(self.head(y), scale_factor=2.0, mode="bilinear", align_corners=False)
        return logits.reshape(batch, views, size, size)


class ProbabilityModel(nn.Module):
    """SetSegNet with a sigmoid, the graph that is exported to ONNX.

    Args:
        net: the trained network.
        flip_average: also run the views mirrored left to right and average the two
            probability maps (test-time augmentation; twice the inference time).
    """

    def __init__(self, net: SetSegNet, *, flip_average: bool = False) -> None:
        super().__init__()
        self.net = net
        self.flip_average = flip_average

    def forward(self, images: torch.Tensor, valid: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Return (B, V, S, S) float32 probabilities in [0, 1] for the inputs of SetSegNet.forward."""
        probs = torch.sigmoid(self.net(images, valid, category))
        if not self.flip_average:
            return probs
        mirrored = torch.sigmoid(self.net(images.flip(-1), valid, category)).flip(-1)
        return (probs + mirrored) / 2
