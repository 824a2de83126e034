"""Every product a segment takes part in, on the CPU in float32, has a shape that depends on that segment alone,
or a row count measured row-independent on this machine: so a segment decodes to the same bits in any batch.

What crosses items in a batch, and what is done about each (``install`` binds it to one loaded model's
module instances, never to FunASR's classes):

- Linear layers run on the rows of the whole batch (the packed encoder's frames, the decoder's
  padded tokens). Their row counts are rounded up as ``core.reproducible.probe_rows`` found on this
  machine for the model's own shapes (AMD EPYC, AVX2: a multiple of 4, because rows in a product's
  last, partial group of 4 take another kernel), zero rows appended, so a row's bits do not depend
  on the other rows. Where no rounding works, ``asr.infer`` decodes each segment on its own.
- Attention runs per item on the item's own frames and tokens (``asr.attention``, ``asr.packed``);
  the decoder's cross-attention takes each item's own token rows (``asr.attention.token_lengths``).
- Convolutions over time run per item on its own frames: the depthwise FSMN memory of the decoder
  layers here (the encoder's: ``asr.packed``), and Paraformer's whole CIF predictor, which
  ``asr.paraformer`` runs per item (measured on that AMD CPU: its dense (512 -> 512, kernel 3)
  convolution gave a 37-frame item other bits in a batch of 4 than alone, and an elementwise sigmoid
  takes a vectorised or a scalar path by an element's place in the tensor).

What is left batched is row-wise with rows of the same length alone and in a batch (layer norms,
the softmax over the vocabulary) or exact in any order (additions of two tensors, ReLU). On CUDA none
of this is installed: cuBLAS picks kernels by shape, and float32 results there agree up to rounding.
"""

from __future__ import annotations

import types

import torch
from vadpack.asr.attention import instance_forward, prefix_lengths
from vadpack.core.reproducible import RowProbe, probe_rows

DECODER_FSMN = "MultiHeadedAttentionSANMDecoder"



def linear_shapes(model: torch.nn.Module) -> list[tuple[int, int, bool]]:
    """The (inner size, outputs, with a bias) of every linear layer of ``model``: what ``probe_rows`` measures."""
    return sorted({(m.in_features, m.out_features, m.bias is not None)
                   for m in model.modules() if isinstance(m, torch.nn.Linear)})


def probe(model: torch.nn.Module) -> RowProbe:
    """``probe_rows`` for ``model``'s linear layers, on this process's thread count (cached per process)."""
    return probe_rows(linear_shapes(model), torch.get_num_threads())


def install(model: torch.nn.Module, rows: RowProbe) -> int:
    """Bind the per-item and row-rounding forwards to ``model``'s modules; returns how many were bound.

    Linear layers are rounded only when ``rows.row_independent`` (else ``asr.infer`` decodes each
    segment on its own); the per-item convolutions always.
    """
    model.vadpack_rows = rows
    count = 0
    for module in model.modules():
        name = type(module).__name__
        if isinstance(module, torch.nn.Linear) and rows.row_independent:
            module.rows = rows
            module.forward = types.MethodType(_rounded_linear, module)
            count += 1
        elif name == DECODER_FSMN and hasattr(module, "fsmn_block"):
            module.forward = types.MethodType(_decoder_fsmn, module)
            count += 1
    return count


def installed(model: torch.nn.Module) -> bool:
    """Whether ``install`` ran on ``model``."""
    return isinstance(getattr(model, "vadpack_rows", None), RowProbe)


def uninstall(model: torch.nn.Module) -> int:
    """Give ``model`` FunASR's own forwards back (``bench/batch_invariance.py``); returns how many were bound."""
    ours = [module for module in model.modules() if instance_forward(module) in (_rounded_linear, _decoder_fsmn)]
    for module in ours:
        del module.forward  # the instance attribute: the class's forward shows again
    if installed(model):
        del model.vadpack_rows
    return len(ours)


def _rounded_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``Linear.forward`` on a row count rounded as this machine's probe found (zero rows appended)."""
    rows = x.numel() // x.size(-1) if x.numel() else 0
    target = self.rows.padded_rows(rows) if rows else 0
    if target == rows:
        return torch.nn.functional.linear(x.contiguous(), self.weight, self.bias)
    flat = x.reshape(rows, x.size(-1))
    if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):  # out= has no autograd
        padded = torch.cat((flat, flat.new_zeros(target - rows, flat.size(1))))
        return torch.nn.functional.linear(padded, self.weight, self.bias)[:rows].reshape(*x.shape[:-1], -1)
    # The rows up to the last whole quantum run as they are, written straight into the output (no copy
    # of the input); only the last few rows are padded with zeros, in a product of their own.
    head = rows - rows % (self.rows.quantum or 1)
    if head < self.rows.floor:
        head = 0
    out = flat.new_empty(rows, self.out_features)
    if head:
        if self.bias is None:
            torch.mm(flat[:head], self.weight.t(), out=out[:head])
        else:
            torch.addmm(self.bias, flat[:head], self.weight.t(), out=out[:head])
    if head < rows:
        tail = flat[head:]
        padded = torch.cat((tail, tail.new_zeros(self.rows.padded_rows(rows - head) - (rows - head), tail.size(1))))
        out[head:] = torch.nn.functional.linear(padded, self.weight, self.bias)[: rows - head]
    return out.reshape(*x.shape[:-1], self.out_features)


def _decoder_fsmn(self, inputs: torch.Tensor, mask: torch.Tensor | None, cache=None, mask_shfit_chunk=None):
    """``MultiHeadedAttentionSANMDecoder.forward`` (the decoder's FSMN memory) on each item's own tokens."""
    lengths = None if mask is None else prefix_lengths(mask.reshape(mask.size(0), 1, -1), inputs.size(0))
    if lengths is None or cache is not None or mask_shfit_chunk is not None or inputs.size(0) == 1:
        return type(self).forward(self, inputs, mask, cache, mask_shfit_chunk)
    out = inputs.new_zeros(inputs.shape)
    for i, n in enumerate(lengths):
        if n:
            item = inputs[i: i + 1, :n]
            memory = self.fsmn_block(self.pad_fn(item.transpose(1, 2).contiguous())).transpose(1, 2)
            out[i, :n] = (memory + item)[0]
    return out, None
