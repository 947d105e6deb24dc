"""SetSegNet: a small multi-view segmentation network.

Every view goes through the same depthwise-separable U-Net encoder. At the
coarsest scale (S/16) the views exchange information by attention over the
tokens of all present views, and an optional category hint is added to every
token. With `prior=True` a product prior follows the attention (ProductPrior):
a coarse product map per view, and for every cell how closely it matches the
likely product cells of the other views. A U-Net decoder then predicts each
view's product probability.
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


class ProductPrior(nn.Module):
    """Coarse product map and cross-view match maps at the token scale.

    A linear head scores every fused token as product or not. Every view's
    encoder features (before fusion) are projected and unit-normalized; the
    product cells, weighted by that score, give a set prototype. Each cell
    gets two match maps. The first is its cosine similarity to the prototype.
    The second is the largest of its cosine similarities to the cells of the
    other present views, each times that cell's product score: this is how a
    cell of an on-model photo finds the packshot's garment. The coarse map and
    the two match maps feed a small convolution whose last layer starts at
    zero, so a network trained without the prior starts out unchanged.
    """

    def __init__(self, channels: int, out_channels: int, match_dim: int = 32) -> None:
        super().__init__()
        self.coarse = nn.Linear(channels, 1)
        self.match = nn.Linear(channels, match_dim)
        self.encode = nn.Sequential(ConvBnRelu(3, 16, 3), nn.Conv2d(16, out_channels, 1))
        nn.init.zeros_(self.encode[1].weight)
        nn.init.zeros_(self.encode[1].bias)

    def forward(
        self, fused: torch.Tensor, encoded: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the prior.

        Args:
            fused: (B, V, N, C) float32 tokens after cross-view attention, N = cells per view.
            encoded: (B, V, N, C) float32 tokens before it.
            valid: (B, V) float32, 1 on present views.
            grid: (h, w) of the token grid, h x w = N.
        Returns:
            (B x V, out_channels, h, w) float32 to add to the decoder's input,
            and (B, V, N) float32 coarse product logits.
        """
        batch, views, cells, _ = fused.shape
        coarse = self.coarse(fused).squeeze(-1)
        score = torch.sigmoid(coarse)
        weight = score * valid.unsqueeze(-1)
        features = F.normalize(self.match(encoded), dim=-1)
        prototype = (features * weight.unsqueeze(-1)).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp(min=1e-3).unsqueeze(-1)
        to_prototype = (features * F.normalize(prototype, dim=-1)[:, None, None, :]).sum(-1)

        flat = features.reshape(batch, views * cells, -1)
        similarity = torch.matmul(flat, flat.transpose(1, 2)).reshape(batch, views, cells, views, cells)
        other_view = 1.0 - torch.eye(views, dtype=fused.dtype, device=fused.device).reshape(1, views, 1, views, 1)
        to_other_views = (similarity * weight.reshape(batch, 1, 1, views, cells) * other_view).amax(dim=(3, 4))

        maps = torch.stack([score, to_prototype, to_other_views], dim=2)
        maps = maps.reshape(batch * views, 3, grid[0], grid[1])
        return self.encode(maps), coarse


class SetSegNet(nn.Module):
    """Segment the product in each view of a set of up to 4 photos.

    Args:
        width: channel multiplier; channels per scale are width x (1, 1.5, 3, 5, 8).
        prior: add the ProductPrior after the cross-view attention.
    """

    def __init__(self, width: int = 16, prior: bool = False) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (width, int(width * 1.5), width * 3, width * 5, width * 8)
        self.stem = ConvBnRelu(3, c1, 3, 2)  # S/2
        self.down2 = nn.Sequential(SeparableBlock(c1, c2, 2), SeparableBlock(c2, c2))  # S/4
        self.down3 = nn.Sequential(SeparableBlock(c2, c3, 2), SeparableBlock(c3, c3))  # S/8
        self.down4 = nn.Sequential(SeparableBlock(c3, c4, 2), SeparableBlock(c4, c4), SeparableBlock(c4, c4))  # S/16
        self.to_tokens = nn.Conv2d(c4, c5, 1)
        self.category = nn.Embedding(CATEGORY_COUNT, c5)
        self.fusion = nn.ModuleList([CrossViewAttention(c5), CrossViewAttention(c5)])
        self.prior = ProductPrior(c5, c4) if prior else None
        self.from_tokens = ConvBnRelu(c5, c4, 1)
        self.up3 = nn.Sequential(ConvBnRelu(c4 + c3, c3, 1), SeparableBlock(c3, c3))
        self.up2 = nn.Sequential(ConvBnRelu(c3 + c2, c2, 1), SeparableBlock(c2, c2))
        self.up1 = nn.Sequential(ConvBnRelu(c2 + c1, c1, 1), SeparableBlock(c1, c1))
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(
        self, images: torch.Tensor, valid: torch.Tensor, category: torch.Tensor, *, with_coarse: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict product logits.

        Args:
            images: (B, V, 3, S, S) float32, RGB scaled to [-1, 1]; S divisible by 16.
            valid: (B, V) float32, 1 on present views and 0 on padding views.
            category: (B,) int64 category id, 0 for no hint.
            with_coarse: also return the prior's coarse logits (training only).
        Returns:
            (B, V, S, S) float32 logits; with with_coarse, also (B, V, S/16, S/16)
            float32 coarse logits, or None when the network has no prior.
        """
        batch, views, _, size, _ = images.shape
        x = images.reshape(batch * views, 3, size, size)
        s2 = self.stem(x)
        s4 = self.down2(s2)
        s8 = self.down3(s4)
        s16 = self.to_tokens(self.down4(s8))
        channels, cells = s16.shape[1], s16.shape[2] * s16.shape[3]

        encoded = s16.reshape(batch, views, channels, cells).permute(0, 1, 3, 2)
        tokens = encoded.reshape(batch, views * cells, channels) + self.category(category).unsqueeze(1)
        key_bias = ((valid - 1.0) * 1e4).unsqueeze(-1).expand(batch, views, cells).reshape(batch, 1, 1, views * cells)
        for block in self.fusion:
            tokens = block(tokens, key_bias)
        fused = (
            tokens.reshape(batch, views, cells, channels).permute(0, 1, 3, 2).reshape(batch * views, channels, s16.shape[2], s16.shape[3])
        )

        y = self.from_tokens(fused)
        coarse = None
        if self.prior is not None:
            grid = (s16.shape[2], s16.shape[3])
            prior, coarse = self.prior(tokens.reshape(batch, views, cells, channels), encoded, valid, grid)
            y = y + prior
            coarse = coarse.reshape(batch, views, grid[0], grid[1])
        y = self.up3(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s8], 1))
        y = self.up2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s4], 1))
        y = self.up1(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s2], 1))
        logits = F.interpolate(self.head(y), scale_factor=2.0, mode="bilinear", align_corners=False)
        logits = logits.reshape(batch, views, size, size)
        return (logits, coarse) if with_coarse else logits


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
        if not self.flip_average:
            return torch.sigmoid(self.net(images, valid, category))
        # One pass over a doubled batch, so every weight feeds a single node. Exported as two
        # passes over the same weights, the model lost 0.23 IoU in onnxruntime's quantizer.
        batch = images.shape[0]
        probs = torch.sigmoid(self.net(torch.cat([images, images.flip(-1)]), torch.cat([valid, valid]), torch.cat([category, category])))
        return (probs[:batch] + probs[batch:].flip(-1)) / 2
