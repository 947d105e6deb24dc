"""SetSegNet: a small multi-view segmentation network.

Every view goes through the same depthwise-separable U-Net encoder. At the
coarsest scale (S/16) the views exchange information by attention over the
tokens of all present views, and an optional category hint is added to every
token. With `prior=True` a product prior follows the attention (ProductPrior):
a coarse product map per view, and for every cell how closely it matches the
likely product cells of the other views. A U-Net decoder then predicts each
view's product probability; with `fine_prior=True` it repeats the matching at
S/8 (FinePrior).
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
        batch, views, _, _ = fused.shape
        coarse = self.coarse(fused).squeeze(-1)
        score = torch.sigmoid(coarse)
        features = F.normalize(self.match(encoded), dim=-1)
        maps = match_maps(features, score, valid, features, score).reshape(batch * views, 3, grid[0], grid[1])
        return self.encode(maps), coarse


def match_maps(
    features: torch.Tensor, score: torch.Tensor, valid: torch.Tensor, keys: torch.Tensor, key_score: torch.Tensor
) -> torch.Tensor:
    """Stack each cell's product score with its two match maps.

    Args:
        features: (B, V, N, D) float32 unit-length cell features, N = cells per view.
        score: (B, V, N) float32 product score of every cell, 0-1.
        valid: (B, V) float32, 1 on present views.
        keys: (B, V, K, D) float32 unit-length features of the cells to match
            against (the same cells as features, or a coarser grid of them).
        key_score: (B, V, K) float32 product score of those cells, 0-1.
    Returns:
        (B, V, 3, N) float32 maps. Map 0 is the score. Map 1 is the cosine
        similarity to the set's prototype, the feature mean weighted by score on
        present views (-1 to 1). Map 2 is the largest similarity to a key cell of
        another present view, times that cell's score (0 to 1). It is never below 0,
        because the zeroed cells of the view itself count in the maximum.
    """
    batch, views, cells, _ = features.shape
    weight = score * valid.unsqueeze(-1)
    prototype = (features * weight.unsqueeze(-1)).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp(min=1e-3).unsqueeze(-1)
    to_prototype = (features * F.normalize(prototype, dim=-1)[:, None, None, :]).sum(-1)

    key_count = keys.shape[2]
    key_weight = key_score * valid.unsqueeze(-1)
    similarity = torch.matmul(features.reshape(batch, views * cells, -1), keys.reshape(batch, views * key_count, -1).transpose(1, 2))
    similarity = similarity.reshape(batch, views, cells, views, key_count)
    other_view = 1.0 - torch.eye(views, dtype=features.dtype, device=features.device).reshape(1, views, 1, views, 1)
    to_other_views = (similarity * key_weight.reshape(batch, 1, 1, views, key_count) * other_view).amax(dim=(3, 4))
    return torch.stack([score, to_prototype, to_other_views], dim=2)


class FinePrior(nn.Module):
    """Product map and cross-view match maps at 1/8 scale, inside the decoder.

    The coarse prior's cells are S/16 wide, so a thin garment (a strap, a
    trouser leg seen from the side) rarely fills one. This prior repeats the
    matching at S/8. A 1x1 convolution scores every cell of the decoder's S/8
    features as product or not. The encoder's S/8 features give the cells'
    match features. match_maps then compares every cell with the cells of the
    other views, pooled to S/16 by product score. As in
    ProductPrior, the last convolution starts at zero, so a network trained
    without this prior starts out unchanged.

    Args:
        encoder_channels: channels of the encoder's S/8 features.
        decoder_channels: channels of the decoder's S/8 features; also the output channels.
        match_dim: length of the match features.
    """

    def __init__(self, encoder_channels: int, decoder_channels: int, match_dim: int = 16) -> None:
        super().__init__()
        self.coarse = nn.Conv2d(decoder_channels, 1, 1)
        self.match = nn.Conv2d(encoder_channels, match_dim, 1)
        self.encode = nn.Sequential(ConvBnRelu(3, 16, 3), nn.Conv2d(16, decoder_channels, 1))
        nn.init.zeros_(self.encode[1].weight)
        nn.init.zeros_(self.encode[1].bias)

    def forward(self, decoded: torch.Tensor, encoded: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the prior.

        Args:
            decoded: (B x V, decoder_channels, h, w) float32 decoder features at S/8.
            encoded: (B x V, encoder_channels, h, w) float32 encoder features at S/8.
            valid: (B, V) float32, 1 on present views.
        Returns:
            (B x V, decoder_channels, h, w) float32 to add to the decoder features,
            and (B, V, h, w) float32 product logits per cell.
        """
        batch, views = valid.shape
        height, width = decoded.shape[-2:]
        coarse = self.coarse(decoded)
        score = torch.sigmoid(coarse)
        features = F.normalize(self.match(encoded), dim=1)
        # Keys on a 2x coarser grid: each is the score-weighted mean of 2x2 cells. Matching every
        # S/8 cell with every other S/8 cell doubled the network's time.
        key_score = F.avg_pool2d(score, 2)
        keys = F.normalize(F.avg_pool2d(features * score, 2) / key_score.clamp(min=1e-3), dim=1)
        maps = match_maps(
            as_cells(features, batch, views), as_cells(score, batch, views)[..., 0], valid,
            as_cells(keys, batch, views), as_cells(key_score, batch, views)[..., 0],
        )
        return self.encode(maps.reshape(batch * views, 3, height, width)), coarse.reshape(batch, views, height, width)


