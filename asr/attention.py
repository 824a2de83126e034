"""Exact attention: on the CPU, each item of a batch attends over its own frames only.

FunASR's SAN-M attention (the self-attention of Paraformer's and SenseVoice's encoders, and the
cross-attention of Paraformer's decoder) runs on the padded batch: scores over all frames, padded
keys set to -inf, a softmax, then the weighted sum over all frames. The padded keys add exact zeros,
but the softmax and the weighted sum then reduce over the batch's longest length instead of the
item's own, and float32 reductions of another length round differently: with padding in its batch, a
0.7 s item's encoder output moved by 6e-7 (tiny model, tests/asr/test_attention.py), and at a near tie
such a difference flips a token (bench/batch_invariance.py: on a 1 h archive, random Paraformer-large,
2 of 362 segments decoded otherwise in their batch than alone, 1 with per-item attention).

Here attention runs per item on ``[:length]`` of the batch's projections, which are the very tensors,
in the same layout, that the item has alone (the cross-attention's queries cut to the item's own
tokens, ``token_lengths``); the projections before and after stay batched (a matrix product's rows
do not depend on the other rows once its row count is rounded as this machine's probe found,
``asr.invariant``). With both, a segment's result on the CPU is bit-identical in any batch:
``tests/asr/test_attention.py``, ``tests/asr/test_batch_invariance.py``. It is also less work: the padded
part of each score matrix is never computed (3-7 % off the model time of a 1 h archive's batches, Paraformer-large).

On CUDA the loop would turn one kernel per layer into one per item, and cuBLAS picks kernels by
shape anyway, so attention there stays FunASR's, batched (results equal up to rounding).

The replacement is bound to the model's own module instances (``install``), never to FunASR's
classes, so other models in the process are untouched. Paraformer's and SenseVoice's encoders go further on
the CPU: ``asr.packed`` runs their layers on the real frames only and calls ``attend`` per item itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Iterator, Sequence

import torch

# FunASR class names: the SAN-M self-attention (sanm.attention and sense_voice.model both define one
# with this name and signature) and the decoder's cross-attention.
SELF_ATTENTION = "MultiHeadedAttentionSANM"
CROSS_ATTENTION = "MultiHeadedAttentionCrossAtt"

_token_lengths: contextvars.ContextVar[tuple[int, ...] | None] = contextvars.ContextVar("token_lengths", default=None)


@contextlib.contextmanager
def token_lengths(lengths: torch.Tensor | Sequence[int]) -> Iterator[None]:
    """Tell the cross-attention each item's token count while the decoder runs, so that an item's query rows
    are its own tokens only (alone it has no padded token rows, and a product's row count changes its bits)."""
    token = _token_lengths.set(tuple(int(n) for n in lengths))
    try:
        yield
    finally:
        _token_lengths.reset(token)


def install(model: torch.nn.Module) -> int:
    """Make every SAN-M self- and cross-attention module of ``model`` attend per item; returns how many."""
    count = 0
    for module in model.modules():
        name = type(module).__name__
        if name == SELF_ATTENTION and hasattr(module, "forward_fsmn"):
            module.forward = types.MethodType(_self_attention, module)
            count += 1
        elif name == CROSS_ATTENTION:
            module.forward = types.MethodType(_cross_attention, module)
            count += 1
    return count


def uninstall(model: torch.nn.Module) -> int:
    """Give ``model``'s attention modules FunASR's own batched forward back (bench/batch_invariance.py)."""
    ours = [module for module in model.modules() if _per_item(module)]
    for module in ours:
        del module.forward  # the instance attribute: the class's forward shows again
    return len(ours)


def installed(model: torch.nn.Module) -> bool:
    """Whether ``install`` made ``model``'s attention per item."""
    return any(_per_item(module) for module in model.modules())


def _per_item(module: torch.nn.Module) -> bool:
    return instance_forward(module) in (_self_attention, _cross_attention)


def instance_forward(module: object):
    """The function bound as ``forward`` on ``module`` itself (by an ``install``), or None."""
    return getattr(getattr(module, "__dict__", {}).get("forward"), "__func__", None)


def prefix_lengths(mask: torch.Tensor | None, batch: int) -> list[int] | None:
    """Each item's length when ``mask`` (batch, 1, time) keeps a prefix of every row, else None."""
    if mask is None or mask.dim() != 3 or mask.size(0) != batch or mask.size(1) != 1:
        return None
    keep = mask[:, 0, :] != 0
    lengths = keep.sum(dim=-1)
    steps = torch.arange(keep.size(1), device=keep.device)
    if not torch.equal(keep, steps[None, :] < lengths[:, None]):
        return None
    return lengths.tolist()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One item's attention, (1, heads, time1, d_k) -> (time1, heads * d_k), as FunASR computes it alone.

    Alone, FunASR's mask keeps every key, so its masked fills change nothing and are left out.
    """
    scores = torch.matmul(q, k.transpose(-2, -1))
    x = torch.matmul(torch.softmax(scores, dim=-1), v)
    return x.transpose(1, 2).contiguous().view(-1, x.size(1) * x.size(3))


def _self_attention(self, x: torch.Tensor, mask: torch.Tensor | None, mask_shfit_chunk=None,
                    mask_att_chunk_encoder=None) -> torch.Tensor:
    lengths = prefix_lengths(mask, x.size(0))
    if lengths is None or mask_att_chunk_encoder is not None:  # streaming chunks: FunASR's own path
        return type(self).forward(self, x, mask, mask_shfit_chunk, mask_att_chunk_encoder)
    q_h, k_h, v_h, v = self.forward_qkv(x)
    fsmn_memory = self.forward_fsmn(v, mask, mask_shfit_chunk)
    scale = self.d_k ** (-0.5)
    out = x.new_zeros(x.size(0), x.size(1), self.h * self.d_k)  # padded frames: 0, masked downstream
    for i, n in enumerate(lengths):
        if n:
            out[i, :n] = attend(q_h[i: i + 1, :, :n] * scale, k_h[i: i + 1, :, :n], v_h[i: i + 1, :, :n])
    return self.linear_out(out) + fsmn_memory


def _cross_attention(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None,
                     ret_attn: bool = False) -> torch.Tensor:
    lengths = prefix_lengths(memory_mask, x.size(0))
    if lengths is None or ret_attn or 0 in lengths:  # FunASR's own path when it must return the weights
        return type(self).forward(self, x, memory, memory_mask, ret_attn)
    q_h, k_h, v_h = self.forward_qkv(x, memory)
    q_h = q_h * self.d_k ** (-0.5)
    tokens = _token_lengths.get()
    if tokens is None or len(tokens) != x.size(0):
        tokens = (x.size(1),) * x.size(0)  # every token row of each item: a row does not see the others
    out = x.new_zeros(x.size(0), x.size(1), self.h * self.d_k)  # padded token rows: 0, never read
    for i, (n, t) in enumerate(zip(lengths, tokens)):
        if t:
            out[i, :t] = attend(q_h[i: i + 1, :, :t], k_h[i: i + 1, :, :n], v_h[i: i + 1, :, :n])
    return self.linear_out(out)
