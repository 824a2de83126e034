"""A padding-free encoder on the CPU: SAN-M encoder layers run on a batch's real frames only.

FunASR's SAN-M encoders (Paraformer's ``SANMEncoder``, SenseVoice's ``SenseVoiceEncoderSmall``) run
every layer on the padded batch (batch, longest, dim): the matrix products, layer norms and feed-forward
layers compute the padded frames too, and each layer multiplies by the padding mask twice in its FSMN
memory and by a stochastic-depth factor of 1.0 twice more. Here the frames of every item are packed
into one (frames, dim) matrix after the positional encoding, and each layer runs on that:

- layer norms, the q/k/v and output projections and the feed-forward layers on the packed rows (a
  matrix product's rows do not depend on the other rows once its row count is rounded as this
  machine's probe found, ``asr.invariant``, so each row is what the item alone gives);
- attention per item, on its own rows (``asr.attention``'s ``attend``, the same tensors and layout
  as the item alone);
- the FSMN memory, a depthwise convolution over time, per item on its own frames (with FunASR's
  padding of the item alone).

The result is FunASR's encoder output on every real frame, bit for bit, and zeros on the padded
frames (``tests/asr/test_packed.py``). What is left out is the padding's work (2.4 % of the frames of the
1 h benchmark archive's batches) and the mask passes: Paraformer-large decoded four of those batches 5 %
faster on one thread, with the same bits. On CUDA, and for encoders of another shape (streaming chunks,
intermediate CTC, subsampling front ends, ``concat_after``), FunASR's own forward runs.

Installed on the loaded model's encoder instance only (``install``), never on FunASR's class.
"""

from __future__ import annotations

import types

import torch
from vadpack.asr.attention import attend, instance_forward

PARAFORMER_ENCODER = "SANMEncoder"
SENSEVOICE_ENCODER = "SenseVoiceEncoderSmall"
LAYER = "EncoderLayerSANM"
SELF_ATTENTION = "MultiHeadedAttentionSANM"
POSITIONS = ("SinusoidalPositionEncoder",)


def install(model: torch.nn.Module) -> bool:
    """Make ``model.encoder`` padding-free if it is a SAN-M encoder of the shape handled here."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not supported(encoder):
        return False
    forward = _forward if type(encoder).__name__ == PARAFORMER_ENCODER else _forward_sensevoice
    encoder.forward = types.MethodType(forward, encoder)
    return True


def installed(model: torch.nn.Module) -> bool:
    """Whether ``install`` made ``model.encoder`` padding-free."""
    return instance_forward(getattr(model, "encoder", None)) in (_forward, _forward_sensevoice)


def uninstall(model: torch.nn.Module) -> bool:
    """Give ``model.encoder`` FunASR's own forward back; whether it had ours."""
    if not installed(model):
        return False
    del model.encoder.forward
    return True


def supported(encoder: torch.nn.Module) -> bool:
    """A SAN-M encoder with pre-norm layers, a sinusoidal position encoding and no intermediate CTC."""
    name = type(encoder).__name__
    if name == PARAFORMER_ENCODER and not list(encoder.interctc_layer_idx):
        layers = [*encoder.encoders0, *encoder.encoders]
    elif name == SENSEVOICE_ENCODER:
        layers = [*encoder.encoders0, *encoder.encoders, *encoder.tp_encoders]
    else:
        return False
    if not getattr(encoder, "normalize_before", False) or type(encoder.embed).__name__ not in POSITIONS:
        return False
    return bool(layers) and all(_layer_supported(layer) for layer in layers)


def _layer_supported(layer: torch.nn.Module) -> bool:
    attention = getattr(layer, "self_attn", None)
    return (type(layer).__name__ == LAYER and layer.normalize_before and not layer.concat_after
            and type(attention).__name__ == SELF_ATTENTION and hasattr(attention, "forward_fsmn")
            and attention.fsmn_block.bias is None)


def _forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states=None, ctc=None) -> tuple:
    """``SANMEncoder.forward`` on the real frames: (output, lengths, None) as FunASR returns them."""
    keep, lengths, x = _packed_input(self, xs_pad, ilens)
    x = self.after_norm(_layers((*self.encoders0, *self.encoders), x, lengths.tolist()))
    return _unpacked(x, keep), lengths, None


def _forward_sensevoice(self, xs_pad: torch.Tensor, ilens: torch.Tensor) -> tuple:
    """``SenseVoiceEncoderSmall.forward`` on the real frames: (output, int32 lengths) as FunASR returns them."""
    keep, lengths, x = _packed_input(self, xs_pad, ilens)
    items = lengths.tolist()
    x = self.after_norm(_layers((*self.encoders0, *self.encoders), x, items))
    x = self.tp_norm(_layers(self.tp_encoders, x, items))
    return _unpacked(x, keep), lengths.int()


def _packed_input(self, xs_pad: torch.Tensor, ilens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The real-frame mask (batch, time), its frame count per item, and the scaled, position-encoded
    frames packed (real frames, dim)."""
    steps = torch.arange(xs_pad.size(1), device=xs_pad.device)
    keep = steps[None, :] < ilens.to(xs_pad.device)[:, None]
    return keep, keep.sum(dim=1), self.embed(xs_pad * self.output_size() ** 0.5)[keep]


def _layers(layers, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    for layer in layers:
        x = _layer(layer, x, lengths)
    return x


def _unpacked(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(real frames, dim) -> (batch, time, dim), zeros on the padded frames."""
    out = x.new_zeros(*keep.shape, x.size(-1))
    out[keep] = x
    return out


def _layer(layer: torch.nn.Module, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """``EncoderLayerSANM.forward`` in inference (pre-norm, dropout off, stochastic depth 1.0) on packed rows."""
    attention = _self_attention(layer.self_attn, layer.norm1(x), lengths)
    x = x + attention if layer.in_size == layer.size else attention
    return x + layer.feed_forward(layer.norm2(x))


def _self_attention(self, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """``MultiHeadedAttentionSANM.forward`` on packed rows: attention per item plus the FSMN memory."""
    width = self.h * self.d_k
    q, k, v = torch.split(self.linear_q_k_v(x), width, dim=-1)
    memory = _fsmn(self, v, lengths)
    out = x.new_empty(x.size(0), width)
    scale = self.d_k ** (-0.5)
    start = 0
    for n in lengths:
        if n:
            rows = slice(start, start + n)
            out[rows] = attend(_heads(self, q[rows]) * scale, _heads(self, k[rows]), _heads(self, v[rows]))
        start += n
    return self.linear_out(out) + memory


def _heads(self, rows: torch.Tensor) -> torch.Tensor:
    """(time, heads * d_k) -> (1, heads, time, d_k), the layout FunASR's ``forward_qkv`` gives one item."""
    return rows.reshape(1, rows.size(0), self.h, self.d_k).transpose(1, 2)


def _fsmn(self, v: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """``forward_fsmn`` on packed rows: the depthwise convolution over time runs on each item's own frames,
    padded as FunASR pads the item alone, so its shape depends on the item only."""
    memory = []
    start = 0
    for n in lengths:
        item = v[start: start + n].t()[None].contiguous()  # (1, dim, frames), as FunASR lays out one item
        memory.append(self.fsmn_block(self.pad_fn(item))[0].t())
        start += n
    return torch.cat(memory) + v