def as_cells(maps: torch.Tensor, batch: int, views: int) -> torch.Tensor:
    """Turn (B x V, C, h, w) float32 maps into (B, V, h x w, C) cell vectors."""
    channels = maps.shape[1]
    return maps.reshape(batch, views, channels, -1).transpose(2, 3)


class SetSegNet(nn.Module):
    """Segment the product in each view of a set of up to 4 photos.

    Args:
        width: channel multiplier; channels per scale are width x (1, 1.5, 3, 5, 8).
        prior: add the ProductPrior after the cross-view attention.
        fine_prior: add the FinePrior to the decoder at S/8.
    """

    def __init__(self, width: int = 16, prior: bool = False, fine_prior: bool = False) -> None:
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
        self.fine_prior = FinePrior(c3, c3) if fine_prior else None
        self.up2 = nn.Sequential(ConvBnRelu(c3 + c2, c2, 1), SeparableBlock(c2, c2))
        self.up1 = nn.Sequential(ConvBnRelu(c2 + c1, c1, 1), SeparableBlock(c1, c1))
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(
        self, images: torch.Tensor, valid: torch.Tensor, category: torch.Tensor, *, with_coarse: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Predict product logits.

        Args:
            images: (B, V, 3, S, S) float32, RGB scaled to [-1, 1]; S divisible by 16.
            valid: (B, V) float32, 1 on present views and 0 on padding views.
            category: (B,) int64 category id, 0 for no hint.
            with_coarse: also return the priors' product logits per cell (training only).
        Returns:
            (B, V, S, S) float32 logits; with with_coarse, also a list of the priors'
            (B, V, h, w) float32 logits per cell: (S/16, S/16) for ProductPrior,
            (S/8, S/8) for FinePrior, empty when the network has neither.
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
        coarse_maps = []
        if self.prior is not None:
            grid = (s16.shape[2], s16.shape[3])
            prior, coarse = self.prior(tokens.reshape(batch, views, cells, channels), encoded, valid, grid)
            y = y + prior
            coarse_maps.append(coarse.reshape(batch, views, grid[0], grid[1]))
        y = self.up3(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s8], 1))
        if self.fine_prior is not None:
            fine, coarse = self.fine_prior(y, s8, valid)
            y = y + fine
            coarse_maps.append(coarse)
        y = self.up2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s4], 1))
        y = self.up1(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s2], 1))
        logits = F.interpolate(self.head(y), scale_factor=2.0, mode="bilinear", align_corners=False)
        logits = logits.reshape(batch, views, size, size)
        return (logits, coarse_maps) if with_coarse else logits


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
