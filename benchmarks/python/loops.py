#!/usr/bin/python3
"""The seed's inversion loop in PyTorch eager, written as its author wrote it: a plain loop that
detaches the input, runs the slice, takes the summed metric, backpropagates and steps.

Same shapes, seeds and step counts as the C++ suites in benchmarks/bench_invert.cpp; prints one JSON
line per case: {"case": ..., "steps_per_second": [...repeats...]}.

    /usr/bin/python3 benchmarks/python/loops.py --case gpt2-768-b1-t5 --steps 50 --repeats 5
    python3 benchmarks/python/loops.py --case gpt2-768-b1-t5 --device cuda --dtype bf16

Weights and inputs are drawn in f32 on the CPU (the same numbers as on the CPU), then moved to
--device in --dtype. On CUDA every step ends with torch.cuda.synchronize(), as bench_invert's do.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def normal(shape, std, gen):
    return torch.randn(shape, generator=gen) * std


class GPT2Block:
    """Pre-LN GPT-2 block with HF's Conv1D layout (y = x W + b) and the tanh GELU."""

    def __init__(self, d, heads, gen):
        self.d, self.h = d, heads
        self.ln1 = (torch.ones(d), torch.zeros(d))
        self.attn_w, self.attn_b = normal((d, 3 * d), 0.02, gen), torch.zeros(3 * d)
        self.proj_w, self.proj_b = normal((d, d), 0.02, gen), torch.zeros(d)
        self.ln2 = (torch.ones(d), torch.zeros(d))
        self.fc_w, self.fc_b = normal((d, 4 * d), 0.02, gen), torch.zeros(4 * d)
        self.out_w, self.out_b = normal((4 * d, d), 0.02, gen), torch.zeros(d)

    def __call__(self, x):
        B, T, D = x.shape
        hd = D // self.h
        h = F.layer_norm(x, (D,), *self.ln1, 1e-5)
        q, k, v = (h @ self.attn_w + self.attn_b).split(D, dim=2)
        q, k, v = (t.view(B, T, self.h, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + (y @ self.proj_w + self.proj_b)
        h = F.layer_norm(x, (D,), *self.ln2, 1e-5)
        return x + (F.gelu(h @ self.fc_w + self.fc_b, approximate="tanh") @ self.out_w + self.out_b)


class LlamaBlock:
    """Llama block: RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU MLP."""

    def __init__(self, d, heads, kv_heads, hidden, gen):
        self.d, self.h, self.kv = d, heads, kv_heads
        hd = d // heads
        self.hd = hd
        self.in_norm, self.post_norm = torch.ones(d), torch.ones(d)
        self.wq = normal((heads * hd, d), 0.02, gen)
        self.wk = normal((kv_heads * hd, d), 0.02, gen)
        self.wv = normal((kv_heads * hd, d), 0.02, gen)
        self.wo = normal((d, heads * hd), 0.02, gen)
        self.gate = normal((hidden, d), 0.02, gen)
        self.up = normal((hidden, d), 0.02, gen)
        self.down = normal((d, hidden), 0.02, gen)

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x, T):
        inv = 10000.0 ** (-torch.arange(0, self.hd, 2, device=x.device).float() / self.hd)
        ang = torch.outer(torch.arange(T, device=x.device).float(), inv)
        cos, sin = torch.cat([ang, ang], -1).cos().to(x.dtype), torch.cat([ang, ang], -1).sin().to(x.dtype)
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def __call__(self, x):
        B, T, D = x.shape
        h = self.rms(x, self.in_norm)
        q = F.linear(h, self.wq).view(B, T, self.h, self.hd).transpose(1, 2)
        k = F.linear(h, self.wk).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = F.linear(h, self.wv).view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = self.rope(q, T), self.rope(k, T)
        g = self.h // self.kv
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(y, self.wo)
        h = self.rms(x, self.post_norm)
        return x + F.linear(F.silu(F.linear(h, self.gate)) * F.linear(h, self.up), self.down)


def metric(name, out, target):
    diff = out - target
    if name == "l1":
        return diff.abs().sum()
    if name == "l2":
        return diff.pow(2).sum().sqrt()
    o, t = out.flatten(), target.flatten()
    cos = 1 - (o @ t).abs() / (o.norm() * t.norm())
    if name == "cosine":
        return cos
    if name == "combined":
        return cos + diff.abs().sum()
    raise ValueError(name)


def place(blocks, device, dtype):
    """Moves every weight of every block (tensors and tuples of tensors) to device and dtype."""
    for b in blocks:
        for name, value in vars(b).items():
            if isinstance(value, torch.Tensor):
                setattr(b, name, value.to(device, dtype))
            elif isinstance(value, tuple) and all(isinstance(t, torch.Tensor) for t in value):
                setattr(b, name, tuple(t.to(device, dtype) for t in value))


def build(case, device="cpu", dtype=torch.float32):
    """Case names: FAMILY-D-bBATCH-tTOKENS[-nBLOCKS][-METRIC], as in bench_invert.cpp."""
    parts = case.split("-")
    family, d = parts[0], int(parts[1])
    batch, tokens, layers, metric_name = 1, 5, 1, "l1"
    for p in parts[2:]:
        if p[0] == "b" and p[1:].isdigit():
            batch = int(p[1:])
        elif p[0] == "t" and p[1:].isdigit():
            tokens = int(p[1:])
        elif p[0] == "n" and p[1:].isdigit():
            layers = int(p[1:])
        else:
            metric_name = p
    gen = torch.Generator().manual_seed(0)
    if family == "gpt2":
        blocks = [GPT2Block(d, max(1, d // 64), gen) for _ in range(layers)]
    elif family == "llama":  # stories260K's shape at d = 64
        blocks = [LlamaBlock(d, 8, 4, 172 if d == 64 else 4 * d, gen) for _ in range(layers)]
    else:
        raise ValueError(family)
    target_in = normal((batch, tokens, d), 0.02, gen).to(device, dtype)
    place(blocks, device, dtype)
    return blocks, target_in, metric_name


def run(built, steps):
    """Steps per second of `steps` inversion steps on a model from build() (built once per case:
    only the loop is timed, and it never changes the model)."""
    blocks, target_in, metric_name = built
    device, dtype = target_in.device, target_in.dtype
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def model(x):
        for b in blocks:
            x = b(x)
        return x

    with torch.no_grad():
        target = model(target_in)
    gen = torch.Generator().manual_seed(1)
    x = normal(target_in.shape, 0.02, gen).to(device, dtype)
    lr_start, lr_end = 0.01, 0.0001
    sync()
    start = time.perf_counter()
    for i in range(steps):
        x = x.detach().requires_grad_(True)
        loss = metric(metric_name, model(x), target)
        loss.backward()
        lr = lr_start * (steps - i) / steps + lr_end * i / steps
        x = x.detach() - lr * x.grad
        sync()
    return steps / (time.perf_counter() - start)


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", required=True)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--dtype", default="f32", choices=sorted(DTYPES), help="f32 (default), bf16 or f16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA device")
    dtype = DTYPES[args.dtype]
    for case in args.case:
        built = build(case, args.device, dtype)
        run(built, max(2, args.steps // 10))  # warm-up
        rates = [run(built, args.steps) for _ in range(args.repeats)]
        print(json.dumps({"case": case, "threads": args.threads, "device": args.device, "dtype": args.dtype,
                          "steps_per_second": rates}), flush=True)


if __name__ == "__main__":
    main()
